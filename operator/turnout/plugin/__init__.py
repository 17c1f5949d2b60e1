"""The `kubectl turnout` plugin: `status`, `list`, `promote`, `abort`, `diff` on InferenceBackends."""
