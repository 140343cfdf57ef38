"""`make gpu-wheels`: the wheels benchmarks/gpu_check.py needs on a CUDA machine with no network, in gpu-wheels/.

That machine's Python 3.12 has torch, transformers, peft, accelerate, safetensors, tokenizers, numpy, scikit-learn,
pyarrow (gpu_check records what it found). Everything else the pipeline imports is downloaded here for Python 3.12
manylinux x86-64 with `pip download --no-deps`: each dependency is named below, one version each (the versions this
project's CI tested, read from this environment, or pinned where CI has none). Then the wheels are stripped to fit
one device call (64 MiB): bitsandbytes keeps only the CUDA 13.0 build that matches the GPU image's torch (cu130),
unsloth loses `studio/` (a web app, unused by training). The stripped wheels stay installable with
`pip install --no-index --no-deps` (their RECORD lists what is left).
"""
from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64
# GPU only, not in CI: bitsandbytes, unsloth and what `import unsloth` / unsloth_zoo import at module level (their
# other requirements, e.g. xformers, tyro, diffusers, hf_transfer, are imported lazily or inside try blocks)
PINNED = {"bitsandbytes": "0.50.2", "unsloth": "2026.10.9", "unsloth_zoo": "2026.10.9", "einops": "0.8.2",
          "msgspec": "0.23.0"}
FROM_CI = ["trl", "datasets", "dill", "multiprocess", "xxhash", "fsspec", "pandas", "python-dateutil", "tzdata",
           "pydantic", "pydantic_core", "annotated-types", "typing-inspection", "imbalanced-learn", "psutil", "pillow"]
STRIP = {  # wheel name prefix: (member is dropped when it starts with, unless it contains)
    "bitsandbytes-": ("bitsandbytes/libbitsandbytes_", "cuda130"),
    "unsloth-2": ("studio/", None),
}


# pip matches manylinux_2_N exactly: list the glibc levels wheels are published for (bitsandbytes uses 2_24)
PLATFORMS = [arg for n in (17, 24, 27, 28, 31, 34, 35) for arg in ("--platform", f"manylinux_2_{n}_x86_64")] + [
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64", "--platform", "any"]


def requirements() -> list[str]:
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in FROM_CI]
    return pins + [f"{name}=={version}" for name, version in PINNED.items()]


def download(folder: Path, reqs: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
                    "--abi", "none", *PLATFORMS, "-d", str(folder), *reqs], check=True)


def strip(wheel: Path, prefix: str, keep: str | None) -> int:
    """Rewrite `wheel` without the members under `prefix` (except those containing `keep`); bytes saved."""
    before = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as src:
        members = [i for i in src.infolist()
                   if not (i.filename.startswith(prefix) and (keep is None or keep not in i.filename))]
        kept = {i.filename for i in members}
        blobs = {i.filename: src.read(i) for i in members}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in members:
            data = blobs[info.filename]
            if info.filename.endswith(".dist-info/RECORD"):  # list only what is left
                rows = [r for r in csv.reader(io.StringIO(data.decode())) if r and r[0] in kept | {info.filename}]
                text = io.StringIO()
                csv.writer(text, lineterminator="\n").writerows(rows)
                data = text.getvalue().encode()
            dst.writestr(info, data)
    wheel.write_bytes(out.getvalue())
    return before - wheel.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_wheels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "gpu-wheels"), help="folder for the wheels (git-ignored)")
    args = parser.parse_args(argv)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    reqs = requirements()
    download(folder, reqs)
    for wheel in sorted(folder.glob("*.whl")):
        for name, (prefix, keep) in STRIP.items():
            if wheel.name.startswith(name):
                print(f"{wheel.name}: stripped {strip(wheel, prefix, keep) / 2**20:.1f} MiB ({prefix}*)")
    total = 0
    for wheel in sorted(folder.glob("*.whl")):
        total += wheel.stat().st_size
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"{total / 2**20:7.2f} MiB  in all ({len(reqs)} requirements), limit {LIMIT_MIB} MiB")
    if total > LIMIT_MIB * 2**20:
        print(f"error: over the {LIMIT_MIB} MiB one device call carries", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
