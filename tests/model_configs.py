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


def train_tiny(texts, labels, lang: str, out, max_length: int, steps: int, tokenizer_texts=None):
    """(model, tokenizer): the tiny model fully fine-tuned in the test for `steps` steps on (texts, labels), batch 8,
    lr 1e-2, no smoothing, no evaluation or checkpoints; the tokenizer is trained on `tokenizer_texts` (default
    `texts`)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from pipeline.model import prompt
    from pipeline.model.trainer import VerdictTrainer

    torch.set_num_threads(1)
    model, tokenizer, _ = load_tiny(list(tokenizer_texts if tokenizer_texts is not None else texts), max_length, "full")
    data = Dataset.from_list([prompt.build_training_row(t, lang, y, tokenizer, max_length)
                              for t, y in zip(texts, labels, strict=True)])
    config = SFTConfig(output_dir=str(out / "trainer"), max_length=max_length, packing=False, completion_only_loss=True,
                       use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
                       per_device_train_batch_size=8, learning_rate=1e-2, max_steps=steps, eval_strategy="no",
                       save_strategy="no", seed=0, label_smoothing_factor=0.0, disable_tqdm=True)
    trainer = VerdictTrainer(model, config, label_smoothing=0.0, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    return trainer.model, tokenizer
