"""Token dropout (training.token_dropout): only script tokens are replaced, by script tokens of the same batch, at the
share asked for, reproducibly; the template and the verdict are never touched; and the train stage applies it to
training steps only, never to evaluation."""
import pytest
import torch

from pipeline.config import load_config
from pipeline.languages import LANGS
from pipeline.model import prompt
from pipeline.model.tiny import train_tokenizer
from pipeline.model.trainer import drop_script_tokens
from pipeline.run.runner import run_pipeline

from .conftest import FAST_TRAINING, NO_BASELINE, TINY_CONFIG

MAX_LEN = 96


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [f"Write-Host 'hello {i}'\nimport os\necho $HOME {i}\nset X=%PATH%\nvar a = {i};" for i in range(60)]
    return train_tokenizer(prompt.tokenizer_corpus(corpus), vocab_size=600)


def _rows(tokenizer, windows=prompt.Windows()):
    texts = [f"echo line {i} of a script\n" * (1 + 12 * (i % 2)) for i in range(len(LANGS) * 2)]
    langs = [LANGS[i % len(LANGS)] for i in range(len(texts))]
    labels = ["benign" if i % 3 else "malicious" for i in range(len(texts))]
    return texts, langs, prompt.build_training_rows(texts, langs, labels, tokenizer, MAX_LEN, windows=windows)


@pytest.mark.parametrize("windows", [prompt.Windows(), prompt.Windows(stride=20)], ids=["head-tail", "windows"])
def test_script_spans_hold_the_script_and_nothing_of_the_template(tokenizer, windows):
    spans = prompt.ScriptSpans(tokenizer)
    suffix = prompt._ids(tokenizer, prompt.SUFFIX)
    texts, langs, rows = _rows(tokenizer, windows)
    cut = 0
    for text, lang, row in zip(texts, langs, rows):
        ids = row["input_ids"]
        start, end = spans.span(ids, len(ids) - 2)  # the last id is the verdict; the one before it predicts it
        assert ids[:start] == prompt._ids(tokenizer, prompt.PREFIX.format(lang=lang))
        assert ids[end:-1] == suffix
        script = prompt._ids(tokenizer, text)
        if len(script) == end - start:
            assert ids[start:end] == script
        else:  # cut to fit: the head/tail or the window the row reads, never more than the script
            cut += 1
            assert end - start < len(script)
    assert cut  # the long scripts were cut: the spans were checked on cut rows too
    with pytest.raises(ValueError, match="prompt template"):
        spans.span([7, 7, 7, 7, 7], 3)


def _batch(rows):
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [1] * (width - len(r["input_ids"])) for r in rows])  # 1: <pad>
    last = torch.tensor([len(r["input_ids"]) - 2 for r in rows])
    return ids, last


def test_dropout_replaces_only_script_tokens_with_tokens_of_the_batch(tokenizer):
    spans = prompt.ScriptSpans(tokenizer)
    _, _, rows = _rows(tokenizer)
    ids, last = _batch(rows)
    script = torch.zeros_like(ids, dtype=torch.bool)
    for i, row in enumerate(ids.tolist()):
        start, end = spans.span(row, int(last[i]))
        script[i, start:end] = True
    noised = drop_script_tokens(ids, last, spans, 0.3, seed=5)
    changed = noised != ids
    assert not (changed & ~script).any()  # template, verdict and padding untouched
    share = float(changed.sum()) / float(script.sum())
    assert 0.15 < share < 0.35  # 0.3 asked; a replacement may draw the token it replaces
    assert set(noised[changed].tolist()) <= set(ids[script].tolist())
    assert torch.equal(drop_script_tokens(ids, last, spans, 0.3, seed=5), noised)  # seeded
    assert not torch.equal(drop_script_tokens(ids, last, spans, 0.3, seed=6), noised)
    assert torch.equal(drop_script_tokens(ids, last, spans, 0.0, seed=5), ids)


def test_train_stage_drops_tokens_in_training_steps_only(tmp_path, tiny_overrides, monkeypatch):
    from pipeline.model import trainer as trainer_module

    calls = []
    real = trainer_module.drop_script_tokens

    def recording(input_ids, last_prompt, spans, share, seed):
        out = real(input_ids, last_prompt, spans, share, seed)
        calls.append((share, int((out != input_ids).sum())))
        return out

    monkeypatch.setattr(trainer_module, "drop_script_tokens", recording)
    lines = []
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST_TRAINING, "training.max_steps=3",
                                              "model.max_length=128", "training.token_dropout=0.2", *NO_BASELINE])
    run_pipeline(cfg, tmp_path, until="train", log=lines.append)
    assert len(calls) == 3  # one per training step; the evaluations (every 4 steps, and the final) read ids as they are
    assert all(share == 0.2 and changed > 0 for share, changed in calls)
    assert any("token dropout 0.2" in line for line in lines)
