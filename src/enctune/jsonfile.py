"""A JSON object read from a file someone else may have written: size-capped, UTF-8, an object, valid Unicode.

Used for what enctune reads from model folders (its own ``enctune.json``, transformers' ``config.json``): a
damaged or tampered file is a ``UserError`` that names the file, never a traceback or a lone surrogate that
fails later, far from the file it came from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import UserError

MAX_META_BYTES = 64 << 20  # enctune writes a few kilobytes; a file this large is not one it wrote
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def where(loc: tuple) -> str:
    """A pydantic error location as it reads in the file: ``labels[3]``, ``task_options.cloze.eps``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


def shown(value) -> str:
    """A short, printable picture of a value from a file (a 5-million-item list is not printed)."""
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'JSON object'} of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def printable(message: str) -> str:
    """``message`` with any lone surrogate spelled as an escape: printing one fails (and so would the error)."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _lone_surrogate(value) -> str | None:
    """Where in parsed JSON a string holds a lone surrogate, or None. ``"\\ud800"`` is valid JSON but not
    valid Unicode: printing it, or sending it over HTTP, fails far from the file it came from."""
    stack: list[tuple[tuple, object]] = [((), value)]
    while stack:
        loc, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return where(loc) or "(the whole file)"
        elif isinstance(v, dict):
            stack.extend((loc + (k,), k) for k in v)
            stack.extend((loc + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((loc + (i,), x) for i, x in enumerate(v))
    return None


def read_json_object(f: Path, what: str, spelled_out: tuple[str, ...] = ()) -> dict:
    """A JSON object from a model folder's file, or a UserError saying the ``what`` is damaged: unreadable,
    not UTF-8, not JSON, nested past the parser's depth, over ``MAX_META_BYTES``, not an object, or holding
    a string that is not valid Unicode.

    ``spelled_out``: top-level fields that may hold a lone surrogate legitimately and are only shown, never
    used; theirs is written as its escape instead. ``base_model`` is the path given to ``--model``, which
    Python decodes with surrogate escapes when it is not UTF-8 (a Latin-1 file name).
    """
    try:
        size = f.stat().st_size
        if size > MAX_META_BYTES:
            raise UserError(f"{f}: {size:,} bytes, where enctune writes a few kilobytes; the {what} is damaged.")
        text = f.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(printable(f"{f}: unreadable ({e}); the {what} is damaged.")) from None
    if not isinstance(data, dict):
        raise UserError(f"{f}: expected a JSON object, found {shown(data)}; the {what} is damaged.")
    if _SURROGATE_ESCAPE.search(text):  # a lone surrogate can only come from a \u escape
        data.update({k: printable(data[k]) for k in spelled_out if isinstance(data.get(k), str)})
        where = _lone_surrogate(data)
        if where is not None:
            raise UserError(printable(f"{f}: {where!r} holds a lone surrogate (an escape from \\ud800 to "
                                       f"\\udfff alone), which is not valid Unicode; the {what} is damaged."))
    return data
