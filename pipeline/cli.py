"""The `sgpipe` command line: parses options, resolves the config, hands over. No pipeline logic lives here."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from .config import Config, ConfigError, field_info, load_config
from pipeline.inputs.readers import safe_display
from pipeline.run.rundir import THRESHOLD_FILE, RunDir
from pipeline.run.runner import STAGE_NAMES, STAGES, StageError, run_pipeline, statuses


def exit_code(error: BaseException) -> int | None:
    """The one table from exception to exit code: 2 = the command line or config must change, 1 = the run could not
    go on (missing or bad input, a stage failure). None: a bug, shown with its traceback."""
    from pipeline.experiments.compare import CompareError
    from pipeline.experiments.diagnose import DiagnoseError
    from pipeline.run.lock import RunDirError
    from pipeline.experiments.sweep import SweepError

    table = ((ConfigError, 2), (SweepError, 2), (CompareError, 2), (DiagnoseError, 1), (StageError, 1),
             (RunDirError, 1), (FileNotFoundError, 1), (ValueError, 1))
    return next((code for kind, code in table if isinstance(error, kind)), None)


class MappedErrors(TyperGroup):
    """The root command group: every command raises its errors, and they are printed and mapped to an exit code
    here, once, so `sgpipe` and tests invoking `app` behave alike."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:  # noqa: BLE001 - narrowed by the table; anything else is re-raised
            code = exit_code(e)
            if code is None:
                raise
            _fail(str(e), code)


app = typer.Typer(cls=MappedErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train LLM classifiers of malicious scripts: ingest -> dedup -> split -> augment -> balance -> "
                       "train -> evaluate -> report.")
config_app = typer.Typer(no_args_is_help=True, help="Show and explain configuration keys.")
app.add_typer(config_app, name="config")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DEFAULT_CONFIG = Path("configs/tiny.yaml")

# Options shared by every command that resolves a config.
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config (default: configs/tiny.yaml when present).")
PresetOpt = typer.Option([], "--preset", "-p", help="Preset(s), e.g. small-dataset, fix-overfitting, vram-16gb.")
SetOpt = typer.Option([], "--set", "-s", help="Override one key: --set training.learning_rate=1e-4 (repeatable).")
InputOpt = typer.Option([], "--input", "-i", help="Input file/folder/archive (repeatable); replaces data.ingest.inputs.")
RunDirOpt = typer.Option(None, "--run-dir", "-r", help="Run directory (default: runs/<run.name>).")
ScoringRunDirOpt = typer.Option(None, "--run-dir", "-r", help="Run directory, classifier directory or export "
                                "(default: runs/<run.name>).")
OldModelOpt = typer.Option(None, "--model", "-m", hidden=True, help="Old spelling of --run-dir.")
ForceOpt = typer.Option(False, "--force", "-f", help="Rerun even when the cached output is up to date.")
StageForceOpt = typer.Option(False, "--force", "-f", help="Accepted as in `all`: the named stage always reruns "
                             "(stale upstream stages are brought up to date first, cached ones are kept).")


def _resolve(config: Optional[Path], preset: List[str], set_: List[str], input_: List[str]) -> Config:
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    return load_config(config, presets=preset, overrides=set_, inputs=input_ or None)


def _run_dir(cfg: Config, run_dir: Optional[Path], old_spelling: Optional[Path] = None) -> Path:
    return RunDir.of(cfg, run_dir if run_dir is not None else old_spelling).path


def _display(message: str) -> str:
    """Neutralise terminal escapes in text that may come from samples or paths, keeping the message's own lines."""
    return "\n".join(safe_display(line) for line in message.split("\n"))


def _fail(message: str, code: int) -> None:
    err.print("error: " + _display(message), markup=False, style="bold red")
    raise typer.Exit(code)


def _summary(manifest: dict, cached: bool) -> None:
    """A short table of what a stage did: its top-level counts (nested ones are in the manifest)."""
    if cached:
        return
    table = Table(title=f"{manifest['stage']} ({manifest['seconds']:.1f} s)", show_header=False, title_justify="left")
    for key, value in manifest["counts"].items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        # Text: values hold paths, which rich would otherwise read as markup ("[/]" in a folder name fails)
        table.add_row(key, Text(safe_display(shown if len(shown) < 160 else shown[:157] + "...")))
    console.print(table)


def _execute(until: str, only: Optional[str], config, preset, set_, input_, run_dir, force, options=None) -> None:
    cfg = _resolve(config, preset, set_, input_)
    rd = _run_dir(cfg, run_dir)
    forced = set(STAGE_NAMES) if (force and only is None) else ({only} if only else set())
    run_pipeline(cfg, rd, until=until, force=forced, options=options or {},
                 log=lambda m: console.print(_display(m), markup=False), on_done=_summary)


@app.command("all")
def all_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
         input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt, force: bool = ForceOpt,
         until: str = typer.Option("report", "--until", "-u", help=f"Last stage to run: {', '.join(STAGE_NAMES)}.")):
    """Run every stage up to --until, skipping those whose inputs and config are unchanged."""
    if until not in STAGE_NAMES:
        _fail(f"--until must be one of {', '.join(STAGE_NAMES)}, not {until!r}", 2)
    _execute(until, None, config, preset, set_, input_, run_dir, force)


def _stage_command(name: str, doc: str):
    def command(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
                input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt, force: bool = StageForceOpt):
        _execute(name, name, config, preset, set_, input_, run_dir, force)
    command.__doc__ = f"Rerun the {name} stage ({doc}); brings stale upstream stages up to date first."
    return command


def train_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
           input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt, force: bool = StageForceOpt,
           resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of an interrupted "
                                       "train of this same config and data."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Bring the data stages up to date, then print (and "
                                        "write to <run>/train_plan.json) what training would do: rows, steps, "
                                        "warmup, evaluations, tokens, warnings. Loads no model weights.")):
    """Rerun the train stage; brings stale upstream stages up to date first. --dry-run: the plan only."""
    if not dry_run:
        return _execute("train", "train", config, preset, set_, input_, run_dir, force, {"resume": resume})
    from .plan import training_plan
    from pipeline.run.records import read_records, write_json

    _execute("balance", None, config, preset, set_, input_, run_dir, False)
    cfg = _resolve(config, preset, set_, input_)
    run = RunDir.of(cfg, run_dir)
    plan = training_plan(cfg, list(read_records(run.stage("balance") / "train.jsonl")),
                         list(read_records(run.stage("split") / "val.jsonl")))
    write_json(run.path / "train_plan.json", plan)
    typer.echo(_display(json.dumps(plan, indent=2)))  # not rich: it would wrap long lines inside the JSON


def evaluate_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
              input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt, force: bool = StageForceOpt,
              data: List[str] = typer.Option([], "--data", help="Score this labelled input (any format ingest "
                                             "reads) instead of the test split; results go to <run>/evaluations/.")):
    """Rerun evaluate (threshold on val, metrics on test), or evaluate the trained model on --data."""
    if not data:
        return _execute("evaluate", "evaluate", config, preset, set_, input_, run_dir, force)
    from pipeline.run.lock import locked_run_dir
    from .stages.evaluate import evaluate_external

    cfg = _resolve(config, preset, set_, input_)
    rd = _run_dir(cfg, run_dir)
    # resolved: `--data d/sub/..` is named d, not "..", which would write into the run directory's root
    out = RunDir(rd).evaluation("-".join(Path(d).resolve().name or "root" for d in data)[:80])
    with locked_run_dir(rd):
        result = evaluate_external(cfg, rd, list(data), out)
    m = result["model"]
    console.print(f"n={m['n']} sensitivity={m['sensitivity']} specificity={m['specificity']} roc_auc={m['roc_auc']} "
                  f"(threshold {result['threshold']:.4f}, {result['rejected']} rejected) -> {out}", markup=False)


for _stage in STAGES:  # registered in pipeline order, so --help lists them as they run
    app.command(_stage.name)({"evaluate": evaluate_, "train": train_}.get(_stage.name)
                             or _stage_command(_stage.name, _stage.doc))


def _served_scorer(fmt: str, formats, threshold: Optional[float], config, set_, run_dir, model):
    """Check --format and --threshold, then open what predict serves for the run, so that explain explains exactly
    that score: the ONNX fast path when its graph is current (else PyTorch, with a note saying why), stacked with the
    baseline when the run was evaluated with evaluation.ensemble=tfidf. Returns (config, scorer)."""
    from pipeline.evaluation.ensemble import with_ensemble
    from .predict import check_threshold, open_scorer

    if fmt not in formats:
        raise typer.BadParameter(f"choose {', '.join(formats)}, not {fmt!r}", param_hint="--format")
    try:
        check_threshold(threshold)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--threshold") from None
    cfg = _resolve(config, [], set_, [])
    source = _run_dir(cfg, run_dir, model)
    scorer = open_scorer(source, device=cfg.model.device, allow_pickle=cfg.model.allow_pickle_weights,
                         note=lambda m: err.print("note: " + _display(m), markup=False))
    return cfg, with_ensemble(scorer, source)


@app.command("predict")
def predict_(paths: List[str] = typer.Argument(..., help="Files, folders, JSONL/CSV, zips, or - for stdin."),
             run_dir: Optional[Path] = ScoringRunDirOpt,
             model: Optional[Path] = OldModelOpt,
             fmt: str = typer.Option("table", "--format", help="table | json | jsonl | csv"),
             fail_on_malicious: bool = typer.Option(False, "--fail-on-malicious",
                                                    help="Exit 1 when any input is judged malicious, or could not "
                                                         "be scored (CI gates fail closed)."),
             allow_unscored: bool = typer.Option(False, "--allow-unscored", help="With --fail-on-malicious: let "
                                                 "inputs that could not be scored (binary, too large...) pass."),
             threshold: Optional[float] = typer.Option(None, "--threshold", help="Override the stored threshold "
                                                       "(a probability, 0 to 1)."),
             explain: int = typer.Option(0, "--explain", min=0, help="Add each script's K lines that move the score "
                                         "most (occlusion, as `sgpipe explain`)."),
             config: Optional[Path] = ConfigOpt, set_: List[str] = SetOpt):
    """Score unknown scripts: P(malicious) and the verdict at the stored threshold. Nothing is executed."""
    from .predict import FORMATS, gate_failures, predict, render
    from pipeline.inputs.readers import ReaderLimits

    cfg, classifier = _served_scorer(fmt, FORMATS, threshold, config, set_, run_dir, model)
    gated = []  # what the gate needs of each prediction (verdict, score, location, error): a few bytes each

    def tracked():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        # progress on stderr (only on a terminal), so stdout stays clean for json/jsonl/csv consumers
        with Progress(SpinnerColumn(), TextColumn("{task.completed} scripts scored"), TimeElapsedColumn(),
                      console=err, disable=not err.is_terminal, transient=True) as bar:
            task = bar.add_task("predict")
            for p in predict(paths, classifier, ReaderLimits.from_config(cfg.data.ingest), threshold=threshold,
                             explain_top=explain):
                if p.verdict == "malicious" or p.score is None:
                    gated.append(p)
                bar.advance(task)
                yield p

    render(tracked(), fmt, explained=explain > 0)
    failures = gate_failures(gated, allow_unscored) if fail_on_malicious else []
    if failures:
        err.print("\n".join(failures), markup=False)
        raise typer.Exit(1)


@app.command("explain")
def explain_(paths: List[str] = typer.Argument(..., help="Files, folders, JSONL/CSV, zips, or - for stdin."),
             run_dir: Optional[Path] = ScoringRunDirOpt,
             model: Optional[Path] = OldModelOpt,
             fmt: str = typer.Option("terminal", "--format", help="terminal | json | jsonl | html"),
             top: int = typer.Option(10, "--top", min=0, help="Lines shown per script, strongest first (0: all)."),
             out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of stdout (html: a "
                                                "self-contained page)."),
             max_units: int = typer.Option(128, "--max-units", min=1, help="At most this many occlusions per "
                                           "script: longer scripts are explained by windows of lines."),
             threshold: Optional[float] = typer.Option(None, "--threshold", help="Override the stored threshold."),
             config: Optional[Path] = ConfigOpt, set_: List[str] = SetOpt):
    """Which lines make a script malicious: each line's contribution to P(malicious), by occlusion through the same
    prompt, truncation and scoring as predict. Nothing is executed."""
    from .explain import ClassifierScorer, explain_paths
    from .explain_render import FORMATS, render
    from pipeline.inputs.readers import ReaderLimits

    cfg, classifier = _served_scorer(fmt, FORMATS, threshold, config, set_, run_dir, model)
    t = threshold if threshold is not None else (classifier.threshold if classifier.threshold is not None else 0.5)
    explanations = explain_paths(paths, ClassifierScorer(classifier), ReaderLimits.from_config(cfg.data.ingest), t,
                                 max_units)
    if out is None:
        render(explanations, fmt, top)
        return
    from pipeline.run.records import atomic_write

    with atomic_write(out) as f:  # a failure midway leaves no half page behind
        render(explanations, fmt, top, f)
    err.print(_display(f"wrote {out}"), markup=False)


@app.command("export")
def export_(out: Path = typer.Argument(..., help="Output folder for the exported model."),
            run_dir: Optional[Path] = RunDirOpt, model: Optional[Path] = OldModelOpt,
            config: Optional[Path] = ConfigOpt, set_: List[str] = SetOpt,
            merged: bool = typer.Option(True, "--merged/--adapter", help="Merge LoRA into a standard "
                                        "Starcoder2ForSequenceClassification (default), or copy the adapter."),
            dtype: str = typer.Option("float32", "--dtype", help="Dtype of the merged weights: float32 (default, "
                                      "scores as evaluated), bfloat16 or float16 (half the size). LoRA is merged "
                                      "into an unquantized base loaded in this dtype."),
            fmt: str = typer.Option("hf", "--format", help="hf: a transformers model (default); onnx: the graph "
                                    "`sgpipe predict --run-dir OUT` runs without torch (float32, merged).")):
    """Export the trained classifier: loadable with AutoModelForSequenceClassification (or ONNX Runtime), threshold
    included, and for a run evaluated with evaluation.ensemble=tfidf the baseline and stacker that predict serves."""
    import shutil

    import torch

    from pipeline.evaluation.ensemble import copy_ensemble, load_ensemble
    from .model.classifier import Classifier
    from .model.head import export_sequence_classifier

    run = RunDir.of(_resolve(config, [], set_, []), run_dir if run_dir is not None else model)
    source, threshold = run.classifier, run.threshold
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is missing: train first (`sgpipe all --until train --run-dir {run}`)")
    ensemble = load_ensemble(run.stage("evaluate"))  # a damaged or half pair stops here, before anything is written
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise typer.BadParameter(f"choose float32, bfloat16 or float16, not {dtype!r}", param_hint="--dtype")
    if fmt not in ("hf", "onnx"):
        raise typer.BadParameter(f"choose hf or onnx, not {fmt!r}", param_hint="--format")
    if fmt == "onnx":
        if not merged or dtype != "float32":
            raise typer.BadParameter("--format onnx exports the merged float32 model: drop --adapter / --dtype",
                                     param_hint="--format")
        from .model.onnx_export import export_onnx

        export_onnx(source, out)
    elif merged:
        clf = Classifier.load(source, merge_dtype=dtypes[dtype])
        export_sequence_classifier(clf.model, clf.tokenizer, out, max_length=clf.max_length,
                                   head_ratio=clf.head_ratio, windows=clf.windows)
    else:
        shutil.copytree(source, out, dirs_exist_ok=True)
    if threshold.exists():
        shutil.copy(threshold, out / THRESHOLD_FILE)
    copy_ensemble(run.stage("evaluate"), out, present=ensemble is not None)
    console.print(f"exported to {out}" + ("" if threshold.exists() else " (no threshold yet: run evaluate)")
                  + (f" with the stacked TF-IDF ensemble (`sgpipe predict --run-dir {out}` serves it)"
                     if ensemble is not None else ""), markup=False)


@app.command("status")
def status_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
            input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt):
    """Show each stage as done, stale (config or upstream changed) or missing."""
    cfg = _resolve(config, preset, set_, input_)
    rd = _run_dir(cfg, run_dir)
    table = Table(title=Text(safe_display(f"run {rd}")), title_justify="left")  # Text: a path is not markup
    for col in ("stage", "state", "finished", "seconds", "counts"):
        table.add_column(col)
    colour = {"done": "green", "stale": "yellow", "missing": "red"}
    for st in statuses(cfg, rd):
        m = st.manifest or {}
        counts = {k: v for k, v in (m.get("counts") or {}).items() if not isinstance(v, dict)}
        table.add_row(st.stage.name, f"[{colour[st.state]}]{st.state}[/]", m.get("started_at", ""),
                      str(m.get("seconds", "")), Text(safe_display(json.dumps(counts))[:100]))
    console.print(table)


@config_app.command("show")
def config_show(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
                input_: List[str] = InputOpt):
    """Print the resolved configuration as YAML."""
    cfg = _resolve(config, preset, set_, input_)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@config_app.command("explain")
def config_explain(key: str = typer.Argument(..., help="Dotted key, e.g. training.learning_rate.")):
    """Print a key's help, type, default, range and tuning advice."""
    info = field_info(key)
    console.print(f"[bold]{info['key']}[/]  ({info['type']})")
    console.print(f"  {info['help']}")
    console.print(f"  default: {info['default']}")
    if info["range"]:
        console.print("  range: " + ", ".join(f"{k} {v}" for k, v in info["range"].items()))
    if info["guide"]:
        console.print(f"  advice: {info['guide']}")
    if not info["affects_output"]:
        console.print("  no output depends on it: changing it reruns no stage")



# ----------------------------------------------------------------------------------- diagnose, sweep, compare
@app.command("diagnose")
def diagnose_(run_dir: Optional[Path] = typer.Option(None, "--run-dir", "-r", help="Run directory (default: "
                                                     "runs/<run.name> of --config)."),
              run: Optional[Path] = typer.Argument(None, hidden=True, help="Old spelling of --run-dir."),
              as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
              write_config: Optional[Path] = typer.Option(None, "--write-config", help="Write a NEW config with the "
                                                          "suggested changes to this file (the run's own is never "
                                                          "edited)."),
              config: Optional[Path] = typer.Option(None, "--config", "-c", help="Base config for --write-config "
                                                    "(default: the config the run's manifests recorded).")):
    """Read a run's training log, metrics and config: overfitting, underfitting, collapse, exploding or vanishing
    gradients, learning-rate schedule, early stopping, memory; each with its evidence and the fix (pipeline/advice.py)."""
    from pipeline.experiments.diagnose import diagnose, render_json, render_text
    from pipeline.experiments.diagnose import write_config as write_new_config

    if run_dir is None and run is None:
        run = RunDir.of(_resolve(config, [], [], [])).path
    run = run_dir if run_dir is not None else run
    findings = diagnose(run)
    if as_json:
        sys.stdout.write(render_json(findings, run) + "\n")
    else:
        console.print(_display(render_text(findings, run)), markup=False)
    if write_config is not None:
        path, changes = write_new_config(findings, config if config is not None else RunDir(run).config(),
                                         write_config, protect=run)
        err.print(_display(f"wrote {path} with {len(changes)} change(s); try it beside this run: sgpipe all "
                           f"--config {path} --run-dir {run}-next"), markup=False)


@app.command("sweep")
def sweep_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
           input_: List[str] = InputOpt,
           grid: List[str] = typer.Option([], "--grid", "-g", help="KEY=V1,V2 (values parse like --set) or, for "
                                          "random/tpe, KEY=LOW..HIGH. Repeatable."),
           one_at_a_time: bool = typer.Option(False, "--one-at-a-time", help="Vary one key at a time from the "
                                              "baseline instead of every combination."),
           search: str = typer.Option("grid", "--search", help="grid | random | tpe (random and tpe use Optuna)."),
           trials: Optional[int] = typer.Option(None, "--trials", help="random/tpe: total trials in the study."),
           storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (default: SQLite in "
                                                 "the sweep directory). Share a database URL between --worker "
                                                 "processes to spread a study over machines."),
           study: Optional[str] = typer.Option(None, "--study", help="Optuna study name (default: "
                                               "sgpipe-<run.name>)."),
           worker: bool = typer.Option(False, "--worker", help="Join an existing study and run trials until it "
                                       "holds --trials."),
           sweep_dir: Optional[Path] = typer.Option(None, "--sweep-dir", help="Default: runs/<run.name>-sweep."),
           metric: str = typer.Option("val_loss", "--metric", help="Objective: a validation metric or "
                                      "train_seconds."),
           seeds: Optional[str] = typer.Option(None, "--seeds", help="Grid search: run every config once per seed "
                                               "(e.g. 1,2,3: run.seed, so split, init and data order); sweep.json's "
                                               "configs table gives each config's mean and sd over them.")):
    """A baseline, then one full run per trial, data stages computed once; then the comparison table."""
    from pipeline.experiments.compare import compare, to_markdown
    from pipeline.experiments.compare import write as write_comparison
    from pipeline.experiments.sweep import parse_grid, parse_seeds, sweep

    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    where, done = sweep(config, parse_grid(grid), one_at_a_time=one_at_a_time, base_overrides=set_,
                        presets=preset, inputs=input_ or None, sweep_dir=sweep_dir, search=search, trials=trials,
                        storage=storage, study=study, worker=worker, metric=metric, seeds=parse_seeds(seeds),
                        log=lambda m: console.print(_display(m), markup=False))
    comparison = compare([where], metric)
    files = write_comparison(comparison, where / "compare")
    sys.stdout.write(_display(to_markdown(comparison)))  # not console.print: it would wrap the table's lines
    console.print(_display(f"comparison: {files['markdown']}, {files['csv']}, plots in {where / 'compare'}"),
                  markup=False)
    if done and all(t.status == "failed" for t in done):
        _fail(f"every trial failed: see {where}/trials/*/error.txt", 1)


@app.command("compare")
def compare_(runs: List[Path] = typer.Argument(..., help="Run directories and/or sweep directories."),
             metric: str = typer.Option("val_loss", "--metric", help="Metric that picks the best run: val_loss, "
                                        "val_roc_auc, val_balanced_accuracy, test_loss, test_roc_auc, "
                                        "test_sensitivity, test_specificity, train_seconds."),
             out: Optional[Path] = typer.Option(None, "--out", help="Folder for comparison.md/.csv, best.json and "
                                                "plots (default: <sweep>/compare for one sweep, else "
                                                "reports/compare).")):
    """The parameters that differ and the metrics of several runs; the best run; per-parameter plots."""
    from pipeline.experiments.compare import compare, to_markdown
    from pipeline.experiments.compare import write as write_comparison

    comparison = compare(runs, metric)
    if out is None:
        out = runs[0] / "compare" if len(runs) == 1 and (runs[0] / "trials").is_dir() else Path("reports/compare")
    files = write_comparison(comparison, out)
    sys.stdout.write(_display(to_markdown(comparison)))
    console.print(_display(f"written: {', '.join(str(p) for p in files.values())}"), markup=False)

def main() -> None:
    app()  # errors are mapped to exit codes by MappedErrors, the root group


if __name__ == "__main__":
    main()
