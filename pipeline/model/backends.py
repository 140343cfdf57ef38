"""Loading the model: the `hf` backend (transformers + PEFT, any device) or `unsloth` (CUDA only), for training and
for scoring alike.

One source of truth: every setting comes from the run's `model` / `lora` config sections (pipeline/config.py, which
validates them); nothing here has a default of its own. Train (`load_model`) and evaluate / predict / export
(`load_base`, through head.load_classifier) build the base the same way (backend, quantisation, dtype, device), so
the model that picks the threshold on validation is the model that was early-stopped on it.

This is the only module that imports unsloth, and it does so only after checking that a CUDA device exists: on a
machine without one, `import unsloth` raises NotImplementedError (not ImportError), so it must never be attempted.
Unsloth patches transformers, trl, datasets and peft when imported, so `import_backend` imports it before them.
Every trained model leaves here with its head trimmed to the two verdict rows (head.trim_lm_head) and, for LoRA, the
adapter applied with `modules_to_save=["lm_head"]` so the trained head is saved with the adapter.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch import nn

from pipeline.config import TINY_MODEL_ID

if TYPE_CHECKING:
    from pipeline.config import LoraSection, ModelConfig

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelUnavailable(RuntimeError):
    """The model or tokenizer cannot be loaded (typically: hub unreachable and nothing cached)."""


def _unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def choose_backend(requested: str) -> str:
    """"hf" or "unsloth" for model.backend (auto | unsloth | hf). auto = unsloth when it is installed and a CUDA
    device exists. Never imports unsloth."""
    if requested == "hf":
        return "hf"
    usable = _unsloth_installed() and torch.cuda.is_available()
    if requested == "auto":
        return "unsloth" if usable else "hf"
    if not torch.cuda.is_available():
        raise ValueError("model.backend=unsloth needs a CUDA GPU and none is visible: use --set model.backend=hf "
                         "(or auto)")
    if not _unsloth_installed():
        raise ValueError("model.backend=unsloth but unsloth is not installed: install the GPU extra or use "
                         "--set model.backend=hf")
    return "unsloth"


def import_backend(model_cfg: "ModelConfig") -> str:
    """Choose the backend and, for unsloth, import it now: it must come before transformers, trl, datasets and peft
    (it patches them; imported later it warns and VerdictTrainer would bind the unpatched SFTTrainer)."""
    backend = choose_backend(model_cfg.backend)
    if backend == "unsloth":
        os.environ.setdefault("UNSLOTH_RETURN_LOGITS", "1")  # its fused loss returns no logits unless asked
        import unsloth  # noqa: F401
    return backend


def resolve_device(requested: str) -> str:
    """model.device (auto | cpu | cuda) -> "cpu" or "cuda"; cuda with no CUDA device is an error naming the fix."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("model.device=cuda but no CUDA device is visible: use --set model.device=cpu "
                         "(and model.load_in_4bit=false)")
    return requested


def placement(device: str) -> str:
    """Where this process puts the model: under torchrun each rank owns cuda:LOCAL_RANK (not cuda:0 for all)."""
    if device != "cuda":
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def weights_dtype(model_cfg: "ModelConfig", device: str) -> torch.dtype:
    """The dtype of the (non-quantized) weights and of 4-bit compute.

    fp32 on CPU (bf16/fp16 matmuls are slow or missing there) and for the tiny model. Full fine-tuning on CUDA keeps
    fp32 weights too: AdamW updating bf16 weights has no fp32 master copy and loses small updates; training's bf16
    autocast does the math in bf16. LoRA trains only fp32 adapters, so its frozen base may be bf16.
    """
    if device == "cpu" or model_cfg.model_id == TINY_MODEL_ID or model_cfg.finetuning_type == "full":
        return torch.float32
    dtype = _DTYPES[model_cfg.bnb_4bit_compute_dtype]
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        log.info("this GPU has no bfloat16: using float16")
        return torch.float16
    return dtype


def linear_module_names(model: nn.Module) -> list[str]:
    """Leaf names of the model's Linear layers that LoRA can target (the heads excluded)."""
    heads = {"lm_head", "score"}
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] not in heads})


def validate_target_modules(model: nn.Module, requested: list[str]) -> list[str]:
    """The LoRA target names to use: ["all-linear"] expands to every Linear layer; unknown names are an error.

    PEFT would otherwise fail late or, for a list that partly matches, silently adapt fewer layers than asked (the seed
    guide's gate_proj/up_proj/down_proj do not exist in StarCoder2).
    """
    available = linear_module_names(model)
    if list(requested) == ["all-linear"]:
        return available
    missing = [name for name in requested if name not in available]
    if missing:
        raise ValueError(f"lora.target_modules: {missing} not in this model; its linear layers are {available} "
                         "(or use [all-linear]). The head is trained through modules_to_save, not LoRA.")
    return list(requested)


def _attention(use_flash_attention_2: bool, device: str) -> str:
    if use_flash_attention_2 and device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _from_hub(loader, model_id: str, **kwargs):
    """Call a from_pretrained, turning "cannot download / not cached" into one clear message."""
    try:
        return loader(model_id, **kwargs)
    except OSError as e:
        if Path(model_id).is_dir():
            raise ModelUnavailable(f"cannot load {model_id!r} from its directory: {e}") from None
        raise ModelUnavailable(
            f"cannot load {model_id!r}: the Hugging Face hub is unreachable (or the id is wrong) and it is not in the "
            f"cache. Download it where there is network access (hf download {model_id} --local-dir DIR) and give "
            f"the local directory as the model name instead. ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None


def _quantization(m: "ModelConfig", dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=m.bnb_4bit_quant_type,
                              bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=m.bnb_4bit_use_double_quant)


def _load_hf(m: "ModelConfig", *, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"trust_remote_code": m.trust_remote_code}
    tokenizer = _from_hub(AutoTokenizer.from_pretrained, m.model_id, **kwargs)
    if m.load_in_4bit:  # accelerate places a 4-bit model once: on this rank's GPU, never moved after
        kwargs.update(quantization_config=_quantization(m, dtype), device_map={"": placement(device)})
    model = _from_hub(AutoModelForCausalLM.from_pretrained, m.model_id, dtype=dtype,
                      attn_implementation=_attention(m.use_flash_attention_2, device), **kwargs)
    if not m.load_in_4bit:
        model.to(placement(device))
    return model, tokenizer


def _load_unsloth(m: "ModelConfig", *, dtype: torch.dtype, seed: int, training: bool):
    from unsloth import FastLanguageModel

    kwargs = {"quantization_config": _quantization(m, dtype)} if m.load_in_4bit else {}
    try:
        return FastLanguageModel.from_pretrained(
            model_name=m.model_id, max_seq_length=m.max_length, dtype=dtype, load_in_4bit=m.load_in_4bit,
            full_finetuning=training and m.finetuning_type == "full", trust_remote_code=m.trust_remote_code,
            use_gradient_checkpointing="unsloth" if (training and m.gradient_checkpointing) else False,
            random_state=seed, **kwargs)
    except OSError as e:
        raise ModelUnavailable(f"cannot load {m.model_id!r} with unsloth ({str(e).splitlines()[0]}): if the hub is "
                               "unreachable, give a local directory as the model name instead") from None


def _load_tiny(m: "ModelConfig", tokenizer_texts: Iterable[str] | None, *, device: str, seed: int):
    from pipeline.model import prompt
    from pipeline.model.tiny import build_tiny_model, train_tokenizer

    if tokenizer_texts is None:
        raise ValueError("the tiny model trains its tokenizer on the training scripts: pass tokenizer_texts")
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(tokenizer_texts), m.tiny.vocab_size, max_length=m.max_length)
    model = build_tiny_model(len(tokenizer), max_position_embeddings=m.max_length, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=seed,
                             **m.tiny.architecture())
    return model.to(placement(device)), tokenizer


def load_base(model_cfg: "ModelConfig", *, device: str, seed: int = 0, dtype: torch.dtype | None = None,
              training: bool = False, tokenizer_texts: Iterable[str] | None = None):
    """(model, tokenizer): the untrimmed base as `model_cfg` describes it, on `device` ("cpu" | "cuda").

    The one place a base model is built, for training and for scoring. `dtype` overrides `weights_dtype` (export
    merges on an unquantized base in the dtype the user chose). 4-bit needs CUDA: scoring on a CPU falls back to the
    unquantized base in fp32, logged, since scores then differ slightly from those of the 4-bit model.
    """
    backend = choose_backend(model_cfg.backend)
    if model_cfg.load_in_4bit and device != "cuda":
        if training:
            raise ValueError("model.load_in_4bit=true needs a CUDA GPU (QLoRA training through bitsandbytes breaks "
                             "on CPU): use --set model.load_in_4bit=false")
        log.warning("%s was trained in 4 bits but %s has no CUDA: loading it unquantized in float32 (scores may "
                    "differ slightly from the 4-bit model's)", model_cfg.model_id, device)
        model_cfg = model_cfg.model_copy(update={"load_in_4bit": False})
    dtype = dtype or weights_dtype(model_cfg, device)
    if model_cfg.model_id == TINY_MODEL_ID:
        model, tokenizer = _load_tiny(model_cfg, tokenizer_texts, device=device, seed=seed)
    elif backend == "unsloth":
        model, tokenizer = _load_unsloth(model_cfg, dtype=dtype, seed=seed, training=training)
    else:
        model, tokenizer = _load_hf(model_cfg, device=device, dtype=dtype)
    if tokenizer.pad_token is None:  # StarCoder2 ships without one; padding is masked, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # unsloth sets left; scoring and TRL's collator pad on the right
    log.info("model %s: backend %s, attention %s, dtype %s, 4-bit %s", model_cfg.model_id, backend,
             getattr(model.config, "_attn_implementation", "?"), dtype, model_cfg.load_in_4bit)
    return model, tokenizer


def _apply_lora(model, backend: str, m: "ModelConfig", lora_cfg: "LoraSection", seed: int):
    targets = validate_target_modules(model, lora_cfg.target_modules)
    lora = dict(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout, target_modules=targets,
                use_rslora=lora_cfg.use_rslora, use_dora=lora_cfg.use_dora, modules_to_save=["lm_head"])
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        return FastLanguageModel.get_peft_model(
            model, bias="none", random_state=seed,
            use_gradient_checkpointing="unsloth" if m.gradient_checkpointing else False, **lora), targets
    from peft import LoraConfig, get_peft_model

    if m.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=m.gradient_checkpointing)
    with torch.random.fork_rng(devices=[]):  # LoRA's random init, seeded without moving the global RNG
        torch.manual_seed(seed)
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **lora)), targets


def load_model(model_cfg: "ModelConfig", lora_cfg: "LoraSection", *, device: str, seed: int,
               tokenizer_texts: Iterable[str] | None = None,
               before_head: Callable[[nn.Module, object], dict] | None = None) -> tuple[nn.Module, object, dict]:
    """(model, tokenizer, info): the model ready for VerdictTrainer, its head trimmed, LoRA applied if asked.

    `device`: "cpu" or "cuda" (resolve_device). `tokenizer_texts`: the training scripts the tiny model's tokenizer
    learns from (ignored otherwise). `before_head(model, tokenizer)`, if given, runs on the base while it still has its
    full-vocabulary head (the tiny model's LM warm-up); what it returns is `info["warm_up"]`. `info`: backend, device,
    attention, dtype, load_in_4bit, finetuning_type, target_modules, label_token_ids, trainable_params, total_params.
    """
    from pipeline.model import prompt
    from pipeline.model.head import trim_lm_head

    if model_cfg.trust_remote_code:
        log.warning("model.trust_remote_code=true: loading %r may run Python code shipped with the checkpoint, with "
                    "your privileges. Turn it off unless you have read that code.", model_cfg.model_id)
    backend = choose_backend(model_cfg.backend)
    model, tokenizer = load_base(model_cfg, device=device, seed=seed, training=True, tokenizer_texts=tokenizer_texts)
    warm_up = before_head(model, tokenizer) if before_head is not None else None
    label_ids = prompt.label_token_ids(tokenizer)
    trim_lm_head(model, label_ids)
    targets = None
    if model_cfg.finetuning_type == "lora":
        model, targets = _apply_lora(model, backend, model_cfg, lora_cfg, seed)
    else:
        model.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    info = {"backend": backend, "device": device,
            "attention": getattr(model.config, "_attn_implementation", None) or "sdpa",
            "dtype": str(weights_dtype(model_cfg, device)).replace("torch.", ""),
            "load_in_4bit": model_cfg.load_in_4bit, "finetuning_type": model_cfg.finetuning_type,
            "target_modules": targets, "label_token_ids": list(label_ids), "trainable_params": trainable,
            "total_params": total, **({"warm_up": warm_up} if warm_up else {})}
    log.info("trainable parameters: %d of %d", trainable, total)
    return model, tokenizer, info
