"""Sweeps: a baseline, then trials that change the config, each a full run directory; data stages computed once.

The method: start from a baseline, change one parameter at a time (or search a grid),
compare every trial with the baseline. Layout of a sweep directory:

    <sweep>/data/                 the data stages (ingest .. balance) of the base config, computed once
    <sweep>/data-s<N>/            ... one per seed with --seeds (the split follows run.seed)
    <sweep>/trials/<name>/        one full run per trial: config.yaml, trial.json, ingest/ .. report/
    <sweep>/reports/              the trials' report mirrors
    <sweep>/sweep.json            the table of trials (status, changes, objective, stages run and reused)
    <sweep>/optuna.db             the Optuna study (random and TPE search), unless --storage names another

Reuse goes through the runner's cache, not around it: each trial directory starts with hard links (or copies) of
the data stage folders, manifests included, and the runner checks their fingerprints against the trial's config.
A trial whose data config equals the base's finds them done and runs train, evaluate and report only; a trial that
changes a data key reruns exactly the stages that read it. Links are safe because the runner never writes into a
published stage folder: it builds a new one and renames it into place.

Random and TPE search use Optuna with ask/tell. Its storage is the way to scale out: SQLite in the sweep directory
on one machine, or a database URL that several `sgpipe sweep --worker` processes share; a worker joins the study by
name and runs trials until the study holds --trials (one extra per concurrent worker at most: they count before
asking). A trial that fails (bad combination, crash, out of memory) is recorded as failed and the sweep goes on.

Trials are chosen by a validation metric (val_loss by default); test metrics are refused as objectives because
tuning on the test split makes its figures a selection result.

Seeds (`--seeds 1,2,3`, grid search): every config runs once per seed (run.seed: the split, the initialisation and
the data order), its trials named `<trial>-s<N>`; sweep.json's `configs` table gives each config's objective as mean
and standard deviation over its seeds. Single runs of one config on small data spread over several AUC points, so
one seed per config ranks noise. `--grid training.seed=1,2,3` keeps one split and varies what training alone draws
(initialisation, data order): the part of that spread a config cannot be blamed for.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from pipeline.experiments.compare import METRICS, TRIAL_FILE, TRIALS, run_metrics
from pipeline.config import Config, ConfigError, flatten, load_config, output_neutral_keys, parse_override
from pipeline.run.records import read_json, write_json
from pipeline.run.rundir import CONFIG_FILE
from pipeline.run.runner import BY_NAME, STAGE_NAMES, read_manifest, run_pipeline

DATA_STAGES = STAGE_NAMES[: STAGE_NAMES.index("balance") + 1]
SEARCHES = ("grid", "random", "tpe")
# Settings that may differ between the machines of one distributed study without changing what a trial computes:
# the output-neutral keys (declared on the fields), where the data lies (its digest is compared instead) and the
# run's name (a label).
MACHINE_KEYS = (*output_neutral_keys(), "data.ingest.inputs", "run.name")


class SweepError(ValueError):
    """A sweep that cannot start (bad grid, unknown study, a worker whose config or data differ); says the fix."""


@dataclass(frozen=True)
class Range:
    """A numeric interval for random/TPE search (`--grid key=LOW..HIGH`): integers when both ends are, and a log
    scale when both are positive and span a factor of 10 or more (learning rates)."""
    low: float
    high: float
    integer: bool
    log: bool


Space = dict[str, list[Any] | Range]


@dataclass
class Trial:
    name: str
    phase: str  # baseline | sweep
    changes: dict[str, Any]  # dotted key -> value, relative to the base config
    status: str = "pending"  # running | ok | failed
    value: float | None = None  # the objective metric
    ran: list[str] = field(default_factory=list)  # stages the runner ran for this trial
    reused: list[str] = field(default_factory=list)  # data stages found done (copied from <sweep>/data)
    seconds: float = 0.0
    error: str | None = None
    optuna_number: int | None = None
    seed: int | None = None  # run.seed of this trial, with --seeds (else the base config's)


# ------------------------------------------------------------------------------------------------ the grid
def _split_values(raw: str) -> list[str]:
    """'1e-4,2e-4' -> ['1e-4', '2e-4']; commas inside [...] or {...} belong to one YAML value."""
    parts, depth, current = [], 0, ""
    for ch in raw:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in parts + [current] if p.strip()]


def _numeric(text: str) -> float | int | None:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def parse_grid(items: list[str]) -> Space:
    """`['training.learning_rate=1e-4,2e-4', 'lora.r=8..64']` -> {key: [values] or Range}; values parse like --set."""
    space: Space = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"--grid expects KEY=V1,V2 or KEY=LOW..HIGH, got {item!r} "
                             "(e.g. --grid training.learning_rate=1e-4,2e-4)")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key in space:
            raise SweepError(f"--grid {key} is given twice: list all its values in one --grid {key}=V1,V2")
        ends = raw.split("..")
        if len(ends) == 2 and all(_numeric(e) is not None for e in ends):
            low, high = (_numeric(e) for e in ends)
            if not low < high:
                raise SweepError(f"--grid {item}: the range must go from low to high")
            integer = all(isinstance(v, int) for v in (low, high))
            space[key] = Range(low, high, integer, not integer and low > 0 and high / low >= 10)
            continue
        values = [parse_override(f"{key}={piece}")[1] for piece in _split_values(raw)]
        if not values:
            raise SweepError(f"--grid {item}: no values")
        space[key] = [v for i, v in enumerate(values) if v not in values[:i]]  # a repeated value runs once
    return space


def parse_seeds(raw: str | None) -> list[int] | None:
    """'1,2,3' -> [1, 2, 3] (None stays None: one run per config at the config's seed)."""
    if raw is None:
        return None
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SweepError(f"--seeds {raw!r}: give integers separated by commas, e.g. --seeds 1,2,3") from None


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: parse_override reads it back as the same value


def _label(changes: dict[str, Any]) -> str:
    """A short, path- and run-name-safe label: {'training.learning_rate': 0.003} -> 'learning_rate-0.003'."""
    def short(v):
        if isinstance(v, float):
            return f"{v:g}"
        return "+".join(map(short, v)) if isinstance(v, list) else str(v)
    text = "_".join(f"{k.rsplit('.', 1)[-1]}-{short(v)}" for k, v in changes.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._-]", "-", text)[:80]


def plan_grid(base: Config, space: Space, one_at_a_time: bool) -> list[dict[str, Any]]:
    """The trials' changes. One at a time: each value of each key, the others at the baseline's values. Full grid:
    every combination. A change equal to the baseline's value is no change; trials equal to the baseline or to an
    earlier trial are left out."""
    ranges = [k for k, v in space.items() if isinstance(v, Range)]
    if ranges:
        raise SweepError(f"--grid {ranges[0]} is a range: ranges need --search random or tpe (grid lists values)")
    if one_at_a_time:
        combos = [{k: v} for k, values in space.items() for v in values]
    else:
        combos = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    planned, seen = [], set()
    for combo in combos:
        changes = {k: v for k, v in combo.items() if base.get(k) != v}
        key = json.dumps(changes, sort_keys=True)
        if changes and key not in seen:
            seen.add(key)
            planned.append(changes)
    return planned


# ------------------------------------------------------------------------------------------------ running
@dataclass
class Sweep:
    """What every trial of one sweep shares."""
    config_path: Path | None
    presets: list[str]
    base_overrides: list[str]
    inputs: list[str] | None
    sweep_dir: Path
    metric: str
    base: Config
    log: Callable[[str], None]

    @property
    def data_dir(self) -> Path:
        return self.sweep_dir / "data"

    def data_dir_for(self, seed: int | None) -> Path:
        """The prepared data a trial links to: one folder per seed with --seeds (the split follows run.seed)."""
        return self.data_dir if seed is None else self.sweep_dir / f"data-s{seed}"

    def config(self, changes: dict[str, Any], extra: list[str] = ()) -> Config:
        return load_config(self.config_path, self.presets,
                           [*self.base_overrides, *(_override(k, v) for k, v in changes.items()), *extra],
                           self.inputs)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock, so two workers sharing a sweep directory prepare its data once (POSIX only; elsewhere
    the runner's atomic publication still keeps the data consistent, it may just be computed twice)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_data(s: Sweep, seed: int | None = None) -> list[str]:
    """Bring the base config's data stages (at `seed`, when given) up to date in their data folder; returns the stages
    that ran (none when cached). Trials link to these."""
    base = s.base if seed is None else s.config({}, [_override("run.seed", seed)])
    with _locked(s.sweep_dir / ".data.lock"):
        return run_pipeline(base, s.data_dir_for(seed), until="balance", log=lambda m: s.log(f"[data] {m}"))


def data_digest(data_dir: Path) -> str:
    """Identity of the prepared data (every data stage's output digest): workers must train on the same data."""
    digests = {stage: (read_manifest(data_dir, stage) or {}).get("output_digest") for stage in DATA_STAGES}
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported: copy
        shutil.copy2(src, dst)


def seed_trial(data_dir: Path, trial_dir: Path) -> None:
    """Start a trial directory with the shared data stage folders (those it does not have yet)."""
    for stage in DATA_STAGES:
        if (data_dir / stage).is_dir() and not (trial_dir / stage).exists():
            shutil.copytree(data_dir / stage, trial_dir / stage, copy_function=_link_or_copy)


def _free_memory() -> None:
    """Trials run one after another in this process: release what the last one held (GPU memory above all)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_trial(s: Sweep, trial: Trial, tags: list[str]) -> Trial:
    """One trial as a full run in <sweep>/trials/<name>, its stage and trainer output in log.txt. Any failure is
    recorded in the trial (and error.txt), never raised."""
    trial_dir = s.sweep_dir / TRIALS / trial.name
    trial_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    trial.status = "running"
    write_json(trial_dir / TRIAL_FILE, asdict(trial))
    s.log(f"[{trial.name}] {trial.phase}: " + (", ".join(_override(k, v) for k, v in trial.changes.items())
                                               or "the base config"))
    try:
        with open(trial_dir / "log.txt", "a", encoding="utf-8") as log_file:
            extra = [_override("run.name", f"{s.base.run.name}-{trial.name}"[:128]),
                     _override("report.dir", str(s.sweep_dir / "reports")),
                     _override("tracking.tags", [*s.base.tracking.tags, *tags]),
                     *([_override("run.seed", trial.seed)] if trial.seed is not None else [])]
            cfg = s.config(trial.changes, extra)
            (trial_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
                                                 encoding="utf-8")
            seed_trial(s.data_dir_for(trial.seed), trial_dir)
            # the trainer's progress bars and metric prints go to the trial's log too, not between trial lines
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                trial.ran = run_pipeline(cfg, trial_dir, log=lambda m: print(m, file=log_file, flush=True))
        trial.reused = [st for st in DATA_STAGES if st not in trial.ran]
        trial.value = run_metrics(trial_dir)[s.metric]
        trial.status = "ok"
    except Exception as e:  # a failed trial is a result: record it and let the sweep go on
        trial.status, trial.error = "failed", f"{type(e).__name__}: {e}"[:2000]
        (trial_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    finally:
        trial.seconds = round(time.time() - started, 1)
        write_json(trial_dir / TRIAL_FILE, asdict(trial))
        _free_memory()
    if trial.status == "ok":
        value = "n/a" if trial.value is None else f"{trial.value:.4f}"
        s.log(f"[{trial.name}] ok in {trial.seconds} s: {s.metric} {value}; ran {', '.join(trial.ran) or 'nothing'}"
              + (f"; reused {', '.join(trial.reused)}" if trial.reused else ""))
    else:
        s.log(f"[{trial.name}] FAILED in {trial.seconds} s: {trial.error.splitlines()[0]} (see {trial_dir}/error.txt)")
    return trial


def data_keys_changed(changes: dict[str, Any]) -> bool:
    """Whether a trial changes a key that some data stage reads (then those stages rerun, as they must)."""
    reads = [r for st in DATA_STAGES for r in BY_NAME[st].reads]
    return any(k == r or k.startswith(r + ".") for k in changes for r in reads)


# ------------------------------------------------------------------------------------------------ Optuna
def _encode(value: Any) -> Any:
    """Optuna's categorical choices are scalars: lists and mappings travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _suggest(ot, key: str, spec: list | Range) -> Any:
    if isinstance(spec, Range):
        if spec.integer:
            return ot.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        return ot.suggest_float(key, spec.low, spec.high, log=spec.log)
    choice = ot.suggest_categorical(key, [_encode(v) for v in spec])
    return next(v for v in spec if _encode(v) == choice)


def _space_json(space: Space) -> dict:
    return {k: asdict(v) | {"range": True} if isinstance(v, Range) else {"choices": v} for k, v in space.items()}


def _space_from_json(data: dict) -> Space:
    return {k: Range(v["low"], v["high"], v["integer"], v["log"]) if v.get("range") else v["choices"]
            for k, v in data.items()}


def comparable(cfg: Config) -> dict:
    """The config as a distributed study compares it across machines: machine-specific keys left out."""
    flat = flatten(cfg.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if k not in MACHINE_KEYS}


def open_study(s: Sweep, space: Space, search: str, storage: str, name: str, worker: bool, digest: str, sampler):
    """Create the study (or rejoin it), or, for a worker, load it and check that this machine runs the same
    experiment: same search space, metric, config (machine keys aside) and data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # sgpipe logs each trial itself
    settings = {"space": _space_json(space), "metric": s.metric, "search": search, "config": comparable(s.base),
                "data_digest": digest}
    if worker:
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        except KeyError:
            raise SweepError(f"no study {name!r} in {storage}: start it with `sgpipe sweep --search {search} "
                             f"--study {name} --storage ...` (without --worker) first") from None
        stored = study.user_attrs
        if not space:  # a worker may leave the space to the study
            settings["space"], space = stored.get("space", {}), _space_from_json(stored.get("space", {}))
    else:
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                    direction=METRICS[s.metric][0])
        stored = study.user_attrs
        if not stored:
            for key, value in settings.items():
                study.set_user_attr(key, value)
            stored = settings
    differ = [k for k in ("space", "metric", "search", "data_digest") if stored.get(k) != settings[k]]
    config_keys = sorted(k for k in set(stored.get("config", {})) | set(settings["config"])
                         if stored.get("config", {}).get(k) != settings["config"].get(k))
    if differ or config_keys:
        raise SweepError(f"study {name!r} in {storage} was started with another "
                         + ", ".join(differ + ([f"config ({', '.join(config_keys[:8])})"] if config_keys else []))
                         + ": give this process the same --config, --set, --grid, --metric and inputs, or another "
                           "--study name")
    return study, space


def _sampler(search: str, trials: int, seed: int | None):
    import optuna

    if search == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE samples at random for its first n_startup_trials; with a small budget it would never model anything
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)))


def optuna_trials(s: Sweep, space: Space, search: str, trials: int, storage: str, name: str, worker: bool,
                  phase_tags: list[str]) -> list[Trial]:
    try:
        import optuna  # noqa: F401  (a check: Optuna is an optional extra)
    except ImportError:
        raise SweepError(f"--search {search} needs Optuna: pip install 'sgpipe[sweep]'") from None
    from optuna.trial import TrialState

    # Each process samples with its own stream: workers seeded alike would propose the same trials.
    sampler = _sampler(search, trials, None if worker else s.base.run.seed)
    study, space = open_study(s, space, search, storage, name, worker, data_digest(s.data_dir), sampler)
    counted = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.PRUNED)
    done: list[Trial] = []
    while len(study.get_trials(deepcopy=False, states=counted)) < trials:
        ot = study.ask()
        try:
            changes = {k: _suggest(ot, k, spec) for k, spec in space.items()}
            trial = Trial(f"t{ot.number:03d}-{_label(changes)}", "sweep", changes, optuna_number=ot.number)
            run_trial(s, trial, phase_tags)
        except BaseException:  # interrupted: the trial must not stay RUNNING in a shared study
            study.tell(ot, state=TrialState.FAIL)
            raise
        ot.set_user_attr("run_dir", str(s.sweep_dir / TRIALS / trial.name))
        if trial.status == "ok" and trial.value is not None:
            study.tell(ot, trial.value)
        else:
            ot.set_user_attr("error", trial.error or f"no {s.metric} in the run")
            study.tell(ot, state=TrialState.FAIL)
        done.append(trial)
    return done


# ------------------------------------------------------------------------------------------------ the sweep
def _seeded(name: str, seed: int | None) -> str:
    return name if seed is None else f"{name}-s{seed}"


def _check_seeds(seeds: list[int] | None, search: str, grid: Space) -> None:
    if seeds is None:
        return
    if search != "grid":
        raise SweepError("--seeds is for --search grid: random and TPE search sample one run per trial")
    if not seeds or len(set(seeds)) != len(seeds) or any(not isinstance(x, int) or x < 0 for x in seeds):
        raise SweepError(f"--seeds {seeds}: give distinct non-negative integers, e.g. --seeds 1,2,3")
    if "run.seed" in grid:
        raise SweepError("--grid run.seed and --seeds both set the seed: use --seeds")
def write_table(s: Sweep, settings: dict) -> Path:
    """sweep.json: every trial found in the sweep directory (other workers' included), in name order, and with
    seeds each config's objective over its seeds."""
    rows = [read_json(p / TRIAL_FILE) for p in sorted((s.sweep_dir / TRIALS).glob("*")) if (p / TRIAL_FILE).is_file()]
    path = s.sweep_dir / "sweep.json"
    configs = by_config(rows) if any(r.get("seed") is not None for r in rows) else None
    write_json(path, {**settings, "trials": rows, **({"configs": configs} if configs is not None else {})})
    return path


def by_config(rows: list[dict]) -> list[dict]:
    """One row per config (its changes): the objective's mean and sample standard deviation over the seeds whose
    trial succeeded, the seeds, and how many trials failed; in the order the configs were first met."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(json.dumps(row["changes"], sort_keys=True), []).append(row)
    table = []
    for key, trials in groups.items():
        values = [t["value"] for t in trials if t.get("status") == "ok" and t.get("value") is not None]
        table.append({"changes": json.loads(key), "seeds": sorted(t.get("seed") for t in trials if t.get("seed") is not None),
                      "n": len(values), "failed": sum(t.get("status") == "failed" for t in trials),
                      "mean": statistics.fmean(values) if values else None,
                      "sd": statistics.stdev(values) if len(values) > 1 else None})
    return table


def sweep(config_path: str | Path | None, grid: Space, *, one_at_a_time: bool = False,
          base_overrides: list[str] = (), presets: list[str] = (), inputs: list[str] | None = None,
          sweep_dir: str | Path | None = None, search: str = "grid", trials: int | None = None,
          storage: str | None = None, study: str | None = None, worker: bool = False, metric: str = "val_loss",
          baseline: bool = True, seeds: list[int] | None = None,
          log: Callable[[str], None] = print) -> tuple[Path, list[Trial]]:
    """Run a sweep; returns the sweep directory and the trials this process ran (the baseline first). With `seeds`
    (grid search) every config runs once per seed."""
    if search not in SEARCHES:
        raise SweepError(f"--search must be one of {', '.join(SEARCHES)}, not {search!r}")
    if metric not in METRICS or metric.startswith("test_"):
        raise SweepError(f"--metric {metric!r}: choose a validation metric or train_seconds "
                         f"({', '.join(m for m in METRICS if not m.startswith('test_'))}); tuning on test figures "
                         "makes them a selection result")
    if search == "grid":
        if worker or trials is not None:
            raise SweepError("--worker and --trials are for --search random or tpe (a grid lists its trials)")
        if not grid:
            raise SweepError("give at least one --grid KEY=V1,V2 (e.g. --grid training.learning_rate=1e-4,2e-4)")
    elif not trials or trials < 1:
        raise SweepError(f"--search {search} needs --trials N (the study's total number of trials)")
    elif not grid and not worker:
        raise SweepError(f"--search {search} needs the space: --grid KEY=V1,V2 (choices) or --grid KEY=LOW..HIGH")
    elif one_at_a_time:
        raise SweepError("--one-at-a-time is a grid plan: use it with --search grid")
    _check_seeds(seeds, search, grid)

    base = load_config(config_path, list(presets), list(base_overrides), inputs)
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else Path("runs") / f"{base.run.name}-sweep"
    s = Sweep(Path(config_path) if config_path else None, list(presets), list(base_overrides), inputs, sweep_dir,
              metric, base, log)
    for key, spec in grid.items():  # every value must make a valid config before anything runs
        for value in ([spec.low, spec.high] if isinstance(spec, Range) else spec):
            try:
                s.config({key: int(value) if isinstance(spec, Range) and spec.integer else value})
            except ConfigError as e:
                raise SweepError(f"--grid {key}={value!r}: {e}") from None

    sweep_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds or [None]:
        ran = prepare_data(s, seed)
        log(f"[sweep] data stages in {s.data_dir_for(seed)}: " + (f"computed ({', '.join(ran)})" if ran else "cached"))
    study_name = study or f"sgpipe-{base.run.name}"
    tags = [f"sweep:{study_name if search != 'grid' else sweep_dir.name}"]
    done: list[Trial] = []
    if baseline and not worker:
        for seed in seeds or [None]:
            done.append(run_trial(s, Trial(_seeded("000-baseline", seed), "baseline", {}, seed=seed),
                                  ["phase:baseline", *tags]))
    if search == "grid":
        for i, changes in enumerate(plan_grid(base, grid, one_at_a_time), 1):
            for seed in seeds or [None]:  # a config's seeds one after another: an interrupted sweep has whole configs
                trial = Trial(_seeded(f"{i:03d}-{_label(changes)}", seed), "sweep", changes, seed=seed)
                done.append(run_trial(s, trial, ["phase:sweep", *tags]))
    else:
        url = storage or f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
        done += optuna_trials(s, grid, search, trials, url, study_name, worker, ["phase:sweep", *tags])
    settings = {"config": str(config_path), "presets": list(presets), "overrides": list(base_overrides),
                "search": search, "one_at_a_time": one_at_a_time, "metric": metric, "seeds": seeds,
                "grid": _space_json(grid), "study": study_name if search != "grid" else None}
    write_table(s, settings)
    for t in done:
        if t.status == "ok" and not data_keys_changed(t.changes) and t.reused != list(DATA_STAGES):
            log(f"[sweep] WARNING: {t.name} reran data stages {sorted(set(DATA_STAGES) - set(t.reused))} although it "
                "changes no data key")
    return sweep_dir, done
