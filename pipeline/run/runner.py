"""The stage graph and the only place that knows stage order, caching and how outputs are published.

A stage is a module in `pipeline/stages/` with `run(ctx) -> counts`. It reads upstream outputs from the run directory
and writes its own files into `ctx.out`, a private temporary directory. When `run` returns, the runner writes
`manifest.json` and swaps the directory into `<run-dir>/<stage>/` by rename, so an interrupted stage leaves nothing a
later run would trust: a stage directory without a manifest, or with a manifest whose fingerprint is not the
expected one, is never used.

A stage sees the config through a `ConfigView` of the keys its `Stage` entry declares; reading any other raises.
Fingerprint of a stage = hash(stage name, the config keys it reads but those declared `affects_output=False`, the
*output digests* of its upstream stages).
Keying on upstream outputs rather than upstream configs gives early cut-off: a config change that leaves an upstream
output byte-identical does not rerun what follows it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Iterable

from pipeline import __version__
from pipeline.config import Config, get_dotted, nest, output_neutral_keys, without_neutral_keys
from pipeline.run.lock import LOCK_FILE, RunDirError, locked_run_dir
from pipeline.run.records import read_json, write_json


@dataclass(frozen=True)
class Stage:
    name: str
    deps: tuple[str, ...]  # upstream stages whose outputs this stage reads
    reads: tuple[str, ...]  # config keys the stage reads; its fingerprint covers them (output-neutral keys aside)
    doc: str
    observes: tuple[str, ...] = ()  # keys read only to pass on to trackers: visible to the stage, never hashed


STAGES: tuple[Stage, ...] = (
    Stage("ingest", (), ("data.ingest",), "read inputs into records; reject bad ones with reasons"),
    Stage("dedup", ("ingest",), ("data.dedup",), "drop exact and near-duplicates; resolve label conflicts"),
    Stage("split", ("dedup",), ("data.split", "run.seed"), "train/val/test split"),
    Stage("augment", ("split",), ("data.augment", "data.dedup.ngram_size", "data.dedup.num_perm", "data.dedup.workers",
                                  "run.seed"),
          "label-preserving variants of train scripts; leakage check of train against val/test"),
    Stage("balance", ("augment",), ("data.balance", "run.seed"), "hybrid over/under-sampling of train"),
    Stage("train", ("balance", "split"), ("model", "lora", "training", "run.seed"),
          "fine-tune the classifier (val for early stopping)", observes=("tracking", "run.name")),
    Stage("evaluate", ("train", "balance", "split"), ("evaluation", "run.seed", "model.allow_pickle_weights",
                                                      "model.device", "training.per_device_eval_batch_size"),
          "threshold on val, metrics on test, baseline"),
    Stage("report", ("evaluate", "train", "balance", "augment", "split", "dedup", "ingest"),
          ("report", "run.name", "run.seed", "model.model_id", "model.finetuning_type", "model.allow_pickle_weights",
           "model.device", "training.per_device_eval_batch_size"), "markdown, HTML, JSON and plots"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
BY_NAME = {s.name: s for s in STAGES}
MANIFEST = "manifest.json"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, quota exceeded


def is_main_process() -> bool:
    """Under `accelerate launch` / torchrun every rank runs the stage; only rank 0 publishes its outputs."""
    return int(os.environ.get("RANK", "0")) == 0


class StageError(RuntimeError):
    """A stage could not run; the message says why and what to do. Earlier outputs are untouched."""


def _covers(declared: str, key: str) -> bool:
    return key == declared or key.startswith(declared + ".")


class ConfigView:
    """The part of the config a stage declared (`Stage.reads` + `Stage.observes`), read like a `Config`.

    Reading any other key raises a StageError: a stage's fingerprint covers exactly its declared keys, so an
    undeclared read would let a config change alter an output without rerunning the stage.
    """

    def __init__(self, config: Config, stage: Stage, path: str = ""):
        self._config, self._stage, self._path = config, stage, path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = f"{self._path}.{name}" if self._path else name
        visible = self._stage.reads + self._stage.observes
        if any(_covers(declared, key) for declared in visible):
            return self._config.get(key)
        if any(_covers(key, declared) for declared in visible):
            return ConfigView(self._config, self._stage, key)
        raise StageError(f"stage {self._stage.name} reads config key '{key}' but does not declare it: add it to "
                         f"the {self._stage.name} entry of STAGES in pipeline/run/runner.py (reads, or observes for "
                         "tracker-only keys)")

    def get(self, dotted: str) -> Any:
        return get_dotted(self, dotted)

    def slice(self, dotted: str) -> Any:
        self.get(dotted)  # raises for an undeclared key
        return self._config.slice(dotted)

    def model_dump(self, mode: str = "json") -> dict:
        """The visible keys as a nested dict (what the stage may log to a tracker)."""
        visible = self._stage.reads + self._stage.observes
        tree = nest({k: self._config.slice(k) for k in visible if not self._path or _covers(self._path, k)})
        for part in self._path.split(".") if self._path else ():
            tree = tree.get(part, {})
        return tree


@dataclass
class StageContext:
    """What a stage sees: its config (a view of its declared keys), where to read upstream outputs, where to write,
    and how to talk."""

    stage: Stage
    config: ConfigView
    run_dir: Path
    out: Path  # private temporary directory: everything written here is published atomically on success
    work: Path  # persistent scratch space that survives interrupts (checkpoints for --resume); never trusted as output
    fingerprint: str = ""  # what this run of the stage will be recorded under
    options: dict = field(default_factory=dict)  # stage-specific command-line options (e.g. resume)
    log: Callable[[str], None] = print

    def input(self, stage: str, name: str) -> Path:
        if stage not in self.stage.deps:
            raise StageError(f"stage {self.stage.name} reads {stage}/{name} but does not declare {stage} as a dependency")
        path = self.run_dir / stage / name
        if not path.exists():
            raise StageError(f"{path} is missing: run `sgpipe {stage}` (or `sgpipe all`) first")
        return path

    def manifest(self, stage: str) -> dict:
        return read_json(self.input(stage, MANIFEST))


# ------------------------------------------------------------------------------------------------ fingerprints
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def input_stats(paths: Iterable[str]) -> list:
    """Cheap identity of the input files (path, size, mtime), like make: content hashing 10 GB would cost minutes."""
    stats = []
    for p in paths:
        root = Path(p)
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):  # no symlink following, as in readers
                if LOCK_FILE in filenames:  # a run directory is never read as input (readers skip it too)
                    dirnames.clear()
                    continue
                dirnames.sort()
                for name in sorted(filenames):
                    f = Path(dirpath, name)
                    try:
                        st = f.lstat()
                        stats.append((str(f), st.st_size, st.st_mtime_ns))
                    except OSError:
                        stats.append((str(f), None, None))
        elif root.exists():
            st = root.stat()
            stats.append((str(root), st.st_size, st.st_mtime_ns))
        else:
            stats.append((str(root), None, None))
    return stats


def fingerprint(stage: Stage, config: Config, upstream: dict[str, str]) -> str:
    slices = {key: without_neutral_keys(key, config.slice(key)) for key in stage.reads
              if key not in output_neutral_keys()}
    extra = {"inputs": input_stats(config.data.ingest.inputs)} if stage.name == "ingest" else {}
    return _digest({"stage": stage.name, "config": slices, "upstream": upstream, "version": __version__, **extra})


def output_digest(directory: Path) -> str:
    """Hash of every file a stage wrote (manifest excluded): what downstream fingerprints key on."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        h.update(str(path.relative_to(directory)).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def versions() -> dict:
    """Library versions for the manifest; heavy libraries only when a stage already imported them."""
    out = {"python": platform.python_version(), "sgpipe": __version__}
    for name in ("numpy", "datasketch", "sklearn", "torch", "transformers", "trl", "peft", "accelerate", "unsloth"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


# ------------------------------------------------------------------------------------------------------ status
@dataclass
class StageStatus:
    stage: Stage
    state: str  # done | stale | missing
    expected: str | None  # fingerprint the current config asks for (None when an upstream is not done)
    manifest: dict | None


def read_manifest(run_dir: Path, name: str) -> dict | None:
    path = run_dir / name / MANIFEST
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None  # missing or unreadable: not trusted


def status(config: Config, run_dir: Path, name: str, known: dict[str, StageStatus] | None = None) -> StageStatus:
    known = {} if known is None else known
    if name in known:
        return known[name]
    stage = BY_NAME[name]
    manifest = read_manifest(run_dir, name)
    upstream = {}
    for dep in stage.deps:
        dep_status = known.get(dep) or status(config, run_dir, dep, known)
        if dep_status.state != "done":
            known[name] = StageStatus(stage, "stale" if manifest else "missing", None, manifest)
            return known[name]
        upstream[dep] = dep_status.manifest["output_digest"]
    expected = fingerprint(stage, config, upstream)
    if manifest is None:
        state = "missing"
    else:
        complete = all((run_dir / name / f).is_file() for f in manifest.get("files", ()))
        state = "done" if manifest.get("fingerprint") == expected and complete else "stale"
    known[name] = StageStatus(stage, state, expected, manifest)
    return known[name]


def statuses(config: Config, run_dir: Path) -> list[StageStatus]:
    known: dict[str, StageStatus] = {}
    return [status(config, run_dir, s.name, known) for s in STAGES]


# ---------------------------------------------------------------------------------------------------- running
def run_stage(config: Config, run_dir: Path, name: str, options: dict | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Run one stage whose upstream is done, and publish its outputs atomically. Returns the manifest."""
    stage = BY_NAME[name]
    st = status(config, run_dir, name)
    if st.expected is None:
        missing = [d for d in stage.deps if status(config, run_dir, d).state != "done"]
        raise StageError(f"{name} needs {', '.join(missing)} first: run `sgpipe all --until {name}`")
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = run_dir / ".tmp"
    tmp_root.mkdir(exist_ok=True)
    out = tmp_root / f"{name}-{os.getpid()}-{time.time_ns()}"
    out.mkdir()
    work = run_dir / ".work" / name
    work.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(stage, ConfigView(config, stage), run_dir, out, work, st.expected, options or {}, log)
    started = time.time()
    try:
        module = import_module(f"pipeline.stages.{name}")
        counts = module.run(ctx)
        if not is_main_process():
            return {"stage": name, "counts": counts, "published": False}
        files = _written_files(out, name)
        manifest = {
            "stage": name,
            "fingerprint": st.expected,
            "inputs": {dep: read_manifest(run_dir, dep)["fingerprint"] for dep in stage.deps},
            "config": {key: config.slice(key) for key in stage.reads},
            "counts": counts,
            "seconds": round(time.time() - started, 3),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "versions": versions(),
            "output_digest": output_digest(out),
            "files": files,  # a stage directory missing any of these is not trusted (see `status`)
        }
        write_json(out / MANIFEST, manifest)
        _publish(out, run_dir / name)
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        where = e.filename or run_dir.resolve()  # a plain write() names no file: then it was the run directory
        raise StageError(f"{name}: the disk holding {where} is full ({e.strerror}). Free space there, or give a "
                         "--run-dir on another disk, and rerun; earlier outputs are intact") from e
    finally:
        shutil.rmtree(out, ignore_errors=True)  # also frees what the stage wrote before the disk filled up
    return manifest


def _written_files(out: Path, name: str) -> list[str]:
    """The files a stage wrote, relative to its folder. Every stage writes at least one: an empty or vanished folder
    means something removed it under the stage (another process), and publishing it would be trusted forever."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
    if not files:
        raise StageError(f"{name}: its output folder {out} vanished or is empty, so nothing was published; was another "
                         "sgpipe using this run directory? Rerun the command")
    return files


def _publish(src: Path, dst: Path) -> None:
    """Swap a finished stage directory into place. A crash between the renames leaves no trusted directory."""
    old = None
    if dst.exists():
        old = src.with_name(src.name + "-old")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_temporaries(run_dir: Path) -> None:
    """Remove the leftovers of interrupted stages (never trusted anyway)."""
    shutil.rmtree(run_dir / ".tmp", ignore_errors=True)


def run_pipeline(config: Config, run_dir: Path, until: str | None = None, force: set[str] = frozenset(),
                 options: dict | None = None, log: Callable[[str], None] = print,
                 on_done: Callable[[dict, bool], None] | None = None) -> list[str]:
    """Bring every stage up to `until` up to date. Stages in `force` rerun even when cached. Returns those that ran."""
    if not is_main_process():  # other ranks only compute: rank 0 holds the lock and owns the temporaries
        return _run_stages(config, run_dir, until, force, options, log, on_done)
    try:
        with locked_run_dir(run_dir):
            clean_temporaries(run_dir)  # only under the lock: another process's temporaries are never removed
            return _run_stages(config, run_dir, until, force, options, log, on_done)
    except RunDirError as e:
        raise StageError(str(e)) from None


def _run_stages(config: Config, run_dir: Path, until: str | None, force: set[str], options: dict | None,
                log: Callable[[str], None], on_done: Callable[[dict, bool], None] | None) -> list[str]:
    last = STAGE_NAMES.index(until) if until else len(STAGES) - 1
    ran = []
    for stage in STAGES[: last + 1]:
        st = status(config, run_dir, stage.name)
        if st.state == "done" and stage.name not in force:
            log(f"[{stage.name}] up to date (fingerprint {st.expected[:12]})")
            if on_done:
                on_done(st.manifest, True)
            continue
        log(f"[{stage.name}] running: {stage.doc}")
        manifest = run_stage(config, run_dir, stage.name, options, log)
        ran.append(stage.name)
        if on_done and is_main_process():
            on_done(manifest, False)
    return ran
