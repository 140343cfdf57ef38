"""One module per pipeline stage, each with `run(ctx) -> counts`. The runner (pipeline/runner.py) calls them in order."""
