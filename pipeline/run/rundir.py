"""A run directory (runs/<name>) as one type: where each stage's outputs lie, its manifests, the config it ran with.

Stages publish `<run-dir>/<stage>/` (pipeline/run/runner.py); everything outside stages/ that reads a run (the CLI,
predict/export, diagnose, compare) goes through `RunDir`, so the layout is written down once, here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.config import Config, flatten, set_dotted
from pipeline.run.records import read_json
from pipeline.run.runner import MANIFEST, STAGE_NAMES, read_manifest

CONFIG_FILE = "config.yaml"  # the resolved config a sweep writes into each trial directory
THRESHOLD_FILE = "threshold.json"  # written by evaluate (chosen on validation), copied by export
CLASSIFIER_FILE = "sgpipe_classifier.json"  # marks a classifier folder: how to rebuild and score the model


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, cfg: Config, run_dir: str | Path | None = None) -> "RunDir":
        """The run directory a command means: --run-dir when given, else runs/<run.name>."""
        return cls(run_dir if run_dir is not None else Path("runs") / cfg.run.name)

    def __str__(self) -> str:
        return str(self.path)

    # ---- paths
    def stage(self, name: str) -> Path:
        return self.path / name

    @property
    def classifier(self) -> Path:
        return self.path / "train" / "classifier"

    @property
    def threshold(self) -> Path:
        return self.path / "evaluate" / THRESHOLD_FILE

    @property
    def log_history(self) -> Path:
        return self.path / "train" / "log_history.json"

    def metrics_file(self, stage: str = "evaluate") -> Path:
        return self.path / stage / "metrics.json"

    def evaluation(self, name: str) -> Path:
        """Where `sgpipe evaluate --data` writes the scores of one external data set."""
        return self.path / "evaluations" / name

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    # ---- contents
    def manifest(self, stage: str) -> dict | None:
        """A stage's manifest, or None when missing or unreadable (then its outputs are not trusted)."""
        return read_manifest(self.path, stage)

    def counts(self, stage: str) -> dict:
        return (self.manifest(stage) or {}).get("counts") or {}

    def has_trained(self) -> bool:
        return (self.stage("train") / MANIFEST).is_file()

    def metrics(self, stage: str = "evaluate") -> dict | None:
        path = self.metrics_file(stage)
        return read_json(path) if path.is_file() else None

    def recorded_slices(self) -> dict:
        """{dotted key: value} of the config slices the stage manifests recorded: what actually ran."""
        slices: dict = {}
        for stage in STAGE_NAMES:
            slices.update((self.manifest(stage) or {}).get("config") or {})
        return slices

    def config(self) -> dict:
        """The configuration the run was made with, as a nested dict that `Config.model_validate` accepts:
        schema defaults <- its config.yaml (sweep trials have one) <- the slices its manifests recorded."""
        tree = Config().model_dump(mode="json")
        if self.config_file.is_file():
            for key, value in flatten(yaml.safe_load(self.config_file.read_text(encoding="utf-8")) or {}).items():
                set_dotted(tree, key, value)
        for key, value in self.recorded_slices().items():
            set_dotted(tree, key, value)
        return tree
