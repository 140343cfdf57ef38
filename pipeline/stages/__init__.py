"""One module per pipeline stage, each with `run(ctx) -> counts`. The runner (pipeline/run/runner.py) calls them in order."""
