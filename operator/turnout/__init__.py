"""turnout: blue/green cutovers for LLM inference backends on Kubernetes."""
