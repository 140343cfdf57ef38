"""Script bytes as text, or the reason they are not text.

UTF-8 (a BOM is dropped) or UTF-16 (with a BOM, or without one when NUL bytes fall on every other byte, as in ASCII
text saved as UTF-16). UTF-32 (its BOM) is refused by name, not mistaken for UTF-16. Other bytes with a NUL in the
first 8 KB are `binary`. Invalid UTF-8 is `undecodable`: legacy encodings such as latin-1 are never guessed, because
a wrong guess silently changes the text the model learns.
"""
from __future__ import annotations

import codecs

from pipeline.inputs.rejects import RejectedInput

SNIFF_BYTES = 8192  # NUL bytes in this much of the head mark a file as binary


def decode_text(raw: bytes) -> str:
    """Script bytes as text: UTF-8 (BOM dropped) or UTF-16 (BOM, or the NUL pattern of ASCII); else `RejectedInput`."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE 00 00 starts with FF FE
        raise RejectedInput("undecodable", "is UTF-32 (it starts with a UTF-32 byte-order mark), which is not read; "
                                           "re-save it as UTF-8 (e.g. `iconv -f utf-32 -t utf-8`)")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(raw, "utf-16")  # the codec reads the BOM for the byte order and drops it
    head = raw[:SNIFF_BYTES]
    if b"\x00" in head:
        codec = _utf16_without_bom(head)
        if codec is None:
            raise RejectedInput("binary", "has NUL bytes in its first 8 KB, so it is not a text script; remove it, or "
                                      "save it as UTF-8 text")
        return _decode(raw, codec)
    return _decode(raw.removeprefix(codecs.BOM_UTF8), "utf-8")


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le'/'-be' when NULs sit on every other byte, as in mostly-ASCII text stored as UTF-16; else None."""
    even, odd = head[0::2], head[1::2]
    if not odd:
        return None
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if nul_odd > 0.6 and nul_even < 0.05:
        return "utf-16-le"
    if nul_even > 0.6 and nul_odd < 0.05:
        return "utf-16-be"
    return None


def _decode(raw: bytes, codec: str) -> str:
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        if codec == "utf-8":
            raise RejectedInput("undecodable", f"is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                                           "re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`): legacy "
                                           "encodings are not guessed") from None
        raise RejectedInput("undecodable", f"looks like UTF-16 but is not valid UTF-16 at offset {e.start}; re-save it "
                                       "as UTF-8 or remove it") from None
    if codec != "utf-8" and "\x00" in text[:SNIFF_BYTES]:  # UTF-16 decoding to NUL characters is binary data
        raise RejectedInput("binary", "decodes as UTF-16 but holds NUL characters, so it is not a text script; remove it")
    return text
