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
