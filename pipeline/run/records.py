"""The record type and the one on-disk format every stage reads and writes (JSON lines, streamed).

A record is one script with its label. Stages pass records between them only through these files, so a stage can be
rerun alone and a half-written file can never be mistaken for a finished one (see `atomic_write`).

Reading and writing JSON was a third of the data stages' time, so records travel as lines where they can: files are
read as lines (`record_lines`), a stage that keeps a record unchanged copies its line rather than parse and
re-serialise it (the bytes are the same: every line was written by `Record.to_json`), and a stage that needs only
ids, labels and groups reads a `RecordHead` without decoding the text. Every record written, copied or serialised,
goes through `RecordWriter.write_line`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import BinaryIO, Iterable, Iterator, NamedTuple

import numpy as np

LABELS = ("benign", "malicious")  # index 1 is the positive class everywhere: "malicious" -> 1


@dataclass
class Record:
    id: str  # sha256 of the normalised text (see `text_id`); variants get their own id
    text: str
    label: str  # "malicious" | "benign"
    lang: str = "unknown"  # powershell | javascript | python | bash | batch | vbscript | unknown
    source: str = ""  # where the record came from (file path, archive member, table row)
    group: str | None = None  # optional key that must never straddle train/val/test
    parent_id: str | None = None  # set on augmented variants: the id of the original
    transforms: list[str] = field(default_factory=list)  # augmentation transforms applied, in order

    @property
    def y(self) -> int:
        return LABELS.index(self.label)

    def to_json(self) -> str:
        # The dict is built field by field, in the order `RecordHead.of_line` relies on; `dataclasses.asdict`
        # deep-copied every record first, which cost more than the encoding itself.
        return _ENCODER.encode({"id": self.id, "text": self.text, "label": self.label, "lang": self.lang,
                                "source": self.source, "group": self.group, "parent_id": self.parent_id,
                                "transforms": self.transforms})

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


_BUFFER = 1 << 20  # bytes; records files are streamed, and 8 KB reads took twice as long
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # made once: json.dumps with options builds one per call
_DECODER = json.JSONDecoder()


class RecordHead(NamedTuple):
    """Every field of a record but its text: what a stage reads of records it assigns or counts and then copies
    as they are (split, dedup's scan). The fields and defaults are Record's."""
    id: str
    label: str
    lang: str = "unknown"
    source: str = ""
    group: str | None = None
    parent_id: str | None = None
    transforms: Sequence[str] = ()

    @classmethod
    def of_line(cls, line: bytes) -> "RecordHead":
        """The head of one records-file line. Where the line is laid out as `Record.to_json` writes it, the text is
        skipped, not decoded (most of a line; decoding it was most of split's and dedup's reading): it ends at the
        first `, "label": ` after it, which cannot lie inside the text since a JSON string escapes every quote.
        The id must be a text_id there (64 hex digits, no escapes). Any other layout is parsed whole."""
        if _CANONICAL_START.match(line):
            end = line.find(_AFTER_TEXT, _TEXT_START)
            if end > 0:
                try:
                    tail = _DECODER.decode("{" + line[end + 2:].decode("utf-8"))
                except ValueError:
                    tail = {"id": None}  # not the layout after all: parsed whole below
                if "id" not in tail and "text" not in tail:
                    return cls._of(line[_ID].decode("ascii"), tail)
        whole = _DECODER.decode(line.decode("utf-8"))
        return cls._of(whole["id"], whole)

    @classmethod
    def _of(cls, record_id: str, fields: dict) -> "RecordHead":
        return cls(record_id, **{k: fields[k] for k in cls._fields[1:] if k in fields})


_CANONICAL_START = re.compile(rb'\{"id": "[0-9a-f]{64}", "text": "')
_ID = slice(len('{"id": "'), len('{"id": "') + 64)
_TEXT_START = _ID.stop + len('", "text": "')
_AFTER_TEXT = b', "label": '


def normalise(text: str) -> str:
    """The canonical form used for ids and exact-duplicate detection: NFC, LF line ends, no trailing blanks."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def text_id(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


_TEXT_ID = re.compile(r"[0-9a-f]{64}")


def id_digest(record_id: str, where: str = "") -> bytes:
    """The 32 bytes a `text_id` spells in hex: stages that hold every id keep these instead of 113-byte strs.

    A numpy "S32" view of concatenated digests sorts as the ids do; read an id back from the raw bytes (a row of a
    (n, 32) uint8 view: `row.tobytes().hex()`), as S32 items drop trailing zero bytes. `where` prefixes the error.
    """
    if not _TEXT_ID.fullmatch(record_id):
        raise ValueError(f"{where}record id {record_id!r} is not a text_id (64 lowercase hex digits): records reach "
                         "dedup and split through ingest, which sets it; rerun ingest")
    return bytes.fromhex(record_id)


def record_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every record in a records file, blank lines skipped, each line ending in a newline:
    the one way records files are read. A stage that keeps a record unchanged copies its line (`RecordWriter`)."""
    offset = 0
    with open(path, "rb", buffering=_BUFFER) as f:
        for line in f:
            if line.strip():
                yield offset, line if line.endswith(b"\n") else line + b"\n"
            offset += len(line)


def record_of_line(line: bytes) -> Record:
    return Record.from_dict(_DECODER.decode(line.decode("utf-8")))


def read_records(path: str | Path) -> Iterator[Record]:
    for _, line in record_lines(path):
        yield record_of_line(line)


def scan_records(path: str | Path) -> Iterator[tuple[int, Record]]:
    """(byte offset, record) for every line: stream a file once, come back to any record later by its offset."""
    for offset, line in record_lines(path):
        yield offset, record_of_line(line)


class RecordWriter:
    """The one way records reach disk: a record serialised (`write`) and a line copied as it was read (`write_line`,
    for records a stage keeps unchanged) both end in `write_line`, one call per record."""

    def __init__(self, file: BinaryIO):
        self.file, self.written = file, 0

    @classmethod
    @contextmanager
    def open(cls, path: str | Path) -> Iterator["RecordWriter"]:
        """A writer to a new file at `path` (inside a stage's output folder, which the runner publishes whole)."""
        with open(path, "wb", buffering=_BUFFER) as f:
            yield cls(f)

    def write(self, record: Record) -> None:
        self.write_line(record.to_json().encode("utf-8") + b"\n")

    def write_line(self, line: bytes) -> None:
        """Write one record's line as it is: a `to_json` line ending in a newline (see `record_lines`)."""
        self.file.write(line)
        self.written += 1


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as JSON lines, atomically. Returns how many were written."""
    with atomic_write(path, "wb") as f:
        writer = RecordWriter(f)
        for r in records:
            writer.write(r)
    return writer.written


def write_json(path: str | Path, obj) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False, default=str)
        f.write("\n")


def read_json(path: str | Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_in_the_way(folder: Path) -> Path | None:
    """The file that keeps `folder` from being, or becoming, a folder: `folder` itself or its nearest existing parent
    when that is not a directory; None when the folder exists or can be created."""
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


@contextmanager
def atomic_write(path: str | Path, mode: str = "w"):
    """Write to a temporary file beside `path`, fsync, then rename: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TextsOnDisk(Sequence):
    """The texts of a records file as a read-only sequence, read back on demand by byte offset.

    Near-duplicate search needs every text twice (to hash, then to verify candidate pairs) but never all at once:
    holding 8 bytes per script instead of the script keeps dedup and split memory flat as the corpus grows.
    """

    def __init__(self, path: str | Path, offsets: Sequence[int]):
        self.path, self.offsets = Path(path), np.asarray(offsets, dtype=np.int64)
        self._file = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return _DECODER.decode(self.line(i).decode("utf-8"))["text"]

    def line(self, i: int) -> bytes:
        """The i-th record's line as it is on disk, ending in a newline."""
        if self._file is None:
            self._file = open(self.path, "rb")
        self._file.seek(int(self.offsets[i]))
        line = self._file.readline()
        return line if line.endswith(b"\n") else line + b"\n"

    def record(self, i: int) -> Record:
        return record_of_line(self.line(i))

    def __getstate__(self):  # picklable for worker processes: they reopen the file
        return {"path": self.path, "offsets": self.offsets, "_file": None}
