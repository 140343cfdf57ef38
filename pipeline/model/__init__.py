"""The classifier model: prompt and truncation (prompt.py), the offline tiny StarCoder2 (tiny.py), the two-row verdict
head, its loss, scoring, save/load and export (head.py), the trainer (trainer.py) and model loading (backends.py).

Importing this package is cheap; each module imports torch / transformers / trl / peft itself, so only the stages that
train or score pay for them.
"""
import logging


class _StarCoder2DefaultIds(logging.Filter):
    """Drops transformers' warning about `Starcoder2Config()`'s own defaults (bos/eos 50256 outside its default vocab
    of 49152). transformers builds that default instance only to diff against when it prints a config (every
    from_pretrained does, at info level), so the warning never concerns the model being loaded: ours carry their
    tokenizer's ids (tiny.build_tiny_model; a test checks). A real out-of-vocabulary id names another range and
    still shows."""

    DEFAULT = "within the vocabulary (between 0 and 49151), got 50256"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.DEFAULT not in record.getMessage()


logging.getLogger("transformers.configuration_utils").addFilter(_StarCoder2DefaultIds())
