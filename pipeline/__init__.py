"""sgpipe: train LLM classifiers of malicious scripts, from labelled files to a report."""

__version__ = "0.1.0"
