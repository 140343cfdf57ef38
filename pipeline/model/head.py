"""The verdict head: the LM head cut to the two label rows, its loss, batched scoring, save/load and export.

A causal LM predicts the verdict as the next token after "Verdict:". Only two rows of its (vocab x hidden) output
matrix matter, so the head is replaced by those two rows (index 0 benign, 1 malicious): the two-way softmax is then
the same before training, the loss never builds vocabulary-wide logits (3-4x less memory and time: benchmarks/bench_head_loss.py), and
the model exports as a standard `Starcoder2ForSequenceClassification`.

On disk a classifier directory holds `sgpipe_classifier.json` (format, label ids, base model, prompt), the tokenizer,
and either the whole trimmed model (`full`) or a PEFT adapter (`lora`) whose `modules_to_save` carries the 2-row head;
a LoRA directory also holds `base/` (the trimmed base weights) when the base cannot be reloaded by name (tiny model).
Only safetensors are read unless `allow_pickle=True`.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model import prompt
from pipeline.run.records import LABELS, write_json
from pipeline.run.rundir import CLASSIFIER_FILE

EXPORT_PROMPT_FILE = "sgpipe_prompt.json"


def trim_lm_head(model, label_ids: Sequence[int]):
    """Replace `model.lm_head` by a bias-free Linear(hidden, 2) holding the rows of `label_ids` (benign, malicious).

    Untie first: StarCoder2 ties the head to the embeddings, and a later `tie_weights()` would otherwise silently put
    the full-vocabulary head back. No bias, like `Starcoder2ForSequenceClassification.score`, so export is a copy.
    The label ids are recorded in the config so a loader can rebuild the same head. Returns the model, changed in place.
    """
    old = model.get_output_embeddings()
    if old.bias is not None:
        raise ValueError(f"{type(model).__name__}'s LM head has a bias; the two-row head assumes none, like StarCoder2")
    model.config.tie_word_embeddings = False
    if hasattr(model, "all_tied_weights_keys"):  # transformers 5 caches the tying map at init: recompute it
        model.all_tied_weights_keys = model.get_expanded_tied_weights_keys(all_submodels=True)
    rows = old.weight.detach()[list(label_ids)].clone()
    head = nn.Linear(rows.shape[1], 2, bias=False, device=rows.device, dtype=rows.dtype)
    head.weight.data.copy_(rows)
    model.set_output_embeddings(head)
    model.config.sgpipe_label_token_ids = [int(i) for i in label_ids]
    return model


def verdict_positions(labels: torch.Tensor, label_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, classes) from collated labels (-100 everywhere but the verdict token).

    The logits that predict the verdict sit one position before it. Each row must carry exactly one label token:
    anything else means the dataset was not built by `prompt.build_training_row` (or `completion_only_loss` was off).
    """
    mask = labels != -100
    counts = mask.sum(1)
    if not bool((counts == 1).all()):
        raise ValueError(
            f"each row must have exactly one non -100 label (the verdict), got counts {counts.tolist()}: build rows "
            "with pipeline.model.prompt.build_training_row and pass completion_only_loss=True to SFTConfig"
        )
    positions = mask.int().argmax(1)
    if bool((positions == 0).any()):
        raise ValueError("a verdict token at position 0 has no prompt before it")
    tokens = labels[torch.arange(len(labels), device=labels.device), positions]
    benign, malicious = label_ids
    if not bool(((tokens == benign) | (tokens == malicious)).all()):
        raise ValueError(f"label tokens {tokens.tolist()} are not the verdict ids ({benign}, {malicious})")
    return positions - 1, (tokens == malicious).long()


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each right-padded row: where a prompt ending in "Verdict:" predicts."""
    return attention_mask.sum(1) - 1


def two_label_loss(
    logits2: torch.Tensor,
    y: torch.Tensor,
    smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
    teacher: torch.Tensor | None = None,
    teacher_weight: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy over the two classes, smoothed over the two classes only (0.1 -> targets 0.05 / 0.95).

    `class_weights[c]` scales the loss of every example of class c. The sum is divided by `num_items` (the Trainer's
    count of label tokens over the whole accumulated batch, so gradient accumulation averages correctly) or by the
    batch size. `teacher` (P(malicious) per example, from a teacher model) moves `teacher_weight` of each target onto
    the teacher's two-way distribution (distillation).
    """
    logp = F.log_softmax(logits2.float(), dim=-1)
    target = F.one_hot(y, 2).float() * (1.0 - smoothing) + smoothing / 2
    if teacher is not None and teacher_weight:
        p = teacher.to(target).reshape(-1, 1)
        target = (1.0 - teacher_weight) * target + teacher_weight * torch.cat([1.0 - p, p], dim=1)
    per_example = -(target * logp).sum(-1)
    if class_weights is not None:
        per_example = per_example * class_weights.to(per_example)[y]
    return per_example.sum() / (len(y) if num_items is None else num_items)


def right_pad(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) for token id rows, right-padded to the longest row."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        input_ids[b, :len(r)] = torch.tensor(r)
        attention_mask[b, :len(r)] = 1
    return input_ids, attention_mask


def score_ids(model, prompts: Sequence[Sequence[int]], batch_size: int = 16, pad_token_id: int = 0) -> np.ndarray:
    """P(malicious) for prompt ids (from `prompt.encode`): batched, right-padded, one forward per batch."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths together: less padding
    out = np.empty(len(prompts), dtype=np.float64)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = [prompts[i] for i in order[start:start + batch_size]]
                input_ids, attention_mask = right_pad(rows, pad_token_id)
                logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                               use_cache=False).logits
                if logits.shape[-1] != 2:
                    raise ValueError(f"the model has a {logits.shape[-1]}-way head: call trim_lm_head first")
                last = last_token_positions(attention_mask).to(device)
                p = torch.softmax(logits[torch.arange(len(rows), device=device), last].float(), dim=-1)[:, 1]
                out[order[start:start + len(rows)]] = p.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def score(model, tokenizer, texts: Sequence[str], langs: Sequence[str], max_length: int, head_ratio: float = 0.75,
          batch_size: int = 16, windows: prompt.Windows = prompt.Windows()) -> np.ndarray:
    """P(malicious) for each script: the two-way softmax at the position after "Verdict:" (aggregated over the
    script's windows when `windows` is on). No generation."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return np.array(prompt.score_scripts(texts, langs, tokenizer, max_length, head_ratio, windows,
                                         lambda prompts: score_ids(model, prompts, batch_size, pad)), dtype=np.float64)


# ---- save / load -----------------------------------------------------------------------------------------------


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def _base_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The frozen base weights under a PEFT model, with PEFT's wrappers peeled off (no LoRA, original head)."""
    state = {}
    for key, value in peft_model.get_base_model().state_dict().items():
        if "lora_" in key or ".modules_to_save." in key:
            continue
        state[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = value.contiguous()
    return state


def save_classifier(model, tokenizer, out_dir: str | Path, *, base_model: str | None,
                    model_config: dict | None = None) -> Path:
    """Write a trained classifier to `out_dir` (see the module docstring for the layout).

    `base_model`: for LoRA, the name or path `load_classifier` reloads the base from (e.g. "bigcode/starcoder2-3b");
    None stores the base weights in `out_dir/base` instead (required for the randomly initialised tiny model).
    `model_config`: the run's `model` section (JSON), recorded so the base is reloaded exactly as it was trained.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peft = _is_peft(model)
    config = model.get_base_model().config if peft else model.config
    label_ids = getattr(config, "sgpipe_label_token_ids", None)
    if label_ids is None:
        raise ValueError("the model's head is not trimmed (no config.sgpipe_label_token_ids): call trim_lm_head first")
    model.save_pretrained(out)  # safetensors: the whole trimmed model, or the adapter + the 2-row head
    if peft and base_model is None:
        if _is_quantized(model):
            raise ValueError("a quantized base cannot be stored in the classifier: pass base_model=<its name or path>")
        (out / "base").mkdir(exist_ok=True)
        config.save_pretrained(out / "base")
        save_file(_base_state_dict(model), str(out / "base" / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    write_json(out / CLASSIFIER_FILE, {
        "format": "lora" if peft else "full",
        "labels": list(LABELS),
        "label_token_ids": list(label_ids),
        "base_model": base_model if peft else None,
        "model_config": model_config,
        "prompt": {"prefix": prompt.PREFIX, "suffix": prompt.SUFFIX, "marker": prompt.MARKER,
                   "label_words": list(prompt.LABEL_WORDS)},
    })
    return out


def _state_dict_files(directory: Path, allow_pickle: bool) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        return sorted({directory / f for f in json.loads(index.read_text())["weight_map"].values()})
    if (directory / "model.safetensors").exists():
        return [directory / "model.safetensors"]
    if allow_pickle and (directory / "pytorch_model.bin").exists():
        return [directory / "pytorch_model.bin"]
    raise FileNotFoundError(
        f"{directory}: no model.safetensors (pickled .bin weights are read only with allow_pickle=True: "
        "--set model.allow_pickle_weights=true, for checkpoints you trust)"
    )


def load_trimmed_model(directory: str | Path, *, dtype: torch.dtype = torch.float32, allow_pickle: bool = False):
    """A whole trimmed causal LM saved by `save_pretrained`: built from its config, head cut, weights loaded strictly.

    `AutoModelForCausalLM.from_pretrained` cannot do this: the checkpoint's head has 2 rows where the config says
    vocab_size (size mismatch), and `ignore_mismatched_sizes=True` would silently re-initialise the head.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    directory = Path(directory)
    config = AutoConfig.from_pretrained(directory)
    label_ids = getattr(config, "sgpipe_label_token_ids", None)
    if label_ids is None:
        raise ValueError(f"{directory / 'config.json'}: no sgpipe_label_token_ids, not a trimmed sgpipe checkpoint")
    model = trim_lm_head(AutoModelForCausalLM.from_config(config, dtype=dtype), label_ids)
    state = {}
    for f in _state_dict_files(directory, allow_pickle):
        # weights_only: even when pickles are allowed, torch's restricted unpickler builds tensors and nothing else
        state.update(load_file(str(f)) if f.suffix == ".safetensors" else
                     torch.load(f, map_location="cpu", weights_only=True))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _base_config(meta: dict, path: Path):
    """The run's `model` section as the classifier recorded it (train writes it; older directories only named the
    base, which is then loaded unquantized by transformers)."""
    from pipeline.config import ModelConfig

    if meta.get("model_config"):
        return ModelConfig.model_validate(meta["model_config"])
    if not meta.get("base_model"):
        raise ValueError(f"{path / CLASSIFIER_FILE}: a LoRA classifier with neither base/ nor base_model")
    return ModelConfig(model_id=meta["base_model"], backend="hf", load_in_4bit=False)


def load_classifier(path: str | Path, *, device: str = "cpu", allow_pickle: bool = False,
                    merge_dtype: torch.dtype | None = None):
    """(model, tokenizer) from a directory written by `save_classifier`, in eval mode, on `device` (cpu | cuda).

    A LoRA adapter whose base is not stored is applied to the base that `backends.load_base` builds from the run's
    recorded `model` settings (backend, 4-bit, dtype): the same model evaluate, predict and training saw.
    `merge_dtype` (export): load an unquantized base in that dtype instead, since LoRA cannot merge into 4-bit weights.
    """
    from transformers import AutoTokenizer

    from pipeline.model import backends

    path = Path(path)
    meta_file = path / CLASSIFIER_FILE
    if not meta_file.exists():
        raise FileNotFoundError(f"{meta_file} is missing: {path} was not written by save_classifier")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    where = backends.placement(device)
    stored_dtype = merge_dtype or torch.float32  # stored weights are fp32: full fine-tuning trains an fp32 copy
    if meta["format"] == "full":
        return load_trimmed_model(path, dtype=stored_dtype, allow_pickle=allow_pickle).to(where), tokenizer
    if not (path / "adapter_model.safetensors").exists() and not allow_pickle:
        raise FileNotFoundError(f"{path / 'adapter_model.safetensors'} is missing (pickled adapters need allow_pickle: "
                                "--set model.allow_pickle_weights=true, for checkpoints you trust)")
    from peft import PeftModel  # here, not above: a full-format classifier (the tiny default) never pays for peft

    if (path / "base").is_dir():
        base = load_trimmed_model(path / "base", dtype=stored_dtype, allow_pickle=allow_pickle).to(where)
    else:
        model_cfg = _base_config(meta, path)
        if merge_dtype is not None:
            model_cfg = model_cfg.model_copy(update={"load_in_4bit": False})
        base, _ = backends.load_base(model_cfg, device=device, dtype=merge_dtype)
        base = trim_lm_head(base, meta["label_token_ids"])
    return PeftModel.from_pretrained(base, path, is_trainable=False).eval(), tokenizer


# ---- export ----------------------------------------------------------------------------------------------------


def export_sequence_classifier(model, tokenizer, out_dir: str | Path, *, max_length: int, head_ratio: float,
                               windows: prompt.Windows = prompt.Windows()) -> Path:
    """Write a standard `Starcoder2ForSequenceClassification` (num_labels 2) + tokenizer + `sgpipe_prompt.json`.

    LoRA is merged into a copy of the model (the argument is left as it is); the base must not be quantized, since
    merging into 4-bit weights doubles the rounding error: reload with `load_classifier(..., merge_dtype=...)` first.
    Its `score` layer reads the last non-pad token, which is where the verdict is predicted, so on prompts from
    `prompt.encode` (recorded in sgpipe_prompt.json) it gives the same probabilities as `score`.
    """
    from transformers import AutoModelForSequenceClassification

    if _is_peft(model):
        if _is_quantized(model):
            raise ValueError("cannot merge LoRA into a quantized base: load_classifier(..., merge_dtype=torch.float32) "
                             "and export that")
        model = copy.deepcopy(model).merge_and_unload()
    head = model.get_output_embeddings()
    if head.weight.shape[0] != 2:
        raise ValueError(f"the model has a {head.weight.shape[0]}-row head: call trim_lm_head before training")
    config = copy.deepcopy(model.config)
    config.architectures = None
    config.num_labels = 2
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    classifier = AutoModelForSequenceClassification.from_config(config, dtype=head.weight.dtype)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("lm_head.")}
    state["score.weight"] = head.weight.detach()
    classifier.load_state_dict(state, strict=True)
    out = Path(out_dir)
    classifier.save_pretrained(out)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = "right"  # the export is used with the tokenizer's own padding: right, like score()
    tokenizer.save_pretrained(out)
    write_json(out / EXPORT_PROMPT_FILE, {
        "prefix": prompt.PREFIX, "suffix": prompt.SUFFIX, "marker": prompt.MARKER, "max_length": max_length,
        "head_ratio": head_ratio, **windows.spec(), "labels": list(LABELS),
        "note": "prompt ids = tokens(prefix.format(lang)) + tokens(script, cut to fit) + tokens(suffix), each part "
                "tokenised alone without special tokens; pipeline.model.prompt.encode is the reference. With "
                "window_stride > 0 a longer script is read as windows (prompt.encode_windows), its score the "
                "window_aggregation of their log-odds (prompt.score_scripts)",
    })
    return out
