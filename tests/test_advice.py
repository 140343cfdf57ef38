"""One table of remedies: the fix-* presets, diagnose's suggested changes and the report's collapse alarm give the
same values for the same symptom."""
import numpy as np

from pipeline.experiments import diagnose
from pipeline.advice import ADVICE
from pipeline.config import Config, load_config
from pipeline.evaluation.metrics import binary_metrics, collapse_alarm
from pipeline.presets import PRESETS


def test_every_remedy_is_a_preset_with_the_same_values_and_loads():
    for symptom, advice in ADVICE.items():
        assert PRESETS[f"fix-{symptom}"].changes == advice.changes
        cfg = load_config(None, presets=[f"fix-{symptom}"], overrides=["model.load_in_4bit=false"])
        assert all(cfg.get(k) == v for k, v in advice.changes.items()), symptom


def test_diagnose_suggests_the_advised_values_from_the_defaults():
    cfg = Config(model={"load_in_4bit": False})
    for symptom, changes in (("overfitting", diagnose.overfitting_changes(cfg)),
                             ("collapse", diagnose.collapse_changes(cfg, roc_auc=None)),
                             ("underfitting", diagnose.underfitting_changes(cfg, used_whole_budget=True))):
        advised = ADVICE[symptom].changes
        # every suggested key the table covers gets the table's value (keys already at it are not repeated)
        for key, value in changes.items():
            if key in advised:
                assert value == advised[key], (symptom, key)
        assert all(cfg.get(k) == v or changes.get(k) == v for k, v in advised.items()), symptom


def test_the_report_alarm_gives_the_same_remedy():
    y = np.array([0, 1] * 20)
    alarm = collapse_alarm(binary_metrics(y, np.linspace(0.5, 1, 40), 0.0))
    assert ADVICE["collapse"].fix in alarm
