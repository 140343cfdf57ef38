"""Zip archives, read in memory member by member: nothing is ever extracted to disk.

An archive is a favourite way to smuggle a decompression bomb or a path-escaping name past a reader, so every guard
runs before a member's bytes are used: the member count is read from the end record before zipfile indexes the
archive; declared sizes are checked against data.ingest.zip_max_ratio, max_file_bytes and zip_max_total_bytes; and
`MeteredReader` checks the ratio and total again on the bytes really decompressed (a .gz table is metered the same way).
Absolute or `..` names (zip slip), stored links and archives inside archives are rejected, never opened. Encrypted
members are tried with data.ingest.zip_password.

What a member becomes is the caller's business: `ZipReader` is given how a top folder names a label, which names are
tables, and how to read a script or a table, so this module never imports readers.py.
"""
from __future__ import annotations

import io
import os
import re
import stat
import struct
import zipfile
import zlib
from typing import BinaryIO, Callable, Iterator

from pipeline.run.records import Record
from pipeline.inputs.rejects import ReaderLimits, Reject, RejectedInput, shorten, too_large_detail

ARCHIVE_SUFFIXES = (".zip", ".jar", ".apk", ".7z", ".rar", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".cab")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x1f\x8b", b"\xfd7zXZ\x00")
RATIO_FLOOR = 1 << 20  # below 1 MiB a high compression ratio is repetitive padding, common in malware, not a bomb


def _declared_members(f: BinaryIO) -> int | None:
    """The member count the zip's end record declares, read before zipfile builds its whole index in memory.
    None when there is no end record (zipfile will then reject the archive itself)."""
    size = f.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 65535)  # the end record is 22 bytes plus a comment of up to 64 KB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    (count,) = struct.unpack("<H", tail[at + 10:at + 12])
    if count == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":  # zip64: the count is elsewhere
        (offset,) = struct.unpack("<Q", tail[at - 12:at - 4])
        f.seek(offset)
        record = f.read(40)
        if record[:4] == b"PK\x06\x06" and len(record) == 40:
            (count,) = struct.unpack("<Q", record[32:40])
    return count


class ByteBudget:
    """Uncompressed bytes one archive (or .gz table) may still produce: data.ingest.zip_max_total_bytes."""

    def __init__(self, limit: int):
        self.limit, self.used, self.exhausted = limit, 0, False

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            self.exhausted = True
            raise RejectedInput("zip_bomb", f"the archive expands past data.ingest.zip_max_total_bytes={self.limit:,} "
                                        "bytes, so the rest of it is not read; split it, or raise that limit if "
                                        "it is genuine")


class MeteredReader(io.RawIOBase):
    """A decompressing stream that stops with zip_bomb once it expands past the ratio limit or the byte budget:
    the limits are enforced on the bytes really produced, not on sizes the archive declares.

    `compressed` is the compressed size, or a function giving the compressed bytes consumed so far: then the ratio is
    checked as the stream goes, so a 2 MB gzip of 2 GB of newlines trips after about RATIO_FLOOR bytes, not after
    the 200 MB a ratio against the whole file would allow."""

    def __init__(self, inner: BinaryIO, compressed: int | Callable[[], int], max_ratio: float, budget: ByteBudget):
        self._inner, self._compressed, self._max_ratio, self._budget = inner, compressed, max_ratio, budget
        self._produced = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
        super().close()

    def readinto(self, buffer) -> int:
        n = self._inner.readinto(buffer)
        self._produced += n
        compressed = self._compressed() if callable(self._compressed) else self._compressed
        if self._produced > RATIO_FLOOR and self._produced > self._max_ratio * max(compressed, 1):
            raise RejectedInput("zip_bomb", f"expands more than data.ingest.zip_max_ratio={self._max_ratio:g} times its "
                                        "compressed size, so it is treated as a decompression bomb; remove it, or "
                                        "raise that limit if it is genuine")
        self._budget.take(n)
        return n


class ZipReader:
    """Records and rejects from zip archives, under `limits`. The callbacks come from the reader: `folder_label`
    (a top folder's name -> its label or None), `table_kind` (a lower-case member name -> 'json'|'csv'|'tsv' or
    None), `script` (raw, loc, name, label, top -> one script read from an archive) and `table` (stream, loc, kind)."""

    def __init__(self, limits: ReaderLimits, folder_label: Callable[[str], str | None],
                 table_kind: Callable[[str], str | None],
                 script: Callable[[bytes, str, str, str | None, str | None], Record | Reject],
                 table: Callable[[BinaryIO, str, str], Iterator[Record | Reject]]):
        self.limits, self.folder_label, self.table_kind = limits, folder_label, table_kind
        self.script, self.table = script, table

    def read(self, f: BinaryIO, loc: str, label: str | None) -> Iterator[Record | Reject]:
        """Members in archive order. `label` is set when the zip sits in a label folder: every member takes it."""
        limits = self.limits
        try:
            declared = _declared_members(f)
            if declared is not None and declared > limits.zip_max_members:
                yield self._too_many_members(loc, declared)
                return
            archive = zipfile.ZipFile(f)
        except Exception as e:  # hostile archives make zipfile raise nearly anything; one must not stop the stream
            yield Reject(loc, "corrupt_archive", f"cannot be opened as a zip ({type(e).__name__}: "
                                                 f"{shorten(str(e), 120)}); re-create the archive or remove it")
            return
        with archive:
            infos = archive.infolist()
            if len(infos) > limits.zip_max_members:
                yield self._too_many_members(loc, len(infos))
                return
            declared_total = sum(i.file_size for i in infos)
            if declared_total > limits.zip_max_total_bytes:
                yield Reject(loc, "zip_bomb", f"declares {declared_total:,} uncompressed bytes, over "
                                              f"data.ingest.zip_max_total_bytes={limits.zip_max_total_bytes:,}; "
                                              "split it, or raise that limit if it is genuine")
                return
            if all(i.filename.endswith("/") for i in infos):  # not is_dir(): it raises on an empty name
                yield Reject(loc, "empty", "is an archive without files; re-create it or remove it")
                return
            wrapper = 0 if label is not None else self._wrapper_depth(infos)
            budget = ByteBudget(limits.zip_max_total_bytes)
            for info in infos:
                yield from self._member(archive, info, f"{loc}!{info.filename}", label, wrapper, budget)
                if budget.exhausted:
                    return

    def _too_many_members(self, loc: str, n: int) -> Reject:
        return Reject(loc, "zip_bomb", f"has {n:,} members, over zip_max_members={self.limits.zip_max_members:,}; "
                                       "split the archive")

    def _wrapper_depth(self, infos: list[zipfile.ZipInfo]) -> int:
        """1 when every member sits in one folder that is not a label (a zip of the dataset folder itself)."""
        firsts = {i.filename.replace("\\", "/").split("/", 1)[0] for i in infos}
        nested = all("/" in i.filename.replace("\\", "/") for i in infos)
        return int(len(firsts) == 1 and nested and self.folder_label(next(iter(firsts))) is None)

    def _member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, loc: str, label: str | None, wrapper: int,
                budget: ByteBudget) -> Iterator[Record | Reject]:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.endswith("/"):  # a folder entry
            return
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
            yield Reject(loc, "zip_slip", "has an absolute or parent-escaping name (zip slip); it is never read. "
                                          "Re-create the archive with relative member names")
            return
        if stat.S_ISLNK(info.external_attr >> 16):
            yield Reject(loc, "symlink_skipped", "is a symbolic link stored in the archive; links in archives are "
                                                 "never followed. Store the file itself")
            return
        base, lower = parts[-1], parts[-1].lower()
        top = None
        if label is None and len(parts) - wrapper > 1:
            top = parts[wrapper]
            label = self.folder_label(top)
        table = self.table_kind(lower) if label is None else None
        try:
            stream = self._open_member(archive, info, lower, table is not None, budget)
            if not table:
                with stream:
                    raw = stream.read(self.limits.max_file_bytes + 1)
        except RejectedInput as r:
            yield Reject(loc, r.reason, r.detail)
            return
        except Exception as e:  # see read: a corrupt member ends that member only
            yield self._member_error(loc, info, e)
            return
        if table:
            with stream:
                yield from self.table(stream, loc, table)
        else:
            yield self.script(raw, loc, base, label, top)

    def _open_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, lower: str, table: bool,
                     budget: ByteBudget) -> BinaryIO:
        """A metered, buffered stream of one member, after the checks that need no decompression."""
        limits = self.limits
        if lower.endswith(ARCHIVE_SUFFIXES):
            raise RejectedInput("nested_archive", "is an archive inside an archive, which is never opened; unpack it "
                                              "and pass the inner archive itself")
        if info.file_size > RATIO_FLOOR and info.file_size > limits.zip_max_ratio * max(info.compress_size, 1):
            raise RejectedInput("zip_bomb", f"declares {info.file_size:,} bytes from {info.compress_size:,} compressed, "
                                        f"over data.ingest.zip_max_ratio={limits.zip_max_ratio:g}; a decompression "
                                        "bomb. Remove it, or raise that limit if it is genuine")
        if info.file_size > limits.max_file_bytes and not table:  # tables are streamed, their rows checked
            raise RejectedInput("too_large", too_large_detail(info.file_size, limits.max_file_bytes))
        encrypted = info.flag_bits & 0x1
        if encrypted and limits.zip_password is None:
            raise RejectedInput("bad_password", "is encrypted and no password is set; set data.ingest.zip_password")
        member = archive.open(info, pwd=limits.zip_password if encrypted else None)
        return io.BufferedReader(MeteredReader(member, info.compress_size, limits.zip_max_ratio, budget))

    def _member_error(self, loc: str, info: zipfile.ZipInfo, e: Exception) -> Reject:
        if info.flag_bits & 0x1 and isinstance(e, (RuntimeError, zlib.error, zipfile.BadZipFile)):
            # zipfile says "Bad password"; a wrong password that passes its 1-in-256 check fails later, garbled
            return Reject(loc, "bad_password", "cannot be decrypted with data.ingest.zip_password (wrong password, "
                                               "or the member is corrupt); set the archive's password there")
        if isinstance(e, NotImplementedError):
            return Reject(loc, "unsupported_archive", f"uses a method zipfile cannot read ({e}); re-pack it with "
                                                      "deflate and, if encrypted, ZipCrypto rather than AES")
        return Reject(loc, "corrupt_archive", f"cannot be read ({type(e).__name__}: {shorten(str(e), 120)}); "
                                              "re-create the archive")
