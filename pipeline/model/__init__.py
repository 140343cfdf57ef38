"""The classifier model: prompt and truncation (prompt.py), the offline tiny StarCoder2 (tiny.py), the two-row verdict
head, its loss, scoring, save/load and export (head.py), the trainer (trainer.py) and model loading (backends.py).

Importing this package is cheap; each module imports torch / transformers / trl / peft itself, so only the stages that
train or score pay for them.
"""
