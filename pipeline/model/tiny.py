"""An offline StarCoder2: a byte-level BPE tokenizer trained here and a small randomly initialised model.

It lets the whole pipeline (and its tests) run on a CPU with no model hub. The architecture is the production one
(`Starcoder2ForCausalLM`), only smaller, so every code path (head trimming, LoRA target names, export) is exercised.
"""
from __future__ import annotations

from typing import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Starcoder2Config, Starcoder2ForCausalLM

EOS = "<|endoftext|>"  # StarCoder2's own end-of-text token: also bos and unk here
PAD = "<pad>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, max_length: int = 1 << 20) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`: ids 0 = `<|endoftext|>`, 1 = `<pad>`; right padding.

    Byte-level means every string encodes (no unknown characters), which matters for obfuscated scripts. Training is
    deterministic: the same texts in the same order give the same vocabulary (checked by a test).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        padding_side="right",
        model_max_length=max_length,
    )


def build_tiny_model(
    vocab_size: int,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 4096,
    bos_token_id: int = 0,
    eos_token_id: int = 0,
    pad_token_id: int | None = 1,
    dropout: float = 0.0,
    seed: int = 0,
) -> Starcoder2ForCausalLM:
    """A randomly initialised `Starcoder2ForCausalLM` (about 0.9M parameters with the defaults and vocab 4096).

    The initialisation is seeded without touching the global RNG, so building a model never changes what the caller's
    own random draws would have been. `dropout` applies to embeddings, attention weights and residual branches
    while training (StarCoder2's three dropout settings).
    """
    config = Starcoder2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        embedding_dropout=dropout,
        residual_dropout=dropout,
        attention_dropout=dropout,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Starcoder2ForCausalLM(config)
    return model.float().eval()
