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


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {safe_display(message)}")
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
                     log=lambda m: console.print(safe_display(m), markup=False), on_done=_summary)
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


for _stage in STAGES:
    app.command(_stage.name)(_stage_command(_stage.name, _stage.doc))


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
