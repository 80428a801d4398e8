"""How the bytes of a text data file become text.

Encodings. Text files are UTF-8, with or without a byte-order mark. A UTF-16 (LE or BE)
or UTF-32 byte-order mark says the file is in that encoding and it is decoded as such:
Excel's "Unicode text" export is UTF-16 LE with a BOM (and tab-separated). Without a
BOM nothing but UTF-8 is assumed: a file with NUL bytes in every other position looks
like UTF-16 and is refused with a message that says so, and other bytes that are not
UTF-8 are refused with the line, the byte and iconv advice for the usual sources
(cp1252, latin1, Shift-JIS, GBK); no encoding is guessed, since a wrong guess turns
text into other text without a trace.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 BE", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "UTF-32 LE", "utf-32-le"),
    (b"\xef\xbb\xbf", "UTF-8", "utf-8"),
    (b"\xfe\xff", "UTF-16 BE", "utf-16-be"),
    (b"\xff\xfe", "UTF-16 LE", "utf-16-le"),
)
ICONV_ADVICE = ("Convert it to UTF-8 with iconv -f ENCODING -t utf-8 IN > OUT, where ENCODING is the one it was "
                "saved in: cp1252 for Windows and Excel 'ANSI' files, latin1 for ISO-8859-1, shift_jis for Japanese, "
                "gbk or big5 for Chinese ('file -i IN' or 'uchardet IN' can tell).")


def decode(path: Path, raw: bytes) -> str:
    """The file's text: decoded as its byte-order mark says, else as UTF-8 (see the module docstring)."""
    name, codec, bom = "UTF-8", "utf-8", b""
    for mark, mark_name, mark_codec in BOMS:
        if raw.startswith(mark):
            name, codec, bom = mark_name, mark_codec, mark
            break
    else:
        _refuse_bare_utf16(path, raw)
    body = raw[len(bom):]
    try:
        return body.decode(codec)
    except UnicodeDecodeError as e:
        line = body[: e.start].decode(codec, "replace").count("\n") + 1
        if codec == "utf-8":
            raise UserError(f"{path}, line {line}: bytes that are not UTF-8 (byte 0x{body[e.start]:02x} at offset "
                            f"{len(bom) + e.start}, in: {_around(body, e.start)}); the file is in another encoding. "
                            f"{ICONV_ADVICE}") from None
        raise UserError(f"{path}, line {line}: not valid {name} ({e.reason} at offset {len(bom) + e.start}), though "
                        f"the file starts with a {name} byte-order mark. Export it again, or keep what decodes: "
                        f"iconv -c -f {name.replace(' ', '')} -t utf-8 IN > OUT.") from None


def _around(body: bytes, at: int) -> str:
    """The bytes around ``at`` on their line, quoted, with undecodable bytes as \\xNN: where to look."""
    start = max(body.rfind(b"\n", 0, at) + 1, at - 30)
    end = body.find(b"\n", at)
    end = min(len(body) if end < 0 else end, at + 30)
    shown = body[start:end].decode("utf-8", "backslashreplace")
    return '"' + shown.replace("\t", "\\t").replace("\r", "\\r") + '"'


def _refuse_bare_utf16(path: Path, raw: bytes) -> None:
    """UTF-16 without a byte-order mark: text in the Latin range puts a NUL in every other byte (the high byte,
    second in LE, first in BE). UTF-8 text has no NULs, so NULs at one parity, in at least a quarter of the
    pairs and four times as many as at the other, mean UTF-16; other NULs are left to the readers."""
    sample = raw[:4096]
    if b"\x00" not in sample:
        return
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    for high, low, order in ((odd, even, "LE"), (even, odd, "BE")):
        if high >= max(2, pairs // 4) and low * 4 <= high:
            raise UserError(f"{path}: looks like UTF-16 {order} without a byte-order mark (a NUL byte in every "
                            f"other position); expected UTF-8. Convert it: iconv -f utf-16{order.lower()} -t utf-8 "
                            "IN > OUT (or save it again as UTF-8; in Excel, as 'CSV UTF-8').")
