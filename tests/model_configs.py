"""The tiny model's config sections for tests that load it directly (the stages build them from configs/tiny.yaml)."""
from __future__ import annotations

from pipeline.config import TINY_MODEL_ID, LoraSection, ModelConfig


def tiny_model_config(max_length: int, finetuning_type: str = "full", vocab_size: int = 512, **kw) -> ModelConfig:
    """configs/tiny.yaml's model section (hf backend, CPU, fp32), with a small vocabulary for speed."""
    return ModelConfig(model_id=TINY_MODEL_ID, backend="hf", finetuning_type=finetuning_type, device="cpu",
                       max_length=max_length, load_in_4bit=False, use_flash_attention_2=False,
                       gradient_checkpointing=False, tiny={"vocab_size": vocab_size}, **kw)


def load_tiny(texts, max_length: int, finetuning_type: str = "full", vocab_size: int = 512, seed: int = 0,
              lora: dict | None = None, **model_kw):
    """(model, tokenizer, info) from backends.load_model with the tiny config above."""
    from pipeline.model import backends

    return backends.load_model(tiny_model_config(max_length, finetuning_type, vocab_size, **model_kw),
                               LoraSection(**(lora or {})), device="cpu", seed=seed, tokenizer_texts=texts)
