"""The trained classifier as users meet it: model + tokenizer + the scoring spec it was trained with (+ threshold).

Evaluate, predict and export all go through `Classifier`, so they score with exactly the prompt, max length and
truncation the model was trained with: train/eval prompt skew is impossible by construction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import Record, write_json
from . import head

SCORING_FILE = "sgpipe_scoring.json"  # max_length and head_ratio used to build the training prompts


@dataclass
class Classifier:
    model: object
    tokenizer: object
    max_length: int
    head_ratio: float
    threshold: float | None = None  # chosen on validation by evaluate; None until then

    @staticmethod
    def save(model, tokenizer, out_dir: Path, *, base_model: str | None, max_length: int, head_ratio: float) -> Path:
        head.save_classifier(model, tokenizer, out_dir, base_model=base_model)
        write_json(Path(out_dir) / SCORING_FILE, {"max_length": max_length, "head_ratio": head_ratio})
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | Path, threshold_file: str | Path | None = None, *, allow_pickle: bool = False,
             base_model_loader=None) -> "Classifier":
        path = Path(path)
        spec_file = path / SCORING_FILE
        if not spec_file.exists():
            raise FileNotFoundError(f"{spec_file} is missing: {path} is not a classifier written by `sgpipe train`")
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        model, tokenizer = head.load_classifier(path, base_model_loader, allow_pickle=allow_pickle)
        threshold = None
        if threshold_file is not None and Path(threshold_file).exists():
            threshold = float(json.loads(Path(threshold_file).read_text(encoding="utf-8"))["threshold"])
        return cls(model, tokenizer, int(spec["max_length"]), float(spec["head_ratio"]), threshold)

    def score(self, texts: Sequence[str], langs: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """P(malicious) per script."""
        return head.score(self.model, self.tokenizer, texts, langs, self.max_length, self.head_ratio, batch_size)

    def score_records(self, records: Sequence[Record], batch_size: int = 16) -> np.ndarray:
        return self.score([r.text for r in records], [r.lang for r in records], batch_size)
