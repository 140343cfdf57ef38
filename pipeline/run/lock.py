"""One sgpipe process at a time per run directory, and the mark that tells readers a folder is sgpipe's own.

Two processes on one run directory would delete each other's temporary stage folders and publish a stage without its
outputs, so the run directory is locked for as long as a command writes into it: the second process stops at once
with "in use by pid N" rather than waiting (a wait could be hours behind a training run), and rerunning it later is
safe. The lock is an OS lock on `<run-dir>/.sgpipe.lock` (flock; msvcrt on Windows), so a killed process never leaves
a stale lock behind. The file stays after the run: readers skip any folder holding it, so a run directory inside the
input (`cd corpus && sgpipe all --input .`) is never read back as data.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.run.records import file_in_the_way

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".sgpipe.lock"  # also the mark of a run directory (see readers: never read as input)


class RunDirError(RuntimeError):
    """The run directory cannot be used: it is a file, or another process holds it. The message says what to do."""


def check_run_dir(run_dir: Path) -> None:
    """A clear error for a --run-dir that exists but is not a folder (or sits under a file)."""
    blocker = file_in_the_way(run_dir)
    if blocker is not None:
        raise RunDirError(f"run directory {run_dir}: {blocker} is a file, not a folder; give --run-dir a folder "
                          "path (it is created when missing)")


@contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` exclusively (creating it) for the `with` block; `RunDirError` when another process holds it."""
    check_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            raise RunDirError(f"run directory {run_dir} is in use by pid {holder} (another sgpipe command); wait for "
                              "it to finish, or give this one another --run-dir")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # BlockingIOError (flock) or PermissionError (msvcrt): held by another process
        return False
