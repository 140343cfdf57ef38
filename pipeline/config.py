"""The typed configuration: every knob sgpipe has, its type, default, range, help text and tuning advice.

Loading order, last wins: schema defaults <- YAML file <- presets (`--preset`) <- overrides (`--set a.b=v`).
Every key is read by some stage: `Stage.reads` in runner.py (the `STAGES` table) says which stage reads which keys.
A stage sees only those keys (any other raises a StageError) and its fingerprint covers them, so changing a key reruns
exactly the stages that read it. Keys declared `affects_output=False` (worker counts, threads, where the report is
copied) are left out of fingerprints: changing them reruns nothing, and a sweep lets them differ between machines.
Keys read outside the stage table: `tracking.*` (the train stage passes them to the trackers; no output depends on
them), `report.dir` and `run.name` also by the CLI (default run and report folders), `model.allow_pickle_weights`
and `data.ingest` limits also by `sgpipe predict` / `evaluate --data`.

Errors are `ConfigError`s that name the key and the fix: an unknown key names the closest valid one, an out-of-range
value names the range, a contradiction between keys names both.
"""
from __future__ import annotations

import difflib
import functools
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.inputs.rejects import ReaderLimits, shorten
from .transforms import DEFAULT_TRANSFORMS, OBFUSCATING, TRANSFORMS

TINY_MODEL_ID = "tiny-starcoder2"  # the built-in offline model: a small StarCoder2 with a locally trained tokenizer


class ConfigError(ValueError):
    """A configuration problem, phrased for the user: which key, what is wrong, how to fix it."""


def _f(default, help: str, guide: str = "", affects_output: bool = True, **kw):
    """A field with help text and tuning advice (shown by `sgpipe config explain`). `affects_output=False` marks a
    key that cannot change any stage's output (threads, workers, paths of copies): fingerprints leave it out."""
    extra = {**({"guide": guide} if guide else {}), **({} if affects_output else {"affects_output": False})}
    return Field(default, description=help, json_schema_extra=extra or None, **kw)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------------------------------------------------- run
class RunConfig(Section):
    name: str = _f("sgpipe", "Run name: names the default run directory (runs/<name>), the report folder "
                   "(reports/<name>) and the tracker run.", "Format {project}-{dataset}-{version}, e.g. scriptguard-dedup-85.",
                   min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = _f(42, "Seed for every random choice: split, augmentation, balancing, and (unless training.seed is "
                   "set) model init and data order.", ge=0, le=2**31 - 1)


# --------------------------------------------------------------------------------------------------------- data
class IngestConfig(Section):
    inputs: list[str] = _f(["data/tiny/scripts.jsonl"], "Files, folders or archives to read: JSONL/CSV (optionally "
                           ".gz), folders laid out as <root>/malicious/** and <root>/benign/**, or zip archives.",
                           min_length=1)
    max_file_bytes: int = _f(ReaderLimits.max_file_bytes, "Largest script (file, archive member or record) accepted; bigger ones are "
                             "rejected with reason too_large.", ge=1, le=1_000_000_000)
    min_chars: int = _f(ReaderLimits.min_chars, "Shortest script accepted (after stripping); shorter ones are rejected as empty.",
                        ge=1, le=100_000)
    label_map: dict[str, Literal["malicious", "benign"]] = _f(
        {}, "Extra label spellings and what they mean, e.g. {'1': malicious, '0': benign}. Only 'malicious' and "
        "'benign' (any case) are accepted without it.")
    follow_symlinks: bool = _f(ReaderLimits.follow_symlinks, "Follow symbolic links inside input folders (never outside the folder).")
    zip_password: str | None = _f(ReaderLimits.zip_password, "Password tried on encrypted zip members (malware archives "
                                  "conventionally use 'infected').")
    zip_max_ratio: float = _f(ReaderLimits.zip_max_ratio, "Compression ratio above which a zip member is treated as a zip bomb.",
                              ge=1.0, le=100_000.0)
    zip_max_total_bytes: int = _f(ReaderLimits.zip_max_total_bytes, "Most uncompressed bytes read from one archive.",
                                  ge=1, le=1_000_000_000_000)

    @model_validator(mode="after")
    def _check(self):
        remapped = {k: v for k, v in self.label_map.items() if k.strip().lower() in ("malicious", "benign")
                    and k.strip().lower() != v}
        if remapped:  # checked here, not only by the readers, so it is a config error before any stage runs
            raise ValueError(f"data.ingest.label_map {remapped} remaps 'malicious'/'benign' themselves, which is "
                             "refused: fix the labels in the data, or remove these entries")
        return self


class DedupConfig(Section):
    enabled: bool = _f(True, "Remove near-duplicates (exact duplicates are always removed).")
    threshold: float = _f(0.85, "Jaccard similarity of token n-gram shingles at or above which two scripts are "
                          "near-duplicates. Every candidate pair is verified exactly.",
                          "0.85 keeps diversity high while catching one-line edits.",
                          ge=0.5, le=1.0)
    ngram_size: int = _f(5, "Tokens per shingle.", ge=1, le=20)
    num_perm: int = _f(128, "MinHash signature length (bins of one-permutation MinHash): longer signatures drop more "
                       "non-duplicates before exact verification, at the same recall; 4 bytes per script each.",
                       ge=16, le=1024)
    conflict_policy: Literal["drop", "majority"] = _f(
        "drop", "A near-duplicate cluster holding both labels: drop it whole, or keep the majority label "
        "(ties are dropped).")
    workers: int = _f(2, "Processes used to hash scripts (results do not depend on it).", ge=1, le=256,
                      affects_output=False)


class SplitConfig(Section):
    val_size: float = _f(0.1, "Fraction for validation: early stopping, checkpoint and threshold choice.",
                         ge=0.05, le=0.3)
    test_size: float = _f(0.2, "Fraction for test: read once, by evaluate.",
                          "<1k samples: 0.3; 1k-10k: 0.2; >10k: 0.1.", ge=0.05, le=0.3)
    group_key: Literal["none", "group", "source"] = _f(
        "group", "Record field whose values never straddle splits (records without it are their own group).")
    stratify_by_lang: bool = _f(True, "Stratify by label and language (falls back to label where a cell is too small).")
    source_val_size: float = _f(0.0, "Fraction of all records held out FIRST, in whole sources (the records' `source` "
                                "field), as the val_source split: an out-of-source validation set that no training, "
                                "val or test script shares a source with. Evaluate reports the model and the baseline "
                                "on it beside val; training.select_on=val_source selects on it. 0: no such split. "
                                "val_size and test_size then apply to the remaining records.",
                                "0.1-0.2 when the data has many sources; figures on a few sources are noisy.",
                                ge=0.0, le=0.3)
    source_test_size: float = _f(0.0, "Fraction of all records held out first, in whole sources, as the test_source "
                                 "split: read once by evaluate, beside test, to show how the model does on sources "
                                 "it never met. 0: no such split.", ge=0.0, le=0.3)

    @model_validator(mode="after")
    def _check(self):
        if self.val_size + self.test_size > 0.6:
            raise ValueError("data.split.val_size + data.split.test_size must be at most 0.6 to leave a training set.")
        if self.source_val_size + self.source_test_size > 0.4:
            raise ValueError("data.split.source_val_size + data.split.source_test_size must be at most 0.4 to leave "
                             "records for train/val/test.")
        return self


class AugmentConfig(Section):
    enabled: bool = _f(True, "Add label-preserving variants of training scripts (train split only, both classes).")
    variants_per_sample: int = _f(1, "Variants attempted per training script.", ge=0, le=20)
    probability: float = _f(0.5, "Probability that each listed transform is applied to a variant.", ge=0.0, le=1.0)
    transforms: list[str] = _f(list(DEFAULT_TRANSFORMS), "Transforms to draw from, in order: "
                               + ", ".join(TRANSFORMS) + ".")
    obfuscating_wrappers: bool = _f(False, "Also draw the base64/hex wrappers (" + ", ".join(OBFUSCATING) + ") "
                                    "after the listed transforms, on both classes alike (listing one in transforms "
                                    "needs this too).")
    leakage_threshold: float = _f(DedupConfig.model_fields["threshold"].default,
                                  "Jaccard similarity (dedup's shingles) at or above which a train row and a val/test "
                                  "script count as leakage: such variants are dropped, such originals are reported.",
                                  "Same as data.dedup.threshold by default.", ge=0.5, le=1.0)
    leakage_warning: float = _f(0.7, "Lower similarity reported as a warning (train rows close to a val/test "
                                "script); at most leakage_threshold.", ge=0.3, le=1.0)

    def drawn_transforms(self) -> list[str]:
        """What variants draw from: `transforms`, then (with obfuscating_wrappers) the wrappers they do not list."""
        return [*self.transforms, *(w for w in OBFUSCATING if self.obfuscating_wrappers and w not in self.transforms)]

    @model_validator(mode="after")
    def _check(self):
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transform(s) {unknown}; choose from {list(TRANSFORMS)}")
        wrappers = [t for t in self.transforms if t in OBFUSCATING]
        if wrappers and not self.obfuscating_wrappers:
            raise ValueError(f"{wrappers} are obfuscating wrappers: set data.augment.obfuscating_wrappers=true to use them")
        if self.leakage_warning > self.leakage_threshold:
            raise ValueError(f"data.augment.leakage_warning ({self.leakage_warning}) must be at most "
                             f"data.augment.leakage_threshold ({self.leakage_threshold})")
        return self


class BalanceConfig(Section):
    method: Literal["none", "oversample", "undersample", "hybrid"] = _f(
        "hybrid", "How the training split is balanced: hybrid oversamples the minority up to oversample_ratio of the "
        "majority, then undersamples the majority to target_ratio.", "hybrid: no class is cut to the minority's size, none copied up to the majority's.")
    oversample_ratio: float = _f(0.8, "Minority size after oversampling, as a fraction of the majority.",
                                 gt=0.0, le=1.0)
    target_ratio: float = _f(1.0, "Minority/majority ratio after undersampling.", gt=0.0, le=1.0)
    per_language: bool = _f(True, "Balance the labels within each language rather than over the whole split, so "
                            "that a script's language carries no label prior (a language with under 10 rows of a "
                            "label is kept as it is).", "true: languages' malicious shares differ in most collections "
                            "(dev set: 22% of JavaScript, 58% of bash) and will differ again where the model is used. "
                            "On the dev set it raised the tiny model's val, held-out-source and leave-source-out ROC AUC "
                            "(README, What it measures).")


class DataConfig(Section):
    ingest: IngestConfig = IngestConfig()
    dedup: DedupConfig = DedupConfig()
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    balance: BalanceConfig = BalanceConfig()


# -------------------------------------------------------------------------------------------------------- model
class TinyModelConfig(Section):
    vocab_size: int = _f(4096, "Tokenizer vocabulary trained on the run's training texts.", ge=512, le=65_536)
    hidden_size: int = _f(128, "Hidden size.", ge=16, le=4096)
    intermediate_size: int = _f(512, "MLP size.", ge=16, le=16_384)
    num_layers: int = _f(2, "Transformer layers.", ge=1, le=48)
    num_heads: int = _f(4, "Attention heads.", ge=1, le=64)
    num_kv_heads: int = _f(2, "Key/value heads (grouped-query attention).", ge=1, le=64)
    dropout: float = _f(0.0, "Dropout on embeddings, attention weights and residual branches while training.",
                        ge=0.0, le=0.5)
    warmup_epochs: float = _f(0.0, "Epochs of self-supervised next-token training on the distinct training scripts "
                              "(no labels) before the classifier fine-tune: the random-init model's stand-in for "
                              "pretraining (pipeline/model/pretrain.py). 0: off.", ge=0.0, le=20.0)
    warmup_learning_rate: float = _f(1e-3, "Peak learning rate of that warm-up (AdamW, 5% warm-up, linear decay).",
                                     gt=0.0, le=1.0)

    # Fields that train the model rather than describe it: everything else is the architecture.
    TRAINING_FIELDS: ClassVar[frozenset[str]] = frozenset({"vocab_size", "warmup_epochs", "warmup_learning_rate"})

    def architecture(self) -> dict:
        """The keyword arguments of `pipeline.model.tiny.build_tiny_model` (vocab_size aside: the trained tokenizer
        decides the vocabulary's real size)."""
        return self.model_dump(exclude=set(self.TRAINING_FIELDS))

    @model_validator(mode="after")
    def _check(self):
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("model.tiny: hidden_size must divide by num_heads and num_heads by num_kv_heads")
        return self


class ModelConfig(Section):
    model_id: str = _f("bigcode/starcoder2-3b", f"Hub id or local path of the base model, or '{TINY_MODEL_ID}' for the "
                       "built-in offline StarCoder2 (random init, tokenizer trained on the run's data).",
                       "8-12 GB: starcoder2-1b; 16-24 GB: starcoder2-3b (production); 40-80 GB: starcoder2-7b.")
    backend: Literal["auto", "unsloth", "hf"] = _f("auto", "auto = Unsloth when a CUDA device is present and Unsloth "
                                                   "is installed, else Hugging Face transformers + PEFT.")
    finetuning_type: Literal["lora", "full"] = _f("lora", "LoRA adapters (pretrained models) or full fine-tuning "
                                                  "(the random-init tiny model, which has nothing to adapt).")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "Where to train and score.", "Always cuda when you have a GPU.")
    max_length: int = _f(512, "Tokens per example, prompt and verdict included. Scripts are truncated by tokens "
                         "(head and tail) so the verdict always fits.", "2048 is the usual LLM cut-off; 512 is "
                         "enough for the tiny model.", ge=32, le=32_768)
    truncation_head_ratio: float = _f(0.75, "Share of a truncated script's token budget kept from its start (the "
                                      "rest from its end).", ge=0.0, le=1.0)
    window_stride: int = _f(0, "Whole-script reading. 0: a script longer than max_length is truncated (head and "
                            "tail). N > 0: it is read as windows of max_length tokens starting every N tokens, each "
                            "scored, the script's score aggregating them; training reads one window per row, drawn "
                            "with run.seed.", "About half of max_length (e.g. 256 at 512) for overlapping "
                            "windows; scoring cost grows with the windows read.", ge=0, le=32_768)
    window_aggregation: Literal["mean", "max"] = _f("mean", "How a windowed script's score combines its windows' "
                                                     "log-odds: mean, or max (the most suspicious window decides).")
    max_windows: int = _f(8, "At most this many windows per script (spread evenly, first and last kept): bounds the "
                          "cost of a huge script.", ge=1, le=1024)
    load_in_4bit: bool = _f(True, "Load the base model in 4 bits (QLoRA). CUDA only.", "Always on below 80 GB VRAM.")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = _f("nf4", "4-bit quantisation type.")
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] = _f("bfloat16", "Compute dtype of 4-bit layers.")
    bnb_4bit_use_double_quant: bool = _f(True, "Quantise the quantisation constants too (saves ~0.4 bit/param).")
    use_flash_attention_2: bool = _f(True, "Use flash-attention 2 when installed on an Ampere+ GPU, else sdpa.",
                                     "2-3x faster on RTX 3000+/A100.")
    gradient_checkpointing: bool = _f(True, "Recompute activations in backward to save memory (CUDA only).",
                                      "<24 GB: true; >40 GB: false (faster).")
    trust_remote_code: bool = _f(False, "Run model code shipped with a hub checkpoint. Off: sgpipe needs none.")
    allow_pickle_weights: bool = _f(False, "Accept pickle (.bin) weights. Off: only safetensors are loaded.")
    tiny: TinyModelConfig = TinyModelConfig()

    @model_validator(mode="after")
    def _check(self):
        if self.device == "cpu" and self.load_in_4bit:
            raise ValueError("model.load_in_4bit needs CUDA; on CPU the model runs in fp32: "
                             "--set model.load_in_4bit=false")
        if self.model_id == TINY_MODEL_ID and self.load_in_4bit:
            raise ValueError(f"the built-in {TINY_MODEL_ID} runs in fp32: --set model.load_in_4bit=false")
        if self.model_id == TINY_MODEL_ID and self.backend == "unsloth":
            raise ValueError(f"the built-in {TINY_MODEL_ID} is built locally and unsloth loads models by name: "
                             "--set model.backend=hf")
        if self.load_in_4bit and self.finetuning_type == "full":
            raise ValueError("full fine-tuning cannot update 4-bit weights: --set model.finetuning_type=lora or "
                             "--set model.load_in_4bit=false")
        if self.window_stride >= self.max_length:
            raise ValueError(f"model.window_stride {self.window_stride} is not below model.max_length "
                             f"{self.max_length}: windows would not overlap; use about half of it (e.g. "
                             f"{self.max_length // 2}), or 0 for head/tail truncation")
        return self


class LoraSection(Section):
    r: int = _f(16, "LoRA rank.", "<1k samples: 8; 1k-10k: 16; 10k-100k: 32; >100k: 64.", ge=1, le=256)
    alpha: int = _f(32, "LoRA scaling (update scale alpha/r).", "Usually 2 x r; = r against overfitting.", ge=1, le=1024)
    dropout: float = _f(0.15, "Dropout on the LoRA path.", "Overfitting: 0.2-0.3; balanced: 0.15; underfitting: 0.05-0.1.",
                        ge=0.0, le=0.5)
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"],
                                   "Linear layers that get adapters, or ['all-linear']. Checked against the model: "
                                   "StarCoder2 has q/k/v/o_proj, c_fc, c_proj (no gate/up/down_proj).",
                                   "Minimal q,v; standard q,k,v,o; production: every linear layer.", min_length=1)
    use_rslora: bool = _f(False, "Rank-stabilised scaling alpha/sqrt(r): helps at high ranks.")
    use_dora: bool = _f(False, "Weight-decomposed LoRA: slightly better, ~slower.")


# ----------------------------------------------------------------------------------------------------- training
Optim = Literal["adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit", "adafactor", "sgd"]
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "cosine_with_min_lr", "polynomial", "constant",
                    "constant_with_warmup"]
BestMetric = Literal["eval_loss", "eval_roc_auc", "eval_specificity", "eval_sensitivity", "eval_balanced_accuracy"]


class TrainingConfig(Section):
    per_device_train_batch_size: int = _f(4, "Examples per device per step.", "24 GB: 4 with accumulation 8.", ge=1, le=1024)
    per_device_eval_batch_size: int = _f(8, "Examples per device per evaluation/scoring batch.", ge=1, le=4096)
    gradient_accumulation_steps: int = _f(8, "Steps whose gradients add up before an update.",
                                          "Effective batch = batch x accumulation: aim for 32-64.", ge=1, le=1024)
    learning_rate: float = _f(4e-5, "Peak learning rate.", "1B: 1e-4; 3B: 4e-5; 7B+: 2e-5; from scratch: 1e-3.",
                              gt=0.0, le=1e-2)
    weight_decay: float = _f(0.15, "AdamW weight decay.", "<1k: 0.2-0.3; 1k-10k: 0.15; 10k-100k: 0.05-0.1.",
                             ge=0.0, le=0.5)
    label_smoothing_factor: float = _f(0.1, "Label smoothing over the two labels: 0.1 gives targets 0.05/0.95.",
                                       "0.1-0.15 when the model calls everything one class ('Specificity: 0.00').",
                                       ge=0.0, le=0.3)
    embedding_lr_scale: float = _f(1.0, "The input embeddings learn at learning_rate x this (full fine-tuning; LoRA "
                                   "keeps them frozen). A token's row is updated only in the steps whose batch holds "
                                   "it, so in a short run from random init the rows of rare tokens barely leave their "
                                   "initialisation.", "1 for a pretrained model. Tiny model, shared dev set: 30 lowered "
                                   "val loss on 5 of 5 seeds but lost on held-out sources (README, 'Token dropout'); "
                                   "compare on yours.", gt=0.0, le=1000.0)
    token_dropout: float = _f(0.0, "Share of each training row's script tokens replaced, at every step, by tokens "
                              "drawn from the batch's own script tokens (seeded by the step and the batch). The "
                              "template, the verdict and padding are never touched; evaluation and prediction read "
                              "scripts unchanged.", "A regulariser against a few memorised tokens deciding the "
                              "verdict. Tiny model, shared dev set: 0.1 raised val ROC AUC by 0.010 (5 of 5 seeds) "
                              "but not on held-out sources (README, 'Token dropout'); compare on yours.",
                              ge=0.0, le=0.5)
    seed: int | None = _f(None, "Seed of what training alone draws: the model's initialisation, the data order, the "
                          "window each long script's row reads, the distillation teacher's folds, token dropout. "
                          "None: run.seed. The split and the data stages stay run.seed's.", "Keep run.seed fixed "
                          "and vary this to see how far training noise alone moves a figure on one split (`sgpipe "
                          "sweep --grid training.seed=1,2,3`) before trusting a difference between two configs.",
                          ge=0, le=2**31 - 1)
    class_weights: Literal["none", "balanced"] = _f("none", "Weight the loss by inverse class frequency.")
    distill_from: Literal["none", "tfidf"] = _f("none", "tfidf: each training row's verdict target mixes its label with "
                                                "the TF-IDF baseline's out-of-fold P(malicious) for it (a teacher that "
                                                "never saw the row's script or its variants; pipeline/model/trainer.py)."
                                                " Only the training loss changes; eval loss stays the plain one.")
    distill_weight: float = _f(0.5, "With distill_from: the teacher's share of the target (0: the label alone, 1: the "
                               "teacher alone).", ge=0.0, le=1.0)
    optim: Optim = _f("paged_adamw_8bit", "Optimizer. 8-bit optimizers need CUDA; on CPU adamw_torch is used "
                      "(logged).", "<=24 GB: paged_adamw_8bit; >40 GB: adamw_torch.")
    lr_scheduler_type: Scheduler = _f("cosine", "Learning-rate schedule after warmup.", "1-3 epochs: cosine.")
    warmup_steps: int = _f(0, "Linear warmup steps; 0 uses warmup_ratio, which follows the run's length.",
                           "About 5-10% of total steps: prefer warmup_ratio.", ge=0, le=100_000)
    warmup_ratio: float = _f(0.05, "Warmup as a fraction of total steps (when warmup_steps is 0).",
                             "0.05-0.1 (5-10% of the steps).", ge=0.0, le=0.5)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.", "Full fine-tune 1.0; LoRA 0.3-1.0.", gt=0.0, le=100.0)
    num_epochs: float = _f(1.0, "Passes over the training split.", "Small data: 3; medium/large: 1.", gt=0.0, le=100.0)
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: use num_epochs).", ge=-1, le=10_000_000)
    eval_strategy: Literal["steps", "epoch", "no"] = _f("steps", "When to evaluate on the VALIDATION split.",
                                                        "Always steps: it enables early stopping.")
    eval_steps: int = _f(50, "Steps between evaluations (when eval_per_epoch is 0).", "About 2-5% of total steps.",
                         ge=1, le=1_000_000)
    save_steps: int = _f(50, "Steps between checkpoints (when eval_per_epoch is 0).", "Equal to eval_steps.",
                         ge=1, le=1_000_000)
    eval_per_epoch: float = _f(0.0, "Evaluations per epoch, each followed by a checkpoint: the step interval is "
                               "computed from the training rows and the effective batch (at least 1 step), so the "
                               "cadence follows the dataset's size. 0 uses eval_steps / save_steps. Needs "
                               "eval_strategy=steps (or no).", "2-5 per epoch; `sgpipe train --dry-run` shows the steps.",
                               ge=0.0, le=1000.0)
    save_total_limit: int = _f(2, "Checkpoints kept on disk (the best is always kept).", ge=1, le=1000)
    logging_steps: int = _f(10, "Steps between training-loss log lines.", ge=1, le=100_000)
    load_best_model_at_end: bool = _f(True, "Finish with the best checkpoint by metric_for_best_model.",
                                      "Always true: the last checkpoint may be overfitted.")
    metric_for_best_model: BestMetric = _f("eval_loss", "Validation metric that picks the best checkpoint.")
    select_on: Literal["val", "val_source"] = _f(
        "val", "Split that evaluations during training read, so the one early stopping and the best checkpoint "
        "follow: val (in-distribution) or val_source (whole sources the model never trains on; needs "
        "data.split.source_val_size > 0). The threshold is always chosen on val.",
        "val_source when new scripts will come from sources unlike the training data.")
    early_stopping: bool = _f(True, "Stop when the validation metric stops improving.")
    early_stopping_patience: int = _f(2, "Evaluations without improvement before stopping.",
                                      "patience x eval_steps = 100-200 steps.", ge=1, le=100)
    early_stopping_threshold: float = _f(0.001, "Smallest change that counts as an improvement.", ge=0.0, le=1.0)
    early_stopping_min_epochs: float = _f(1.0, "Epochs that must pass before early stopping may stop training (it "
                                          "still counts patience before then).", "About 1-2 on small data: the first "
                                          "evaluations are noisy.", ge=0.0, le=100.0)
    early_stopping_min_val_scripts: int = _f(100, "Validation scripts below which early stopping is off for the run "
                                             "(a warning says so): a smaller split's loss is too noisy to stop on. "
                                             "The best checkpoint is still kept.", ge=0, le=1_000_000)
    bf16: bool = _f(True, "bfloat16 mixed precision (Ampere+ GPUs; off on CPU, logged).")
    fp16: bool = _f(False, "float16 mixed precision (older GPUs).")
    tf32: bool = _f(True, "TF32 matmuls on Ampere+ GPUs.")
    group_by_length: bool = _f(True, "Batch scripts of similar length together to cut padding.",
                               "Dev-set lengths, batch 16, seq 512: padding 57% -> 4%, 2.2x fewer token positions.")
    torch_threads: int = _f(0, "CPU threads for torch (0: torch's default).", ge=0, le=256, affects_output=False)

    def seed_or(self, run_seed: int) -> int:
        """The seed training draws with: training.seed, else the run's."""
        return run_seed if self.seed is None else self.seed

    @model_validator(mode="after")
    def _check(self):
        if self.bf16 and self.fp16:
            raise ValueError("training.bf16 and training.fp16 are both true: choose one")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("set training.warmup_steps or training.warmup_ratio, not both (the other to 0)")
        if self.eval_per_epoch and self.eval_strategy == "epoch":  # with "no" there is nothing to pace
            raise ValueError("training.eval_per_epoch needs training.eval_strategy=steps, not 'epoch' (or set "
                             "training.eval_per_epoch=0)")
        if self.early_stopping and not self.load_best_model_at_end:
            raise ValueError("training.early_stopping needs training.load_best_model_at_end=true")
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise ValueError("training.load_best_model_at_end needs evaluation: set training.eval_strategy=steps")
            if self.eval_strategy == "steps" and not self.eval_per_epoch and self.save_steps % self.eval_steps:
                raise ValueError(f"training.save_steps ({self.save_steps}) must be a multiple of training.eval_steps "
                                 f"({self.eval_steps}) when load_best_model_at_end is true")
        return self


# ------------------------------------------------------------------------------------------ evaluation, report
class EvaluationConfig(Section):
    threshold_policy: Literal["youden", "target_specificity", "target_sensitivity", "max_f1", "fixed"] = _f(
        "youden", "How the decision threshold is chosen on the VALIDATION split.")
    target: float = _f(0.99, "Target for target_specificity / target_sensitivity.", ge=0.5, le=1.0)
    fixed_threshold: float = _f(0.5, "Threshold for the fixed policy.", ge=0.0, le=1.0)
    bootstrap_samples: int = _f(1000, "Bootstrap resamples for 95% intervals (0: none).", ge=0, le=100_000)
    baseline: bool = _f(True, "Train and score a TF-IDF + logistic regression baseline beside the model.")
    ensemble: Literal["none", "tfidf"] = _f(
        "none", "tfidf: also stack the model's and the baseline's scores (logistic regression on their log-odds, fit on "
        "the VALIDATION split; its threshold from out-of-fold val scores) and report it beside both. Needs "
        "evaluation.baseline=true.")
    per_language_thresholds: bool = _f(True, "Also choose a threshold per language on val (same policy) and report "
                                       "test figures at them beside the global threshold.")
    per_language_min_count: int = _f(40, "Val scripts a language needs (and >= 10% of each label) for a threshold of "
                                     "its own; fewer fall back to the global one.",
                                     "A val split of ~180 swings the global threshold widely already.", ge=10,
                                     le=1_000_000)

    @model_validator(mode="after")
    def _check(self):
        if self.ensemble != "none" and not self.baseline:
            raise ValueError("evaluation.ensemble=tfidf stacks the baseline's scores: set evaluation.baseline=true "
                             "or evaluation.ensemble=none")
        return self


class ReportConfig(Section):
    dir: str = _f("reports", "Folder under which a copy of the report, reports/<run.name>/, is written. Changing it "
                  "reruns nothing: `sgpipe report` writes the copy there.", affects_output=False)
    worst_examples: int = _f(10, "False positives and false negatives shown (escaped, cut).", ge=0, le=1000)
    excerpt_chars: int = _f(400, "Characters of each example shown.", ge=20, le=20_000)
    explain_lines: int = _f(5, "Lines highlighted in each worst example: the ones whose removal moves P(malicious) "
                               "most (occlusion, as `sgpipe explain`). 0: no explanations.", ge=0, le=100)
    faithfulness_scripts: int = _f(200, "True positives of the test split on which the faithfulness table is "
                                        "measured (removing each script's top-k lines vs k random lines, k = 1, 3, "
                                        "5). 0: skip it.", ge=0, le=100_000)


class TrackingConfig(Section):
    report_to: list[Literal["wandb", "tensorboard", "mlflow", "none"]] = _f(
        ["none"], "Experiment trackers.", "Development: wandb; production: wandb + tensorboard; offline: tensorboard.",
        affects_output=False)
    project: str = _f("sgpipe", "Tracker project name.", affects_output=False)
    tags: list[str] = _f([], "Extra tags for the tracker run.", affects_output=False)
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = _f(
        "auto", "auto = online with an API key, else offline (logged).", affects_output=False)


class Config(Section):
    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    lora: LoraSection = LoraSection()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _check_selection_split(self):
        if self.training.embedding_lr_scale != 1.0 and self.model.finetuning_type == "lora":
            raise ValueError("training.embedding_lr_scale acts on trained embeddings, and LoRA keeps them frozen "
                             "(model.finetuning_type=lora): leave it at 1 or set model.finetuning_type=full")
        if self.training.select_on == "val_source" and not self.data.split.source_val_size:
            raise ValueError("training.select_on=val_source needs an out-of-source validation split: set "
                             "data.split.source_val_size (e.g. 0.15) or use training.select_on=val")
        return self

    def get(self, dotted: str) -> Any:
        return get_dotted(self, dotted)

    def slice(self, dotted: str) -> Any:
        """A JSON-ready copy of one section or key: what a stage's fingerprint and manifest record."""
        value = self.get(dotted)
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


# ---------------------------------------------------------------------------------------------------- loading
# Keys that are not settings: what sgpipe always does, asked for by name in other tools' configs. Setting one is an
# error that says why the choice is fixed, instead of an "unknown key".
REMOVED_KEYS = {
    "data.split.augment_after_split": "sgpipe always augments after the split (augment reads the train split "
                                      "only): augmenting before it puts variants of one script in train and test "
                                      "(leakage), so there is nothing to choose",
    "training.packing": "sgpipe never packs rows: the classifier reads one verdict per row, and packing puts several "
                        "scripts in one row",
}


@functools.lru_cache(maxsize=None)
def output_neutral_keys() -> tuple[str, ...]:
    """Dotted keys declared `affects_output=False`: no stage output depends on them, so no fingerprint covers them."""
    keys = []
    for key in all_keys(leaves_only=True):
        extra = _field(key).json_schema_extra
        if isinstance(extra, dict) and extra.get("affects_output") is False:
            keys.append(key)
    return tuple(keys)


def without_neutral_keys(key: str, value: Any) -> Any:
    """A config slice (`Config.slice(key)`) with its output-neutral keys removed: what a fingerprint hashes."""
    neutral = [k for k in output_neutral_keys() if k.startswith(key + ".")]
    if not neutral or not isinstance(value, dict):
        return value
    flat = flatten(value, key + ".")
    return nest({k.removeprefix(key + "."): v for k, v in flat.items() if k not in neutral})


# -------------------------------------------------------------------------------------- config-tree helpers
def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: dotted keys (trackers want flat parameter names; sweeps compare them)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def get_dotted(node: Any, dotted: str) -> Any:
    """node.a.b for key 'a.b' (a Config, a section, or a stage's view of the config)."""
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """tree['a']['b'] = value for key 'a.b', creating sections on the way (no schema check: see `_set_dotted`)."""
    *parents, leaf = key.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def nest(flat: dict) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}}, sections in schema order (the order `sgpipe config show` prints)."""
    order = {k: i for i, k in enumerate(all_keys())}
    tree: dict = {}
    for key in sorted(flat, key=lambda k: order.get(k, len(order))):
        set_dotted(tree, key, flat[key])
    return tree


def _field(key: str):
    model: type[BaseModel] = Config
    *parents, leaf = key.split(".")
    for p in parents:
        model = model.model_fields[p].annotation
    return model.model_fields[leaf]


def _refuse_removed(key: str) -> None:
    if key in REMOVED_KEYS:
        raise ConfigError(f"'{key}' is not a setting: {REMOVED_KEYS[key]}. Remove the key.")
def all_keys(model: type[BaseModel] = Config, prefix: str = "", leaves_only: bool = False) -> list[str]:
    """Every dotted key of the schema (sections included unless `leaves_only`)."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + name
        sub = field.annotation
        is_section = isinstance(sub, type) and issubclass(sub, BaseModel)
        if not (is_section and leaves_only):
            keys.append(key)
        if is_section:
            keys += all_keys(sub, key + ".", leaves_only)
    return keys


def _closest(key: str) -> str:
    keys = all_keys()
    leaf_matches = [k for k in keys if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
    best = difflib.get_close_matches(key, keys, n=1, cutoff=0.5) or leaf_matches[:1]
    if not best:  # e.g. 'lora_r' -> 'lora.r': compare the leaf names alone
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        leaf = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.6)
        best = [by_leaf[leaf[0]]] if leaf else []
    return f" Did you mean '{best[0]}'?" if best else ""


def _explain(err: ValidationError, origin: str) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc)
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{_truncate(key, 120)}'.{_closest(key)}")
        elif e["type"] == "value_error":
            lines.append(str(e["msg"]).removeprefix("Value error, ") + (f" (in '{key}')" if key else ""))
        else:
            lines.append(_type_error(loc, e))
    # every echoed value is bounded: a config can be written by anyone, and one line must not hold megabytes of it
    return ConfigError(f"invalid configuration ({origin}):\n  " + "\n  ".join(_truncate(line) for line in lines))


def _truncate(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _type_error(loc: list[str], e: dict) -> str:
    """A wrong-type message with the fix: the key `config explain` knows (not a dict key or list index under it)."""
    keys = set(all_keys())
    known = next((".".join(loc[:n]) for n in range(len(loc), 0, -1) if ".".join(loc[:n]) in keys), ".".join(loc))
    inner = [p for p in loc[len(known.split(".")):] if p != "[key]"]
    where = f"'{known}'" + (f" entry {shorten(inner[0], 40)}" if inner else "")
    fix = _TYPE_FIXES.get(e["type"], "")
    return f"{where}: {e['msg']} (got {shorten(e.get('input'))}).{fix} See `sgpipe config explain {known}`."


_TYPE_FIXES = {  # pydantic error type -> how to write the value instead
    "list_type": " Write a list: in YAML `[a, b]` or one `- a` per line; on the command line --set key=[a,b].",
    "string_type": " Write text: quote the value in YAML ('1', 'yes'), so it is not read as a number or boolean.",
    "dict_type": " Write a mapping: in YAML `{a: b}` or one `a: b` per line.",
}


def parse_override(item: str) -> tuple[str, Any]:
    """'training.learning_rate=1e-4' -> ('training.learning_rate', 0.0001). Values are YAML scalars or lists, except
    for a text field, whose value stays the text written: YAML 1.1 would read `no`/`on` as booleans and `1.0` as a
    number, so `--set training.eval_strategy=no` would fail with "got False"."""
    if "=" not in item:
        raise ConfigError(f"--set expects KEY=VALUE, got {shorten(item)} (e.g. --set training.learning_rate=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if _is_text_field(key) and value is not None and not isinstance(value, str):
        return key, raw  # `no` -> "no", `1.0` -> "1.0"; a quoted "cuda" was unquoted by YAML above
    if isinstance(value, str) and _looks_numeric(raw):
        value = float(raw)  # YAML 1.1 reads '1e-4' as a string
    return key, value


def _is_text_field(key: str) -> bool:
    """Whether the dotted key is a str / Literal-of-str field (optionally `| None`)."""
    if key not in all_keys(leaves_only=True):
        return False
    model: Any = Config
    *parents, leaf = key.split(".")
    for p in parents:
        model = model.model_fields[p].annotation
    annotation = model.model_fields[leaf].annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    return all(a is str or (typing.get_origin(a) is Literal and all(isinstance(v, str) for v in typing.get_args(a)))
               for a in options)


def _looks_numeric(raw: str) -> bool:
    try:
        float(raw)
        return True
    except ValueError:
        return False


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    _refuse_removed(key)
    if key not in all_keys():
        raise ConfigError(f"unknown key '{key}'.{_closest(key)} Run `sgpipe config show` for every key.")
    node = tree
    for p in key.split(".")[:-1]:
        node = node.get(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"'{p}' in '{key}' is a value, not a section")
    set_dotted(tree, key, value)


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a bigger file is a mistake or an attack
MAX_CONFIG_VALUES = 100_000  # values in the config once aliases are expanded; a few hundred in practice


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key written twice in one mapping is an error instead of silently last-wins."""

    def construct_mapping(self, node, deep=False):
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                seen = first.setdefault((key_node.tag, key_node.value), key_node.start_mark.line + 1)
                if seen != key_node.start_mark.line + 1:
                    raise _DuplicateKey(key_node.value, seen, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep)


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, again: int):
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def load_yaml(path: Path) -> dict:
    """A YAML config file as a dict, refusing what would hang or silently lose a setting: a file over 1 MB, aliases
    expanding past MAX_CONFIG_VALUES values (a "billion laughs" bomb), recursive aliases, and duplicate keys."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} a config may have; is it the "
                          "right file?")
    loader = _StrictLoader(path.read_text(encoding="utf-8", errors="replace"))
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_expansion(node, path)
        tree = loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {_truncate(str(e))}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a config; check its indentation") from None
    except _DuplicateKey as e:
        raise ConfigError(f"{path}:{e.again}: key {shorten(e.key)} is written twice in one mapping (first at line "
                          f"{e.first}); YAML would keep only the last silently. Merge the two into one.") from None
    finally:
        loader.dispose()
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (run, data, model, ...), not {type(tree).__name__}")
    return tree


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Count the values `root` holds once every alias is expanded, in time linear in the nodes (sizes are memoised
    per node: an alias points at the node it names), and refuse a bomb before anything expands it."""
    sizes: dict[int, int] = {}
    opened: set[int] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in sizes:
            stack.pop()
            continue
        children = _children(node)
        if id(node) not in opened:
            opened.add(id(node))
            for child in children:
                if id(child) in opened and id(child) not in sizes:  # an ancestor still open: the alias loops
                    raise ConfigError(f"{path}: an alias (*name) refers to a mapping or list that contains it; "
                                      "remove the recursive alias")
                stack.append(child)
            continue
        sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
        if sizes[id(node)] > MAX_CONFIG_VALUES:
            raise ConfigError(f"{path}: holds more than {MAX_CONFIG_VALUES:,} values once its aliases (*name) are "
                              "expanded, which no config needs (a 'billion laughs' bomb?); check the file")
        stack.pop()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_config(path: str | Path | None = None, presets: list[str] = (), overrides: list[str] = (),
                inputs: list[str] | None = None) -> Config:
    """Resolve a config: defaults <- YAML file <- presets <- --set overrides <- --input paths."""
    from .presets import PRESETS  # local: presets import this module's key list

    tree: dict = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (try configs/tiny.yaml)")
        tree = load_yaml(path)
        origin = str(path)
        for key in flatten(tree):
            _refuse_removed(key)
    for name in presets:
        if name not in PRESETS:
            near = difflib.get_close_matches(name, list(PRESETS), n=1)
            raise ConfigError(f"unknown preset '{name}'." + (f" Did you mean '{near[0]}'?" if near else "")
                              + f" Presets: {', '.join(PRESETS)}")
        for key, value in PRESETS[name].changes.items():
            _set_dotted(tree, key, value)
    for item in overrides:
        _set_dotted(tree, *parse_override(item))
    if inputs:
        _set_dotted(tree, "data.ingest.inputs", list(inputs))
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise _explain(e, origin) from None


def field_info(key: str) -> dict:
    """Help, default, range and guidance of one dotted key (for `sgpipe config explain`)."""
    _refuse_removed(key)
    if key not in all_keys():
        raise ConfigError(f"unknown key '{key}'.{_closest(key)}")
    field = _field(key)
    bounds = {}
    for m in field.metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(m, attr, None) is not None:
                bounds[attr] = getattr(m, attr)
    default = field.default
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json")
    return {"key": key, "type": str(field.annotation).replace("typing.", ""), "default": default,
            "range": bounds, "help": field.description or "", "guide": (field.json_schema_extra or {}).get("guide", ""),
            "affects_output": key not in output_neutral_keys()}
