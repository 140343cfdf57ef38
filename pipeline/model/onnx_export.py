"""Export a trained classifier to ONNX, for the fast `sgpipe predict` path (onnx_runtime.py) that imports neither
torch nor transformers (~15 s of imports on a 2-core machine, against well under a second for onnxruntime).

The graph takes right-padded prompt ids (from `prompt.encode`) and the index of each row's last real token, and
returns the two-label probabilities (benign, malicious) at that position: exactly what `head.score_ids` computes (the
padding mask is rebuilt inside the graph from the last index, right padding). The sidecar JSON records the prompt
settings and digests of the graph and of the files the classifier was loaded from, so the runtime can refuse a stale
or half-written graph and fall back to PyTorch.

Only sgpipe writes these files (ONNX is protobuf, no pickles); the runtime reads nothing else.
"""
from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from pipeline.model.onnx_runtime import ONNX_FILE, SIDECAR_FILE, classifier_digest, file_digest
from pipeline.run.records import LABELS, atomic_write, write_json

OPSET = 17


class VerdictProbabilities(nn.Module):
    """(input_ids [B, T], last_index [B]) -> P(benign), P(malicious) [B, 2] at each row's last real token."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, last_index: torch.Tensor) -> torch.Tensor:
        # the padding mask rebuilt from last_index: the mask head.score_ids passes (and with no mask at all,
        # transformers looks for packed sequences with aten::diff, which ONNX lacks)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        attention_mask = (positions[None, :] <= last_index[:, None]).long()
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        rows = logits[torch.arange(input_ids.shape[0]), last_index]
        return torch.softmax(rows.float(), dim=-1)


def _plain_model(model):
    """The trimmed causal LM with LoRA merged into a copy (the argument is left as it is), in eval mode."""
    from pipeline.model.head import _is_peft, _is_quantized

    if _is_peft(model):
        if _is_quantized(model):
            raise ValueError("cannot export a quantized base to ONNX: LoRA must be merged into float weights")
        model = copy.deepcopy(model).merge_and_unload()
    head = model.get_output_embeddings()
    if head.weight.shape[0] != 2:
        raise ValueError(f"the model has a {head.weight.shape[0]}-row head: call trim_lm_head before training")
    return model.float().eval()


def export_onnx(classifier_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `classifier.onnx` + `classifier.onnx.json` for the classifier in `classifier_dir` (default: next to it).

    Returns the ONNX file's path. Written atomically: a failed export leaves any previous (valid) pair in place.
    """
    from pipeline.model.classifier import Classifier

    classifier_dir = Path(classifier_dir)
    out = Path(out_dir) if out_dir is not None else classifier_dir
    out.mkdir(parents=True, exist_ok=True)
    clf = Classifier.load(classifier_dir, device="cpu", merge_dtype=torch.float32)
    wrapper = VerdictProbabilities(_plain_model(clf.model))
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]], dtype=torch.long)  # any in-vocabulary ids trace the graph
    last = torch.tensor([3, 2], dtype=torch.long)
    onnx_path = out / ONNX_FILE
    with atomic_write(onnx_path, "wb") as f, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant for this model, not errors
        # the TorchScript exporter (dynamo=False): the dynamo one needs onnxscript and gains nothing for one graph
        torch.onnx.export(wrapper, (ids, last), f, input_names=["input_ids", "last_index"],
                          output_names=["probabilities"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "last_index": {0: "batch"},
                                        "probabilities": {0: "batch"}})
    pad = clf.tokenizer.pad_token_id if clf.tokenizer.pad_token_id is not None else 0
    write_json(out / SIDECAR_FILE, {
        "classifier_digest": classifier_digest(classifier_dir), "onnx_digest": file_digest(onnx_path),
        "max_length": clf.max_length, "head_ratio": clf.head_ratio, **clf.windows.spec(), "pad_token_id": int(pad),
        "labels": list(LABELS),
        "opset": OPSET, "torch": torch.__version__,
    })
    if out != classifier_dir:  # a standalone export: the runtime needs the tokenizer beside the graph
        shutil.copy(classifier_dir / "tokenizer.json", out / "tokenizer.json")
    return onnx_path
