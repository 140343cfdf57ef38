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

from .config import Config, ConfigError, field_info, load_config
from .readers import safe_display
from .runner import STAGE_NAMES, STAGES, StageError, run_pipeline, statuses

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train LLM classifiers of malicious scripts: ingest -> dedup -> split -> augment -> balance -> "
                       "train -> evaluate -> report.")
config_app = typer.Typer(no_args_is_help=True, help="Show and explain configuration keys.")
app.add_typer(config_app, name="config")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DEFAULT_CONFIG = Path("configs/tiny.yaml")

# Options shared by every command that resolves a config.
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config (default: configs/tiny.yaml when present).")
PresetOpt = typer.Option([], "--preset", "-p", help="Seed-guide preset(s), e.g. small-dataset, fix-overfitting, vram-16gb.")
SetOpt = typer.Option([], "--set", "-s", help="Override one key: --set training.learning_rate=1e-4 (repeatable).")
InputOpt = typer.Option([], "--input", "-i", help="Input file/folder/archive (repeatable); replaces data.ingest.inputs.")
RunDirOpt = typer.Option(None, "--run-dir", "-r", help="Run directory (default: runs/<run.name>).")
ForceOpt = typer.Option(False, "--force", "-f", help="Rerun even when the cached output is up to date.")


def _resolve(config: Optional[Path], preset: List[str], set_: List[str], input_: List[str]) -> Config:
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    return load_config(config, presets=preset, overrides=set_, inputs=input_ or None)


def _run_dir(cfg: Config, run_dir: Optional[Path]) -> Path:
    return run_dir if run_dir is not None else Path("runs") / cfg.run.name


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
        table.add_row(key, safe_display(shown if len(shown) < 160 else shown[:157] + "..."))
    console.print(table)


def _execute(until: str, only: Optional[str], config, preset, set_, input_, run_dir, force, options=None) -> None:
    try:
        cfg = _resolve(config, preset, set_, input_)
        rd = _run_dir(cfg, run_dir)
        forced = set(STAGE_NAMES) if (force and only is None) else ({only} if only else set())
        run_pipeline(cfg, rd, until=until, force=forced, options=options or {},
                     log=lambda m: console.print(_display(m), markup=False), on_done=_summary)
    except ConfigError as e:
        _fail(str(e), 2)
    except (StageError, FileNotFoundError) as e:
        _fail(str(e), 1)


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
                input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt,
                resume: bool = typer.Option(False, "--resume", help="train: continue from the last checkpoint.")):
        _execute(name, name, config, preset, set_, input_, run_dir, False, {"resume": resume})
    command.__doc__ = f"Rerun the {name} stage ({doc}); brings stale upstream stages up to date first."
    return command


def evaluate_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
              input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt,
              data: List[str] = typer.Option([], "--data", help="Score this labelled input (any format ingest "
                                             "reads) instead of the test split; results go to <run>/evaluations/.")):
    """Rerun evaluate (threshold on val, metrics on test), or evaluate the trained model on --data."""
    if not data:
        return _execute("evaluate", "evaluate", config, preset, set_, input_, run_dir, False)
    from .stages.evaluate import evaluate_external

    try:
        cfg = _resolve(config, preset, set_, input_)
        rd = _run_dir(cfg, run_dir)
        out = rd / "evaluations" / "-".join(Path(d).name for d in data)[:80]
        result = evaluate_external(cfg, rd, list(data), out)
    except ConfigError as e:
        _fail(str(e), 2)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e), 1)
    m = result["model"]
    console.print(f"n={m['n']} sensitivity={m['sensitivity']} specificity={m['specificity']} roc_auc={m['roc_auc']} "
                  f"(threshold {result['threshold']:.4f}, {result['rejected']} rejected) -> {out}", markup=False)


for _stage in STAGES:  # registered in pipeline order, so --help lists them as they run
    app.command(_stage.name)(evaluate_ if _stage.name == "evaluate" else _stage_command(_stage.name, _stage.doc))


@app.command("predict")
def predict_(paths: List[str] = typer.Argument(..., help="Files, folders, JSONL/CSV, zips, or - for stdin."),
             model: Path = typer.Option(Path("runs/tiny"), "--model", "-m", help="Run directory or export."),
             fmt: str = typer.Option("table", "--format", help="table | json | jsonl | csv"),
             fail_on_malicious: bool = typer.Option(False, "--fail-on-malicious",
                                                    help="Exit 1 when any input is judged malicious (CI gates)."),
             threshold: Optional[float] = typer.Option(None, "--threshold", help="Override the stored threshold."),
             config: Optional[Path] = ConfigOpt, set_: List[str] = SetOpt):
    """Score unknown scripts: P(malicious) and the verdict at the stored threshold. Nothing is executed."""
    from .model.classifier import open_classifier
    from .predict import predict, render
    from .stages.ingest import limits_from_config

    try:
        cfg = _resolve(config, [], set_, [])
        classifier = open_classifier(model, allow_pickle=cfg.model.allow_pickle_weights)
    except ConfigError as e:
        _fail(str(e), 2)
    except FileNotFoundError as e:
        _fail(str(e), 1)
    flagged = []

    def tracked():
        for p in predict(paths, classifier, limits_from_config(cfg.data.ingest), threshold=threshold):
            if p.verdict == "malicious":
                flagged.append(p.location)
            yield p

    try:
        render(tracked(), fmt)
    except ValueError as e:
        _fail(str(e), 2)
    if fail_on_malicious and flagged:
        err.print(f"{len(flagged)} input(s) judged malicious", markup=False)
        raise typer.Exit(1)


@app.command("export")
def export_(out: Path = typer.Argument(..., help="Output folder for the exported model."),
            model: Path = typer.Option(Path("runs/tiny"), "--model", "-m", help="Run directory."),
            merged: bool = typer.Option(True, "--merged/--adapter", help="Merge LoRA into a standard "
                                        "Starcoder2ForSequenceClassification (default), or copy the adapter.")):
    """Export the trained classifier: loadable with AutoModelForSequenceClassification, threshold included."""
    import shutil

    from .model.classifier import THRESHOLD_FILE, Classifier
    from .model.head import export_sequence_classifier

    source = model / "train" / "classifier"
    if not source.is_dir():
        _fail(f"{source} is missing: train first (`sgpipe all --until train`)", 1)
    threshold = model / "evaluate" / THRESHOLD_FILE
    if merged:
        clf = Classifier.load(source)
        export_sequence_classifier(clf.model, clf.tokenizer, out, max_length=clf.max_length,
                                   head_ratio=clf.head_ratio)
    else:
        shutil.copytree(source, out, dirs_exist_ok=True)
    if threshold.exists():
        shutil.copy(threshold, out / THRESHOLD_FILE)
    console.print(f"exported to {out}" + ("" if threshold.exists() else " (no threshold yet: run evaluate)"),
                  markup=False)


@app.command("status")
def status_(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
            input_: List[str] = InputOpt, run_dir: Optional[Path] = RunDirOpt):
    """Show each stage as done, stale (config or upstream changed) or missing."""
    try:
        cfg = _resolve(config, preset, set_, input_)
    except ConfigError as e:
        _fail(str(e), 2)
    rd = _run_dir(cfg, run_dir)
    table = Table(title=f"run {rd}", title_justify="left")
    for col in ("stage", "state", "finished", "seconds", "counts"):
        table.add_column(col)
    colour = {"done": "green", "stale": "yellow", "missing": "red"}
    for st in statuses(cfg, rd):
        m = st.manifest or {}
        counts = {k: v for k, v in (m.get("counts") or {}).items() if not isinstance(v, dict)}
        table.add_row(st.stage.name, f"[{colour[st.state]}]{st.state}[/]", m.get("started_at", ""),
                      str(m.get("seconds", "")), safe_display(json.dumps(counts))[:100])
    console.print(table)


@config_app.command("show")
def config_show(config: Optional[Path] = ConfigOpt, preset: List[str] = PresetOpt, set_: List[str] = SetOpt,
                input_: List[str] = InputOpt):
    """Print the resolved configuration as YAML."""
    try:
        cfg = _resolve(config, preset, set_, input_)
    except ConfigError as e:
        _fail(str(e), 2)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@config_app.command("explain")
def config_explain(key: str = typer.Argument(..., help="Dotted key, e.g. training.learning_rate.")):
    """Print a key's help, type, default, range and the seed guide's advice."""
    try:
        info = field_info(key)
    except ConfigError as e:
        _fail(str(e), 2)
    console.print(f"[bold]{info['key']}[/]  ({info['type']})")
    console.print(f"  {info['help']}")
    console.print(f"  default: {info['default']}")
    if info["range"]:
        console.print("  range: " + ", ".join(f"{k} {v}" for k, v in info["range"].items()))
    if info["guide"]:
        console.print(f"  seed guide: {info['guide']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
