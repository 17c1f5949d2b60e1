"""The benchmark: a bounded load of streamed chat completions against an OpenAI-compatible endpoint.

`prompts` says what to send, `load` sends it and times each answer, `results` sums the answers up
into a `BenchmarkResult`, and `gates` judges a new revision's result against the old one's. Only
`load` does I/O.
"""
