"""Every benchmark and measurement script imports: they run by hand (`python -m benchmarks ...`), not in CI, so a
renamed helper they import would otherwise break them silently."""
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "__main__"))


def test_the_benchmarks_folder_holds_scripts():
    assert "bench_dedup" in SCRIPTS and "common" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_script_imports_and_has_an_entry_point(name):
    module = importlib.import_module(f"benchmarks.{name}")
    if name.startswith("bench_"):
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"


def test_source_folds_keep_each_source_whole_and_give_every_fold_both_labels():
    """The leave-source-out benchmark's fold assignment: a source never straddles folds (else the held-out fold's
    scripts would share a source with training), each label's scripts are dealt evenly, and the seed decides ties."""
    from collections import Counter

    from benchmarks.source_folds import assign_folds

    sources = {f"m{i}": Counter(malicious=10 + i) for i in range(6)}
    sources |= {f"b{i}": Counter(benign=20 + i, malicious=1 if i == 0 else 0) for i in range(9)}
    sources["big"] = Counter(benign=100)
    fold = assign_folds(sources, 3, seed=1)
    assert set(fold) == set(sources) and set(fold.values()) == {0, 1, 2}
    per_fold = [Counter() for _ in range(3)]
    for name, k in fold.items():
        per_fold[k].update(sources[name])
    assert all(c["malicious"] > 0 and c["benign"] > 0 for c in per_fold)
    assert max(c["malicious"] for c in per_fold) - min(c["malicious"] for c in per_fold) <= 15  # the largest source
    assert assign_folds(sources, 3, seed=1) == fold


def test_language_calibration_aligns_languages_without_reordering_inside_one():
    """Per-language Platt scaling: two languages whose scores sit on shifted scales rank badly pooled; calibrated on
    val they pool well, while the order inside each language is untouched. A language too small for its own fit
    falls back to the global one."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from benchmarks.language_calibration import LanguageCalibration, cross_fitted

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    langs = np.array(["bash"] * 200 + ["python"] * 200)
    z = 2.0 * y + rng.normal(0, 1, 400) + np.where(langs == "python", 3.0, 0.0)  # python's scale is shifted up
    calibrated = LanguageCalibration().fit(z, y, langs).transform(z, langs)
    assert roc_auc_score(y, calibrated) > roc_auc_score(y, z) + 0.05
    for lang in ("bash", "python"):
        mine = langs == lang
        assert np.array_equal(np.argsort(calibrated[mine]), np.argsort(z[mine]))
    assert roc_auc_score(y, cross_fitted(z, y, langs)) > roc_auc_score(y, z)
    small = LanguageCalibration(min_count=300).fit(z, y, langs)
    assert set(small.fits) == {None}
