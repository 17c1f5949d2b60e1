"""turnout: blue/green cutovers for LLM inference backends on Kubernetes."""

USER_AGENT = "turnout"
"""What turnout calls itself in the User-Agent of its requests, to the API server and to engines."""
