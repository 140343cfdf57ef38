"""Loading the model to fine-tune: the `hf` backend (transformers + PEFT, any device) or `unsloth` (CUDA only).

This is the only module that imports unsloth, and it does so only after checking that a CUDA device exists: on a
machine without one, `import unsloth` raises NotImplementedError (not ImportError), so it must never be attempted.
Every loaded model leaves here with its head trimmed to the two verdict rows (head.trim_lm_head) and, for LoRA, the
adapter applied with `modules_to_save=["lm_head"]` so the trained head is saved with the adapter.

The model id TINY ("tiny-starcoder2") builds the offline StarCoder2 of tiny.py, with a tokenizer trained on the given
texts.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from pipeline.model import prompt
from pipeline.model.head import trim_lm_head

log = logging.getLogger(__name__)

TINY = "tiny-starcoder2"  # equal to pipeline.config.TINY_MODEL_ID (not imported: config must not need this module)
BACKENDS = ("auto", "unsloth", "hf")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelUnavailable(RuntimeError):
    """The model or tokenizer cannot be loaded (typically: hub unreachable and nothing cached)."""


def _unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def choose_backend(requested: str = "auto") -> str:
    """"hf" or "unsloth". auto = unsloth when it is installed and a CUDA device exists. Never imports unsloth."""
    if requested not in BACKENDS:
        raise ValueError(f"model.backend must be one of {BACKENDS}, got {requested!r}")
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


def linear_module_names(model: nn.Module) -> list[str]:
    """Leaf names of the model's Linear layers that LoRA can target (the heads excluded)."""
    heads = {"lm_head", "score"}
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] not in heads})


def validate_target_modules(model: nn.Module, requested: str | Sequence[str]) -> list[str]:
    """The LoRA target names to use: "all-linear" expands to every Linear layer; unknown names are an error.

    PEFT would otherwise fail late or, for a list that partly matches, silently adapt fewer layers than asked (the seed
    guide's gate_proj/up_proj/down_proj do not exist in StarCoder2).
    """
    available = linear_module_names(model)
    requested = [requested] if isinstance(requested, str) else list(requested)
    if requested == ["all-linear"]:
        return available
    missing = [name for name in requested if name not in available]
    if missing:
        raise ValueError(f"model.lora.target_modules: {missing} not in this model; its linear layers are {available} "
                         "(or use \"all-linear\"). The head is trained through modules_to_save, not LoRA.")
    return list(requested)


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"model.device={device!r} but no CUDA device is visible: use --set model.device=cpu")
    return device


def _resolve_dtype(compute_dtype: str, device: str) -> torch.dtype:
    """The dtype of the model's (non-quantized) weights and of 4-bit compute: `compute_dtype` on CUDA, fp32 on CPU."""
    if compute_dtype != "auto" and compute_dtype not in _DTYPES:
        raise ValueError(f"model.compute_dtype must be auto or one of {sorted(_DTYPES)}, got {compute_dtype!r}")
    if not device.startswith("cuda"):
        if compute_dtype not in ("auto", "float32"):
            log.info("compute dtype %s ignored on %s: the model runs in float32", compute_dtype, device)
        return torch.float32  # bf16/fp16 matmuls are slow or missing on most CPUs
    if compute_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _DTYPES[compute_dtype]


def _attention(use_flash_attention_2: bool, device: str) -> str:
    if use_flash_attention_2 and device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
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


def _load_hf(model_id, *, dtype, attn, load_in_4bit, quant_type, double_quant, trust_remote_code, device,
             cache_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"trust_remote_code": trust_remote_code, "cache_dir": cache_dir}
    tokenizer = _from_hub(AutoTokenizer.from_pretrained, model_id, **kwargs)
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=double_quant)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = _from_hub(AutoModelForCausalLM.from_pretrained, model_id, dtype=dtype, attn_implementation=attn, **kwargs)
    if not load_in_4bit:
        model.to(device)
    return model, tokenizer


def _load_unsloth(model_id, *, max_length, dtype, load_in_4bit, quant_type, double_quant, trust_remote_code,
                  full_finetuning, gradient_checkpointing, seed, cache_dir):
    # Unsloth's fused loss returns no logits unless asked; the verdict loss needs them.
    os.environ.setdefault("UNSLOTH_RETURN_LOGITS", "1")
    from unsloth import FastLanguageModel

    kwargs = {}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=double_quant)
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    try:
        return FastLanguageModel.from_pretrained(
            model_name=model_id, max_seq_length=max_length, dtype=dtype, load_in_4bit=load_in_4bit,
            full_finetuning=full_finetuning, trust_remote_code=trust_remote_code,
            use_gradient_checkpointing="unsloth" if gradient_checkpointing else False, random_state=seed, **kwargs)
    except OSError as e:
        raise ModelUnavailable(f"cannot load {model_id!r} with unsloth ({str(e).splitlines()[0]}): if the hub is "
                               "unreachable, give a local directory as the model name instead") from None


def _load_tiny(tiny: Mapping | None, tokenizer_texts: Iterable[str] | None, *, max_length: int, dtype, seed: int):
    from pipeline.model.tiny import build_tiny_model, train_tokenizer

    if tokenizer_texts is None:
        raise ValueError("the tiny model trains its tokenizer on the training scripts: pass tokenizer_texts")
    spec = dict(tiny or {})
    vocab_size = spec.pop("vocab_size", 4096)
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(tokenizer_texts), vocab_size, max_length=max_length)
    model = build_tiny_model(len(tokenizer), max_position_embeddings=max_length, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=seed,
                             **spec)
    return model.to(dtype), tokenizer


def load_model(
    model_id: str,
    backend: str = "auto",
    *,
    max_length: int,
    load_in_4bit: bool = False,
    quant_type: str = "nf4",
    compute_dtype: str = "auto",
    double_quant: bool = True,
    use_flash_attention_2: bool = True,
    gradient_checkpointing: bool = False,
    trust_remote_code: bool = False,
    device: str = "auto",
    finetuning_type: str = "lora",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] = "all-linear",
    use_rslora: bool = False,
    use_dora: bool = False,
    seed: int = 0,
    tiny: Mapping | None = None,
    tokenizer_texts: Iterable[str] | None = None,
    cache_dir: str | None = None,
) -> tuple[nn.Module, object, dict]:
    """(model, tokenizer, info): the model ready for VerdictTrainer, its head trimmed, LoRA applied if asked.

    `tiny` (model_id TINY only): keyword arguments of tiny.build_tiny_model plus `vocab_size`.
    `info`: backend, device, attention, dtype, load_in_4bit, finetuning_type, target_modules, label_token_ids,
    trainable_params, total_params.
    """
    if finetuning_type not in ("lora", "full"):
        raise ValueError(f"model.finetuning_type must be lora or full, got {finetuning_type!r}")
    if trust_remote_code:
        log.warning("model.trust_remote_code=true: loading %r may run Python code shipped with the checkpoint, with "
                    "your privileges. Turn it off unless you have read that code.", model_id)
    backend = choose_backend(backend)
    device = _resolve_device(device)
    if load_in_4bit and not device.startswith("cuda"):
        raise ValueError("model.load_in_4bit=true needs a CUDA GPU (QLoRA training through bitsandbytes breaks on "
                         "CPU): use --set model.load_in_4bit=false")
    if load_in_4bit and finetuning_type == "full":
        raise ValueError("full fine-tuning cannot update 4-bit weights: use --set model.finetuning_type=lora or "
                         "--set model.load_in_4bit=false")
    dtype = _resolve_dtype(compute_dtype, device)
    attn = _attention(use_flash_attention_2, device)

    if model_id == TINY:
        if backend == "unsloth":
            raise ValueError("the tiny model is built locally; unsloth loads models by name: use --set "
                             "model.backend=hf")
        dtype = torch.float32  # 1M parameters: nothing to save by going lower
        model, tokenizer = _load_tiny(tiny, tokenizer_texts, max_length=max_length, dtype=dtype, seed=seed)
        model.to(device)
    elif backend == "unsloth":
        model, tokenizer = _load_unsloth(
            model_id, max_length=max_length, dtype=dtype, load_in_4bit=load_in_4bit, quant_type=quant_type,
            double_quant=double_quant, trust_remote_code=trust_remote_code, full_finetuning=finetuning_type == "full",
            gradient_checkpointing=gradient_checkpointing, seed=seed, cache_dir=cache_dir)
    else:
        model, tokenizer = _load_hf(
            model_id, dtype=dtype, attn=attn, load_in_4bit=load_in_4bit, quant_type=quant_type,
            double_quant=double_quant, trust_remote_code=trust_remote_code, device=device, cache_dir=cache_dir)
    attn = getattr(model.config, "_attn_implementation", attn)
    log.info("model %s: backend %s, attention %s, dtype %s, 4-bit %s", model_id, backend, attn, dtype, load_in_4bit)

    if tokenizer.pad_token is None:  # StarCoder2 ships without one; padding is masked, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # unsloth sets left; scoring and TRL's collator pad on the right
    label_ids = prompt.label_token_ids(tokenizer)
    trim_lm_head(model, label_ids)

    targets = None
    if finetuning_type == "lora":
        targets = validate_target_modules(model, target_modules)
        lora = dict(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=targets,
                    use_rslora=use_rslora, use_dora=use_dora, modules_to_save=["lm_head"])
        if backend == "unsloth":
            from unsloth import FastLanguageModel

            model = FastLanguageModel.get_peft_model(
                model, bias="none", random_state=seed,
                use_gradient_checkpointing="unsloth" if gradient_checkpointing else False, **lora)
        else:
            from peft import LoraConfig, get_peft_model

            if load_in_4bit:
                from peft import prepare_model_for_kbit_training

                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
            with torch.random.fork_rng(devices=[]):  # LoRA's random init, seeded without moving the global RNG
                torch.manual_seed(seed)
                model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **lora))
    else:
        model.requires_grad_(True)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    info = {"backend": backend, "device": device, "attention": attn, "dtype": str(dtype).replace("torch.", ""),
            "load_in_4bit": load_in_4bit, "finetuning_type": finetuning_type, "target_modules": targets,
            "label_token_ids": list(label_ids), "trainable_params": trainable, "total_params": total}
    log.info("trainable parameters: %d of %d", trainable, total)
    return model, tokenizer, info
