"""What reading inputs may refuse, and how it says so: the limits inputs are read under (`ReaderLimits`), the reasons
an input is refused (`REASONS`), and the `Reject` each refusal becomes (raised inside the readers as `RejectedInput`).

A module of its own so that archives.py and decoding.py can use it without importing readers.py, which calls them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from pipeline.run.records import LABELS

if TYPE_CHECKING:
    from pipeline.config import IngestConfig

REASONS = (
    "empty", "too_short", "binary", "undecodable", "too_large",  # the script itself
    "missing_text", "missing_label", "unknown_label", "malformed_json", "malformed_csv", "wrong_type",  # tables
    "zip_bomb", "zip_slip", "bad_password", "corrupt_archive", "unsupported_archive", "nested_archive",  # archives
    "symlink_skipped", "symlink_outside", "symlink_loop", "symlink_cross_label", "special_file", "unreadable",  # files
    "sgpipe_output",  # a run directory inside the input
)


@dataclass
class ReaderLimits:
    """What readers accept. These defaults are the one source of the `data.ingest` defaults (config.py reads them)."""
    max_file_bytes: int = 1_000_000  # bigger scripts (files, members, table records) are rejected too_large
    min_chars: int = 1  # shorter scripts (after stripping) are rejected
    zip_password: bytes | str | None = "infected"  # tried on encrypted members; the convention for malware archives
    zip_max_ratio: float = 100.0  # a member expanding more than this (and past RATIO_FLOOR) is a bomb
    zip_max_total_bytes: int = 2_000_000_000  # most uncompressed bytes read from one archive or .gz table
    zip_max_members: int = 100_000  # more members than this and the archive is a bomb
    follow_symlinks: bool = False
    label_map: dict[str, str] = field(default_factory=dict)  # user spelling -> "malicious" | "benign"

    @classmethod
    def from_config(cls, ingest: "IngestConfig") -> "ReaderLimits":
        """The one mapping from `data.ingest` to reader limits (ingest, predict and evaluate --data use it)."""
        return cls(max_file_bytes=ingest.max_file_bytes, min_chars=ingest.min_chars, zip_password=ingest.zip_password,
                   zip_max_ratio=ingest.zip_max_ratio, zip_max_total_bytes=ingest.zip_max_total_bytes,
                   follow_symlinks=ingest.follow_symlinks, label_map=dict(ingest.label_map))

    def __post_init__(self):
        if isinstance(self.zip_password, str):  # the YAML config holds it as text
            self.zip_password = self.zip_password.encode("utf-8")
        mapped = {str(k).strip().lower(): str(v).strip().lower() for k, v in self.label_map.items()}
        bad = {k: v for k, v in mapped.items() if v not in LABELS or (k in LABELS and v != k)}
        if bad:
            raise ValueError(f"data.ingest.label_map entries {bad} are invalid: values must be 'malicious' or "
                             "'benign', and 'malicious'/'benign' cannot be remapped. Fix or remove them.")
        self.label_map = mapped


@dataclass
class Reject:
    location: str  # "path", "path:line", "archive.zip!member", "table.csv:row 12"
    reason: str  # one of REASONS
    detail: str  # what is wrong and how to fix it


class RejectedInput(Exception):
    """Raised by helpers for one script/row/member; callers turn it into a `Reject` with the location."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def shorten(value, n: int = 60) -> str:
    """A user value for an error message, truncated: attackers control its length."""
    s = repr(value)
    return s if len(s) <= n else s[:n] + "..."


def too_large_detail(size: int | None, max_file_bytes: int) -> str:
    """The detail for too_large; `size` None when the bounded read stopped before the end."""
    return (f"is {'more than that' if size is None else f'{size:,} bytes'}, over data.ingest.max_file_bytes="
            f"{max_file_bytes:,}; raise that limit if it is a genuine script, or remove it")
