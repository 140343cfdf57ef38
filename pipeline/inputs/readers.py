"""Read user inputs -- files, folders, zip archives, JSONL/CSV tables -- into Records, with a reason for every reject.

The ingest stage (labelled) and `sgpipe predict` (unlabelled) both read through `iter_inputs`, so they see inputs the
same way. Inputs are written by attackers: nothing here executes, imports or extracts anything; every script is read
with a bounded read, tables are streamed line by line, archives are read in memory member by member, and a folder walk
never leaves the folder it was given. Every problem becomes a `Reject` (location, reason, the fix) and the stream goes
on.

What is read, and how
- Tables: `.jsonl`, `.json` (JSON lines, not one JSON array), `.csv`, `.tsv`, each optionally gzipped (`.gz`). One
  record per line/row, with fields `text`, `label` and optional `lang`, `source`, `group`, `id`. CSV rows are
  numbered like a spreadsheet (the header is row 1); JSON lines by line number. CSV/TSV fields holding quotes,
  delimiters or line breaks must be quoted, as csv writers and pandas do; a quote opens a quoted field only at the
  field's start (elsewhere it is text, as Python's csv reads it); a broken row is rejected on its own, and a broken
  row spanning lines is read again line by line, so it cannot swallow the valid rows after it. Every line ends as a
  record, a reject, a header or a blank line (counted: `LostRowsError` otherwise). A key twice in a JSON object or a
  column twice in a CSV header is rejected, never last-wins. Blank lines are skipped a buffer at a time.
  The record id is always `text_id(text)`. `source` is the user's `source` field kept verbatim (so that
  `data.split.group_key: source` groups by it); without one it is the row's location, suffixed "#<id>" when the row
  has an `id`, so a record can be traced back to the user's own key.
- Folders: the label is the top folder under the root: `<root>/malicious/**`, `<root>/benign/**`, or a folder whose
  name is in `label_map`; a root that is itself named like a label (`data/malicious`) labels everything in it. Every
  file inside a label folder is a sample, whatever its extension, except `.zip` files, which are opened and whose
  members take the folder's label. Outside label folders, tables are read as tables, zips are opened, and any other
  file is rejected for its missing label. Folders are walked in sorted order.
- Zip archives: members are read in memory in archive order and follow the folder rules (a zip of the dataset folder
  itself, `dataset/malicious/...`, works too). Archives inside archives are rejected, never opened.
- `labelled=False` (predict): the same walk, but every record gets label "" and nothing is rejected for its label.
- Symbolic links inside folders are skipped unless `follow_symlinks`; followed links must stay inside the root, may
  not revisit a folder, and may not cross labels (`benign/x -> ../malicious` would relabel samples). A path the
  user names directly is followed: the user chose it. FIFOs, sockets and devices are rejected before they are read
  (reading a FIFO would block forever). A folder holding sgpipe's run lock (a run directory) is rejected as
  `sgpipe_output` and never entered.

Limits: a script (file, member, table row) over `max_file_bytes` is `too_large`; a file is judged by its size without
being read, and table lines are read in 64 KB pieces, so no input is ever held whole. Zip members are checked on their
declared sizes (ratio, size, archive total, member count read from the end record before zipfile indexes the archive)
and again on the bytes really decompressed; gzipped tables get the same ratio and total limits while streaming.
Reading CSV raises the process-wide `csv.field_size_limit` to fit `max_file_bytes`.

Text decoding (UTF-8 or UTF-16, never a guessed legacy encoding) is in decoding.py, the zip guards in archives.py, and
the limits and the reject vocabulary in rejects.py; this module re-exports what callers import from it.
"""
from __future__ import annotations

import codecs
import csv
import errno
import gzip
import io
import json
import os
import stat
import unicodedata
import zipfile
import zlib
from functools import partial
from typing import BinaryIO, Iterator, Sequence

from pipeline.inputs.archives import ARCHIVE_MAGIC, ARCHIVE_SUFFIXES, ZipReader, ByteBudget, MeteredReader
from pipeline.inputs.decoding import decode_text
from pipeline.languages import detect_language, normalise_lang
from pipeline.run.lock import LOCK_FILE
from pipeline.run.records import LABELS, Record, text_id
from pipeline.inputs.rejects import REASONS, ReaderLimits, Reject, RejectedInput, shorten, too_large_detail

__all__ = ["REASONS", "ReaderLimits", "Reject", "decode_text", "iter_inputs", "safe_display"]

TABLE_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}  # each may also end in .gz
CHUNK = 1 << 16  # longest piece of a table line held before its length is checked


_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, bidi/format, surrogates, line separators


def safe_display(s: str) -> str:
    """`s` with control, escape, bidi-override and line-separator characters shown as \\x.. escapes, safe to print."""
    out = []
    for c in s:
        if unicodedata.category(c) in _UNSAFE_CATEGORIES:
            o = ord(c)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(c)
    return "".join(out)


def iter_inputs(paths: Sequence[str | os.PathLike], limits: ReaderLimits,
                labelled: bool = True) -> Iterator[Record | Reject]:
    """Records and rejects from every input, in order. `labelled=False` gives label "" and never rejects for labels."""
    reader = _Reader(limits, labelled)
    for path in paths:
        yield from reader.read_path(os.fspath(path))


# ------------------------------------------------------------------------------------------------ small helpers
def _loc(path: str) -> str:
    """A path as text that always encodes: undecodable file-name bytes become \\x.. escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _clean(value: str) -> str:
    """User metadata as text that always encodes (JSON can carry lone surrogates, which cannot be written)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")



def _table_kind(name: str) -> str | None:
    """'json' | 'csv' | 'tsv' for a table file name (lower case, optionally .gz), else None."""
    base = name.removesuffix(".gz")
    return next((kind for suffix, kind in TABLE_SUFFIXES.items() if base.endswith(suffix)), None)


def _is_run_dir(folder: str) -> bool:
    """Whether `folder` is an sgpipe run directory (it holds the run lock file)."""
    return os.path.isfile(os.path.join(folder, LOCK_FILE))


def _run_dir_reject(loc: str) -> Reject:
    # A run directory inside the input (`cd corpus && sgpipe all --input .`) would feed ingest its own records.jsonl
    # while it grows, until the disk fills; outputs are never data
    return Reject(loc, "sgpipe_output", "is an sgpipe run directory, whose outputs are never read as input; give "
                                        "--run-dir outside the input folder, or leave it: it is skipped")


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _open_regular(path: str, follow: bool) -> BinaryIO:
    """Open a regular file for reading, refusing links (unless `follow`) and FIFOs/devices, which could block or
    never end. The checks are on the opened descriptor, so a file swapped after the folder was listed is caught."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise RejectedInput("symlink_skipped", "became a symbolic link while the folder was read; links are "
                                               "followed only with data.ingest.follow_symlinks: true") from None
        raise RejectedInput("unreadable", f"cannot be opened ({e.strerror}); check that it exists and is readable, "
                                      "or remove it from the input") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RejectedInput("special_file", "is not a regular file (a FIFO, socket or device); remove it from the input")
    return os.fdopen(fd, "rb")


class _LineCount:
    """Physical lines a table held and lines that ended as a record, a reject, a header or a blank: `_table` checks
    that the two agree, so a row can never vanish into its neighbour without an outcome of its own."""

    def __init__(self):
        self.seen = self.accounted = 0


def _logical_lines(stream: BinaryIO, bound: int, delimiter: bytes | None,
                   count: _LineCount) -> Iterator[tuple[int, int, bytes | None]]:
    """(first line number, last line number, bytes) per line or, with a CSV `delimiter`, per CSV row, which may span
    lines inside a quoted field. The bytes are None for a line/row longer than `bound`: it is read past in chunks,
    never held whole. Runs of blank lines are skipped in bulk (a gzip of newlines must not cost a Python loop per
    line). Splitting rows before parsing means one broken row cannot derail the rows after it."""
    lineno, eof = 0, False
    blank = b"\r\n" if delimiter else b" \t\r\n"  # a CSV row of spaces is a row; a JSON line of spaces is not
    while not eof:
        start, parts, size = lineno + 1, [], 0
        quotes = _CsvQuotes(delimiter) if delimiter else None
        while True:
            chunk = stream.readline(CHUNK)
            if not chunk:
                eof = True
                break
            size += len(chunk)
            if size <= bound:
                parts.append(chunk)
            elif parts:
                parts.clear()
            if quotes is not None:
                quotes.feed(chunk)
            if chunk.endswith(b"\n"):
                lineno += 1
                if quotes is None or not quotes.in_quotes:
                    break
        if len(parts) == 1 and lineno == start and not parts[0].strip(blank):  # blank: skip its run in bulk
            skipped = 1 + _skip_blank_lines(stream, blank)
            lineno += skipped - 1
            count.seen += skipped
            count.accounted += skipped
            continue
        if size:
            end_line = lineno if chunk.endswith(b"\n") else lineno + 1  # a last line without a line end
            count.seen += end_line - start + 1
            yield start, end_line, b"".join(parts) if size <= bound else None


def _skip_blank_lines(stream: BinaryIO, blank: bytes) -> int:
    """Consume whole lines made only of `blank` bytes, a buffer at a time; returns how many."""
    peek = getattr(stream, "peek", None)
    skipped = 0
    while peek is not None:
        buf = peek(CHUNK)[:CHUNK]
        run = len(buf) - len(buf.lstrip(blank))
        cut = buf.rfind(b"\n", 0, run) + 1  # only whole lines: "\r" or spaces before the next text stay with it
        if cut == 0:
            break
        skipped += buf.count(b"\n", 0, cut)
        stream.read(cut)
    return skipped


class _CsvQuotes:
    """Whether a CSV row is inside a quoted field, read as csv writers write and Python's csv reads: a quote opens a
    field only at the field's start; inside one, a doubled quote is a quote and a single one closes it. A stray quote
    in an unquoted field (`say "hi",benign`) is text, so it cannot swallow the rows after it."""

    def __init__(self, delimiter: bytes):
        self.delimiter = delimiter[0]
        self.in_quotes, self._field_start, self._pending_close = False, True, False

    def feed(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        if self._pending_close:  # the previous chunk ended on a quote inside a quoted field
            self._pending_close = False
            if chunk[:1] == b'"':
                i = 1  # a doubled quote split over two chunks: still inside the field
            else:
                self.in_quotes = False
        while i < n:
            if self.in_quotes:
                j = chunk.find(b'"', i)
                if j < 0:
                    return
                if j + 1 == n:
                    self._pending_close = True
                    return
                if chunk[j + 1] == 0x22:  # "" inside a quoted field
                    i = j + 2
                    continue
                self.in_quotes, self._field_start, i = False, False, j + 1
                continue
            j = chunk.find(b'"', i)  # outside quotes only a quote can change the state: jump to the next one
            if j < 0:
                self._field_start = chunk[n - 1] in (self.delimiter, 0x0A)
                return
            self.in_quotes = self._field_start if j == i else chunk[j - 1] in (self.delimiter, 0x0A)
            self._field_start, i = False, j + 1


# ------------------------------------------------------------------------------------------------------- reader
class _Reader:
    """Turns one input after another into records and rejects under the same limits and labelling mode."""

    def __init__(self, limits: ReaderLimits, labelled: bool):
        self.limits, self.labelled = limits, labelled
        self._zips = ZipReader(limits, self._folder_label, _table_kind, partial(self._script, in_archive=True),
                               self._table)

    # -------------------------------------------------------------------------------------------- files, folders
    def read_path(self, path: str) -> Iterator[Record | Reject]:
        """One input the user named: a folder, a table, an archive or a single script."""
        loc = _loc(path)
        try:
            st = os.stat(path)  # follows a link the user named: they chose it
        except OSError as e:
            yield Reject(loc, "unreadable", f"cannot be read ({e.strerror}); check the path in data.ingest.inputs")
            return
        if stat.S_ISDIR(st.st_mode):
            if _is_run_dir(path):
                yield _run_dir_reject(loc)
                return
            seen = False
            for item in self._walk(path, st):
                seen = True
                yield item
            if not seen:
                yield Reject(loc, "empty", "is a folder without files; check the path in data.ingest.inputs")
        elif stat.S_ISREG(st.st_mode):
            yield from self._file(path, os.path.basename(path), loc, None, None, follow=True)
        else:
            yield Reject(loc, "special_file", "is not a regular file or folder (a FIFO, socket or device); remove it "
                                              "from data.ingest.inputs")

    def _folder_label(self, name: str) -> str | None:
        key = name.strip().lower()
        return key if key in LABELS else self.limits.label_map.get(key)

    def _walk(self, root: str, root_stat: os.stat_result) -> Iterator[Record | Reject]:
        """Every file under `root`, depth first in sorted order, with an explicit stack so depth cannot overflow."""
        root_real = os.path.realpath(root)
        root_label = self._folder_label(os.path.basename(os.path.abspath(root)))
        visited = {(root_stat.st_dev, root_stat.st_ino)}  # folders read: a followed link may not reread one (loops)
        try:
            entries = self._entries(root)
        except OSError as e:
            yield Reject(_loc(root), "unreadable", f"cannot list the folder ({e.strerror}); check its permissions")
            return
        stack = [(entries, root_label, None)]  # (entries left, label of this subtree, its top folder's name)
        while stack:
            entries, label, top = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            path, loc = entry.path, _loc(entry.path)
            try:
                if entry.is_symlink():
                    if not self.limits.follow_symlinks:
                        yield Reject(loc, "symlink_skipped", "is a symbolic link, not followed; set "
                                                             "data.ingest.follow_symlinks: true to read links that "
                                                             "stay inside the input folder")
                        continue
                    path = os.path.realpath(entry.path)
                    if not _inside(path, root_real):
                        yield Reject(loc, "symlink_outside", f"is a symbolic link to {shorten(_loc(path))}, outside the "
                                                             "input folder, and is never followed; copy the target "
                                                             "into the folder if it belongs to the data")
                        continue
                    st = os.stat(path)
                    crossed = self._link_crosses_label(path, root_real, root_label, label, len(stack) == 1)
                    if crossed is not None:
                        yield Reject(loc, "symlink_cross_label", crossed)
                        continue
                else:
                    st = entry.stat(follow_symlinks=False)
            except OSError as e:
                yield Reject(loc, "unreadable", f"cannot be read ({e.strerror}): it vanished, is a broken or "
                                                "looping link, or is not permitted; fix or remove it")
                continue
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in visited:
                    yield Reject(loc, "symlink_loop", "is a link to a folder already read (a loop or a second "
                                                      "path to it); remove the link")
                    continue
                visited.add((st.st_dev, st.st_ino))
                if _is_run_dir(path):
                    yield _run_dir_reject(loc)
                    continue
                try:
                    children = self._entries(path)
                except OSError as e:
                    yield Reject(loc, "unreadable", f"cannot list the folder ({e.strerror}); check its permissions")
                    continue
                if len(stack) == 1 and root_label is None:  # a top folder: its name is the label of everything in it
                    stack.append((children, self._folder_label(entry.name), entry.name))
                else:
                    stack.append((children, label, top))
            elif stat.S_ISREG(st.st_mode):
                # a followed link is opened by its resolved path, which has no links left to follow
                yield from self._file(path, entry.name, loc, label, top, follow=False)
            else:
                yield Reject(loc, "special_file", "is not a regular file (a FIFO, socket or device); remove it")

    def _link_crosses_label(self, target: str, root_real: str, root_label: str | None, label: str | None,
                            at_top: bool) -> str | None:
        """Why a followed link may not be read (it would give its target another label), or None. Labels come from
        folders, so `benign/x -> ../malicious` would relabel every malicious sample benign: refused, not guessed."""
        if root_label is not None:
            return None  # the whole root has one label: a link inside it cannot change it
        parts = os.path.relpath(target, root_real).split(os.sep)
        in_top_folder = parts[0] != "." and (len(parts) > 1 or os.path.isdir(target))
        target_label = self._folder_label(parts[0]) if in_top_folder else None
        here = None if at_top else label  # a link at the top names its own label folder: judged by its target
        if at_top and target_label is None:
            return None
        if target_label == here:
            return None
        return (f"is a symbolic link from a folder labelled {here or 'nothing'} to {shorten(_loc(target))}, "
                f"labelled {target_label or 'nothing'}; a link may not move samples between labels. Copy the files "
                "into the folder of their label, or remove the link")

    @staticmethod
    def _entries(folder: str) -> Iterator[os.DirEntry]:
        with os.scandir(folder) as it:
            return iter(sorted(it, key=lambda e: e.name))

    def _file(self, path: str, name: str, loc: str, label: str | None, top: str | None,
              follow: bool) -> Iterator[Record | Reject]:
        """One file: a zip is opened, a table outside label folders is read as a table, anything else is a script."""
        try:
            f = _open_regular(path, follow)
        except RejectedInput as r:
            yield Reject(loc, r.reason, r.detail)
            return
        lower = name.lower()
        with f:
            if lower.endswith(".zip"):
                yield from self._zips.read(f, loc, label)
            elif label is None and _table_kind(lower):
                yield from self._table_file(f, loc, lower)
            else:
                yield self._script_file(f, loc, name, label, top)

    def _script_file(self, f: BinaryIO, loc: str, name: str, label: str | None, top: str | None) -> Record | Reject:
        limit = self.limits.max_file_bytes
        size = os.fstat(f.fileno()).st_size
        if size > limit:  # decided from the size alone: a 50 MB file is never read
            return Reject(loc, "too_large", too_large_detail(size, self.limits.max_file_bytes))
        try:
            raw = f.read(limit + 1)  # bounded even if the file grows after the size was taken
        except OSError as e:
            return Reject(loc, "unreadable", f"cannot be read ({e.strerror}); check the file or remove it")
        return self._script(raw, loc, name, label, top, in_archive=False)

    # ---------------------------------------------------------------------------------------------- one script
    def _script(self, raw: bytes, loc: str, name: str, label: str | None, top: str | None,
                in_archive: bool) -> Record | Reject:
        """A script file or archive member: checked, decoded, labelled by its folder."""
        try:
            if len(raw) > self.limits.max_file_bytes:
                raise RejectedInput("too_large", too_large_detail(None, self.limits.max_file_bytes))
            if name.lower().endswith(ARCHIVE_SUFFIXES) or raw.startswith(ARCHIVE_MAGIC):
                if in_archive:
                    raise RejectedInput("nested_archive", "is an archive inside an archive, which is never opened; "
                                                      "unpack it and pass the inner archive itself")
                raise RejectedInput("unsupported_archive", "is a compressed archive, and only .zip files are opened; "
                                                       "unpack it (or rename it .zip if it is a zip)")
            text = decode_text(raw)
            self._check_text(text)
            label = self._script_label(label, top)
        except RejectedInput as r:
            return Reject(loc, r.reason, r.detail)
        return self._record(text, label, None, loc, None, filename=name)

    def _script_label(self, label: str | None, top: str | None) -> str:
        if not self.labelled:
            return ""
        if label is not None:
            return label
        if top is None:
            raise RejectedInput("missing_label", "has no label: put it under <root>/malicious/ or <root>/benign/, or "
                                             "list it in a JSONL/CSV table with a label column")
        raise RejectedInput("unknown_label", f"its top folder {shorten(top)} is not a label: rename it malicious/ or "
                                         f"benign/, or map it in data.ingest.label_map, e.g. {{{shorten(top)}: "
                                         "malicious}")

    def _check_text(self, text: str) -> None:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # only JSON can produce these: "\ud800" escapes
            raise RejectedInput("undecodable", "holds an unpaired surrogate escape (such as \\ud800), which is not text; "
                                           "fix the line that wrote it") from None
        if size > self.limits.max_file_bytes:
            raise RejectedInput("too_large", too_large_detail(size, self.limits.max_file_bytes))
        chars = len(text.strip())
        if chars == 0:
            raise RejectedInput("empty", "is empty or whitespace only; remove it")
        if chars < self.limits.min_chars:
            raise RejectedInput("too_short", f"has {chars} characters, fewer than data.ingest.min_chars="
                                         f"{self.limits.min_chars}; remove it or lower that limit")

    def _label(self, value: str) -> str:
        key = value.strip().lower()
        if key in LABELS:
            return key
        if key in self.limits.label_map:
            return self.limits.label_map[key]
        if not key:
            raise RejectedInput("missing_label", "has an empty label; give 'malicious' or 'benign'")
        raise RejectedInput("unknown_label", f"label {shorten(value)} is neither 'malicious' nor 'benign'; map it with "
                                         f"data.ingest.label_map, e.g. {{{shorten(key)}: malicious}}")

    def _record(self, text: str, label: str, lang: str | None, source: str, group: str | None,
                filename: str | None) -> Record:
        lang = normalise_lang(lang) if lang else detect_language(text, filename)
        return Record(id=text_id(text), text=text, label=label, lang=lang, source=source, group=group)

    # -------------------------------------------------------------------------------------------------- tables
    def _table_file(self, f: BinaryIO, loc: str, name: str) -> Iterator[Record | Reject]:
        if not name.endswith(".gz"):
            yield from self._table(f, loc, _table_kind(name))
            return
        limits = self.limits
        unzipped = MeteredReader(gzip.GzipFile(fileobj=f, mode="rb"), f.tell, limits.zip_max_ratio,
                                 ByteBudget(limits.zip_max_total_bytes))  # f.tell: compressed bytes read so far
        with io.BufferedReader(unzipped) as stream:
            yield from self._table(stream, loc, _table_kind(name))

    def _table(self, stream: BinaryIO, loc: str, kind: str) -> Iterator[Record | Reject]:
        """Rows of one table; a failure of the stream itself (bomb, corrupt gzip/zip, I/O) ends this table only."""
        count = _LineCount()
        rows = self._json_rows(stream, loc, count) if kind == "json" else self._csv_rows(stream, loc, kind, count)
        rest = "; rows before this point were read, the rest of the table was not"
        seen = False
        try:
            for item in rows:
                seen = True
                yield item
        except RejectedInput as r:
            yield Reject(loc, r.reason, r.detail + rest)
        except (EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile) as e:
            yield Reject(loc, "corrupt_archive", f"is truncated or corrupt ({e}){rest}; re-create the file")
        except OSError as e:
            yield Reject(loc, "unreadable", f"could not be read to the end ({e.strerror or e}){rest}")
        else:
            if count.seen != count.accounted:  # a reader bug, never bad input: stop rather than lose rows silently
                raise LostRowsError(f"{loc}: {count.seen} lines read but {count.accounted} ended as a record, a "
                                    "reject, a header or a blank line; please report this with the file")
            if not seen:
                yield Reject(loc, "empty", "is a table without rows; fill it or remove it from the input")

    def _json_rows(self, stream: BinaryIO, loc: str, count: _LineCount) -> Iterator[Record | Reject]:
        bound = 6 * self.limits.max_file_bytes + CHUNK  # JSON escapes (\uXXXX) can take 6 bytes per character
        for lineno, _, raw in _logical_lines(stream, bound, None, count):
            where = f"{loc}:{lineno}"
            count.accounted += 1
            if raw is None:
                yield Reject(where, "too_large", f"the line is over {bound:,} bytes, too long for a script within "
                                                 f"data.ingest.max_file_bytes={self.limits.max_file_bytes:,}; raise "
                                                 "that limit if it is genuine, or remove the line")
            elif raw.strip():
                yield self._json_row(raw, where, first=lineno == 1)

    def _json_row(self, raw: bytes, where: str, first: bool) -> Record | Reject:
        try:
            line = _decode_row(raw, first, "line")
            hint = (" A .json input must hold JSON lines (one object per line), not one array: convert it with "
                    "`jq -c '.[]'`." if line.lstrip().startswith("[") else "")
            try:
                obj = json.loads(line, object_pairs_hook=_unique_keys)
            except (ValueError, RecursionError) as e:  # RecursionError: hostile nesting like [[[[...]]]]
                if isinstance(e, DuplicateKeyError):
                    raise RejectedInput("malformed_json", f"has the key {shorten(e.key)} twice, and which one is "
                                                          "meant cannot be known; keep one") from None
                raise RejectedInput("malformed_json", f"is not valid JSON ({shorten(str(e), 120)}); fix or remove the "
                                                  f"line.{hint}{_line_end_hint(line)}") from None
            if not isinstance(obj, dict):
                raise RejectedInput("wrong_type", f"is a JSON {type(obj).__name__}, not an object; write one object "
                                              f"per line with 'text' and 'label'.{hint}")
            return self._row(obj, where)
        except RejectedInput as r:
            return Reject(where, r.reason, r.detail)

    def _csv_rows(self, stream: BinaryIO, loc: str, kind: str, count: _LineCount) -> Iterator[Record | Reject]:
        delimiter = "\t" if kind == "tsv" else ","
        bound = 2 * self.limits.max_file_bytes + CHUNK  # quotes inside a field are doubled
        if csv.field_size_limit() < bound:  # process-wide; the default 128 KB is smaller than many scripts
            csv.field_size_limit(bound)
        header: list[str] | None = None
        rowno, last_line = 0, 0
        for start, end, raw in _logical_lines(stream, bound, delimiter.encode(), count):
            rowno += start - last_line  # the blank lines skipped in between are rows of a spreadsheet too
            last_line = end
            where = f"{loc}:row {rowno}"
            try:
                if raw is None:
                    raise RejectedInput("too_large", f"the row (lines {start}-{end}) is over {bound:,} bytes, too long "
                                                 "for a script within "
                                                 f"data.ingest.max_file_bytes={self.limits.max_file_bytes:,} (or a "
                                                 "quote is never closed); raise that limit or fix the row")
                if header is None:
                    header = self._csv_header(_parse_csv_row(raw, delimiter, first=True))
                    count.accounted += end - start + 1
                    continue
                outcomes = list(self._csv_row(raw, delimiter, header, where, rowno, start, end, loc))
                count.accounted += (end - start + 1) if outcomes else 0  # a row must end as a record or reject
                yield from outcomes
            except RejectedInput as r:
                count.accounted += end - start + 1
                yield Reject(where, r.reason, r.detail)
                if header is None:  # without a header no row can be read
                    count.accounted = count.seen = 0  # the rest is not read: nothing to account for
                    return

    def _csv_row(self, raw: bytes, delimiter: str, header: list[str], where: str, rowno: int, start: int, end: int,
                 loc: str) -> Iterator[Record | Reject]:
        """One CSV row as a record or a reject. A row spanning lines that does not parse is read again line by line,
        so a quoting mistake costs its own line, never the valid rows it would otherwise swallow."""
        try:
            fields = _parse_csv_row(raw, delimiter, first=False)
        except RejectedInput:
            if end == start:
                raise
            for i, line in enumerate(raw.splitlines(keepends=True)):
                row_where = f"{loc}:row {rowno + i}, line {start + i} (a quote opened in row {rowno} did not parse)"
                try:
                    yield from self._csv_fields(_parse_csv_row(line, delimiter, first=False), header, row_where)
                except RejectedInput as r:
                    yield Reject(row_where, r.reason, r.detail)
            return
        yield from self._csv_fields(fields, header, where)

    def _csv_fields(self, fields: list[str], header: list[str], where: str) -> Iterator[Record | Reject]:
        if not fields:
            return
        try:
            if len(fields) != len(header):
                raise RejectedInput("malformed_csv", f"has {len(fields)} fields but the header has {len(header)}; "
                                                 "quote fields that hold the delimiter, quotes or line breaks")
            yield self._row(dict(zip(header, fields)), where)
        except RejectedInput as r:
            yield Reject(where, r.reason, r.detail)

    def _csv_header(self, fields: list[str]) -> list[str]:
        header = [f.strip().lower() for f in fields]
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:  # `text,label,text` would keep the last text silently
            raise RejectedInput("malformed_csv", f"the header names the column(s) {shorten(twice, 100)} more than once, "
                                             "so which one holds the value cannot be known; rename or drop one")
        if "text" not in header:
            raise RejectedInput("malformed_csv", f"the header {shorten(fields, 100)} has no 'text' column; the first row "
                                             "must name the columns, e.g. text,label,lang,source,group,id")
        if self.labelled and "label" not in header:
            raise RejectedInput("missing_label", f"the header {shorten(fields, 100)} has no 'label' column; add one "
                                             "holding malicious or benign")
        return header

    def _row(self, row: dict, where: str) -> Record:
        """A table row (JSON object or CSV fields by column name) as a Record; `RejectedInput` says why not."""
        text = row.get("text")
        if text is None:
            raise RejectedInput("missing_text", "has no 'text'; every row needs the script in a 'text' field")
        if not isinstance(text, str):
            raise RejectedInput("wrong_type", f"'text' is a {type(text).__name__}, not a string; store the script as "
                                          "a string")
        self._check_text(text)
        label = ""
        if self.labelled:
            value = _optional(row, "label", (str, int))  # JSON 1/0/true are common; label_map gives them meaning
            if value is None:
                raise RejectedInput("missing_label", "has no 'label'; give 'malicious' or 'benign'")
            label = self._label(str(value))
        lang = _optional(row, "lang", (str,))
        source = _optional(row, "source", (str,))
        group = _optional(row, "group", (str, int))
        user_id = _optional(row, "id", (str, int))
        if source is None:
            source = where + (f"#{user_id}" if user_id is not None else "")
        return self._record(text, label, lang, _clean(source), None if group is None else _clean(str(group)), None)


def _optional(row: dict, key: str, types: tuple[type, ...]):
    """An optional row field: None when absent, null or empty; `RejectedInput` when of the wrong type."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, types):
        raise RejectedInput("wrong_type", f"'{key}' is a {type(value).__name__}; it must be a "
                                      f"{' or '.join(t.__name__ for t in types)}")
    return value


class DuplicateKeyError(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class LostRowsError(RuntimeError):
    """A table's lines did not all end as a record, a reject, a header or a blank line (a reader bug)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json.loads hook: a key twice in one object (`{"label": "benign", "label": "malicious"}`) is an error, not
    last-wins: which label the author meant cannot be known."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        raise DuplicateKeyError(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def _line_end_hint(text: str) -> str:
    """A hint for a row that holds carriage returns without line feeds: old Mac line ends make the whole file one
    line."""
    if "\r" in text.rstrip("\r\n").replace("\r\n", ""):
        return (" It holds carriage returns (\\r) that are not followed by a line feed: if the file uses old Mac line "
                "ends, convert them, e.g. `tr '\\r' '\\n' < in > out`.")
    return ""


def _decode_row(raw: bytes, first: bool, what: str) -> str:
    """One JSONL line or CSV row as text: a BOM is dropped from the first, anything but UTF-8 is rejected."""
    if first:
        raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RejectedInput("undecodable", f"the {what} is not valid UTF-8 (offset {e.start}); write the table as "
                                           "UTF-8") from None


def _parse_csv_row(raw: bytes, delimiter: str, first: bool) -> list[str]:
    """The fields of one CSV row (already split off by `_logical_lines`); [] for a blank row."""
    text = _decode_row(raw, first, "row")
    text = text.removesuffix("\n").removesuffix("\r")
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))  # strict: a stray quote is an error
    except csv.Error as e:
        raise RejectedInput("malformed_csv", f"cannot be parsed ({e}); quote fields that hold the delimiter, quotes or "
                                         f"line breaks, doubling quotes inside them.{_line_end_hint(text)}") from None
    return rows[0] if rows else []
