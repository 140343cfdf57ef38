"""The trained classifier as users meet it: model + tokenizer + the scoring spec it was trained with (+ threshold).

Evaluate, predict and export all go through `Classifier`, so they score with exactly the prompt, max length and
truncation the model was trained with: train/eval prompt skew is impossible by construction. `open_classifier`
accepts a run directory, a classifier directory, or an export (`sgpipe export`), so predict works on all three.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.run.records import Record, write_json
from pipeline.run.rundir import THRESHOLD_FILE, RunDir
from . import head, prompt
from .prompt import Windows

SCORING_FILE = "sgpipe_scoring.json"  # max_length, head_ratio and windows used to build the training prompts


@dataclass
class Classifier:
    model: object
    tokenizer: object
    max_length: int
    head_ratio: float
    threshold: float | None = None  # chosen on validation by evaluate; None until then
    exported: bool = False  # a Starcoder2ForSequenceClassification export rather than the trimmed causal LM
    windows: Windows = Windows()  # how scripts longer than the budget are read (off: head and tail)

    @staticmethod
    def save(model, tokenizer, out_dir: Path, *, base_model: str | None, max_length: int, head_ratio: float,
             model_config: dict | None = None, windows: Windows = Windows()) -> Path:
        head.save_classifier(model, tokenizer, out_dir, base_model=base_model, model_config=model_config)
        write_json(Path(out_dir) / SCORING_FILE, {"max_length": max_length, "head_ratio": head_ratio,
                                                  **windows.spec()})
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | Path, threshold_file: str | Path | None = None, *, device: str = "auto",
             allow_pickle: bool = False, merge_dtype=None) -> "Classifier":
        """A classifier directory, its base built from the run's model settings (head.load_classifier) on `device`
        (auto | cpu | cuda, as model.device). `merge_dtype`: see head.load_classifier (export only)."""
        from .backends import resolve_device

        path = Path(path)
        spec_file = path / SCORING_FILE
        if not spec_file.exists():
            raise FileNotFoundError(f"{spec_file} is missing: {path} is not a classifier written by `sgpipe train`")
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        model, tokenizer = head.load_classifier(path, device=resolve_device(device), allow_pickle=allow_pickle,
                                                merge_dtype=merge_dtype)
        threshold = None
        if threshold_file is not None and Path(threshold_file).exists():
            threshold = float(json.loads(Path(threshold_file).read_text(encoding="utf-8"))["threshold"])
        return cls(model, tokenizer, int(spec["max_length"]), float(spec["head_ratio"]), threshold,
                   windows=Windows.from_spec(spec))

    @classmethod
    def load_export(cls, path: str | Path, *, device: str = "auto") -> "Classifier":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .backends import placement, resolve_device

        path = Path(path)
        spec = json.loads((path / head.EXPORT_PROMPT_FILE).read_text(encoding="utf-8"))
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).eval()
        model.to(placement(resolve_device(device)))
        threshold_file = path / THRESHOLD_FILE
        threshold = json.loads(threshold_file.read_text())["threshold"] if threshold_file.exists() else None
        return cls(model, AutoTokenizer.from_pretrained(path), int(spec["max_length"]), float(spec["head_ratio"]),
                   threshold, exported=True, windows=Windows.from_spec(spec))

    def score(self, texts: Sequence[str], langs: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """P(malicious) per script."""
        if not self.exported:
            return head.score(self.model, self.tokenizer, texts, langs, self.max_length, self.head_ratio, batch_size,
                              self.windows)
        return np.array(prompt.score_scripts(texts, langs, self.tokenizer, self.max_length, self.head_ratio,
                                             self.windows, lambda prompts: self._score_exported(prompts, batch_size)))

    def _score_exported(self, prompts: list[list[int]], batch_size: int) -> np.ndarray:
        """P(malicious) per prompt from the Starcoder2ForSequenceClassification export (its `score` layer reads the
        last non-pad token: right padding)."""
        import torch

        out = np.empty(len(prompts))
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                rows = prompts[start:start + batch_size]
                width = max(len(r) for r in rows)
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
                where = next(self.model.parameters()).device
                logits = self.model(input_ids=ids.to(where), attention_mask=mask.to(where)).logits
                out[start:start + len(rows)] = torch.softmax(logits.float(), -1)[:, 1].cpu().numpy()
        return out

    def score_records(self, records: Sequence[Record], batch_size: int = 16) -> np.ndarray:
        return self.score([r.text for r in records], [r.lang for r in records], batch_size)


def open_classifier(path: str | Path, *, device: str = "auto", allow_pickle: bool = False) -> Classifier:
    """A run directory (runs/<name>), a classifier directory (runs/<name>/train/classifier) or an export, with its
    stored threshold, ready to `score` on `device` (auto | cpu | cuda, as model.device)."""
    path, run = Path(path), RunDir(path)
    if run.classifier.is_dir():
        return Classifier.load(run.classifier, run.threshold, device=device, allow_pickle=allow_pickle)
    if (path / head.CLASSIFIER_FILE).exists():
        return Classifier.load(path, path / THRESHOLD_FILE, device=device, allow_pickle=allow_pickle)
    if (path / head.EXPORT_PROMPT_FILE).exists():
        return Classifier.load_export(path, device=device)
    raise FileNotFoundError(f"{path} is neither a run directory (with train/classifier), a classifier directory, nor "
                            "an export: run `sgpipe all`, or pass --run-dir runs/<name>")
