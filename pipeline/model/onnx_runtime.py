"""The fast scoring path: the classifier exported to ONNX (onnx_export.py), run by ONNX Runtime, tokenised by the
`tokenizers` library. It imports neither torch nor transformers, so `sgpipe predict` on one file starts in about a
second instead of 10-40 (benchmarks/bench_predict_startup.py).

Scores equal the PyTorch path's (tests/test_onnx.py, to 1e-5): the prompt ids come from the same `prompt.encode`
(template, head/tail truncation), fed the same tokenizer file through `RustTokenizer`, which answers the calls
`prompt` and `explain` make of a transformers tokenizer. `OnnxClassifier` has the scoring interface of
`classifier.Classifier` (tokenizer, max_length, head_ratio, windows, threshold, score, score_records), so predict,
--explain and the fail-on-malicious gate run unchanged on either path; a windowed classifier's sidecar records its
windows, and both paths aggregate them through `prompt.score_scripts`.

`open_fast` returns None when there is no graph, and None with the reason when the graph was exported from other
weights (the sidecar's digest of the classifier files no longer matches) or cannot be loaded; the caller then falls
back to PyTorch, telling the user only in the second case.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.run.rundir import CLASSIFIER_FILE, THRESHOLD_FILE, RunDir

ONNX_FILE = "classifier.onnx"
SIDECAR_FILE = "classifier.onnx.json"  # prompt settings, pad id, digests of the classifier files and of the graph
_NOT_WEIGHTS = {ONNX_FILE, SIDECAR_FILE, THRESHOLD_FILE}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def classifier_digest(directory: str | Path) -> str:
    """sha256 over every file of a classifier directory (weights, base/, tokenizer, scoring spec) but the ONNX pair
    and the threshold: changes whenever training rewrites the classifier."""
    directory = Path(directory)
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = f.relative_to(directory)
        if rel.name in _NOT_WEIGHTS or rel.name.startswith("."):  # ".name.tmp": atomic writes in flight
            continue
        h.update(f"{rel.as_posix()}\0{file_digest(f)}\n".encode())
    return h.hexdigest()


class RustTokenizer:
    """A `tokenizers.Tokenizer` answering the calls prompt.py and explain.py make of a transformers fast tokenizer:
    `tok(text or texts, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=...)`."""

    def __init__(self, tokenizer_file: Path, pad_token_id: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self.pad_token_id = pad_token_id

    def __call__(self, text, add_special_tokens: bool = True, split_special_tokens: bool = False,
                 return_offsets_mapping: bool = False, verbose: bool = True) -> dict:
        # as transformers does: special tokens written in the text are split into plain text when asked
        self._tok.encode_special_tokens = split_special_tokens
        single = isinstance(text, str)
        encodings = self._tok.encode_batch([text] if single else list(text), add_special_tokens=add_special_tokens)
        out = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return {k: v[0] for k, v in out.items()} if single else out

    def convert_ids_to_tokens(self, ids):
        return self._tok.id_to_token(ids) if isinstance(ids, int) else [self._tok.id_to_token(i) for i in ids]


class OnnxClassifier:
    """The scoring interface of `classifier.Classifier`, backed by an ONNX Runtime session."""

    def __init__(self, onnx_path: Path, tokenizer: RustTokenizer, spec: dict, threshold: float | None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        threads = os.environ.get("OMP_NUM_THREADS", "")
        options.intra_op_num_threads = int(threads) if threads.isdigit() else 0  # 0: ORT's default (all cores)
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.threshold = tokenizer, threshold
        self.max_length, self.head_ratio = int(spec["max_length"]), float(spec["head_ratio"])
        self.pad_token_id = int(spec["pad_token_id"])
        from .prompt import Windows

        self.windows = Windows.from_spec(spec)

    def score(self, texts: Sequence[str], langs: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """P(malicious) per script (aggregated over its windows when they are on), as `Classifier.score`."""
        from . import prompt

        return np.array(prompt.score_scripts(texts, langs, self.tokenizer, self.max_length, self.head_ratio,
                                             self.windows, lambda prompts: self._score_prompts(prompts, batch_size)))

    def _score_prompts(self, prompts: list[list[int]], batch_size: int) -> np.ndarray:
        """P(malicious) per prompt, batched and right-padded as head.score_ids does."""
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths together
        out = np.empty(len(prompts), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            width = max(len(prompts[i]) for i in chosen)
            ids = np.full((len(chosen), width), self.pad_token_id, dtype=np.int64)
            for b, i in enumerate(chosen):
                ids[b, :len(prompts[i])] = prompts[i]
            last = np.array([len(prompts[i]) - 1 for i in chosen], dtype=np.int64)
            probs = self.session.run(["probabilities"], {"input_ids": ids, "last_index": last})[0]
            out[chosen] = probs[:, 1]
        return out

    def score_records(self, records, batch_size: int = 16) -> np.ndarray:
        return self.score([r.text for r in records], [r.lang for r in records], batch_size)


def _locate(path: Path) -> tuple[Path, Path | None, Path] | None:
    """(directory holding the ONNX pair, classifier directory to check the digest against or None for an export,
    threshold file) for a run directory, a classifier directory or an ONNX export; None when it is none of these."""
    run = RunDir(path)
    if run.classifier.is_dir():
        return run.classifier, run.classifier, run.threshold
    if (path / CLASSIFIER_FILE).exists():
        return path, path, path / THRESHOLD_FILE
    if (path / SIDECAR_FILE).exists():
        return path, None, path / THRESHOLD_FILE
    return None


def open_fast(path: str | Path) -> tuple[OnnxClassifier | None, str]:
    """(classifier, "") when `path` carries a valid, current ONNX export; (None, "") when it has none (a production
    LoRA run, an older run: PyTorch is simply the path, nothing to report); (None, why) when its graph is unusable."""
    located = _locate(Path(path))
    if located is None:
        return None, ""  # e.g. an hf export: PyTorch reads it (or says what is wrong)
    where, classifier_dir, threshold_file = located
    onnx_path, sidecar = where / ONNX_FILE, where / SIDECAR_FILE
    if not onnx_path.exists() and not sidecar.exists():
        return None, ""
    if not onnx_path.exists() or not sidecar.exists():
        return None, f"{where} holds only one of {ONNX_FILE} and {SIDECAR_FILE} (an interrupted export?)"
    try:
        import onnxruntime  # noqa: F401  (an optional dependency: fall back when it is not installed)
    except ImportError:
        return None, "onnxruntime is not installed"
    try:
        spec = json.loads(sidecar.read_text(encoding="utf-8"))
        if file_digest(onnx_path) != spec["onnx_digest"]:
            return None, f"{onnx_path} does not match {sidecar} (an interrupted export?)"
        if classifier_dir is not None and classifier_digest(classifier_dir) != spec["classifier_digest"]:
            return None, f"{onnx_path} is stale: the classifier was retrained after it was exported"
        threshold = None
        if threshold_file.exists():
            threshold = float(json.loads(threshold_file.read_text(encoding="utf-8"))["threshold"])
        tokenizer = RustTokenizer(where / "tokenizer.json", int(spec["pad_token_id"]))
        return OnnxClassifier(onnx_path, tokenizer, spec, threshold), ""
    except Exception as e:  # a damaged file of any kind: PyTorch still works from the weights
        return None, f"{onnx_path} could not be loaded ({type(e).__name__}: {e})"
