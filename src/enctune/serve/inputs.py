"""Checking prediction inputs, shared by the PyTorch and the onnxruntime predictors (no torch import).

Every text is checked here, at the edge, because a bad one fails deep inside the tokenizer
(``TypeError: TextEncodeInput must be ...``) and, in a batch, takes the good texts beside it
down too. A text must be a ``str`` that encodes to UTF-8: a lone surrogate (U+D800 to
U+DFFF outside a pair) is not a character. It reaches Python from a JSON escape
(``"\\ud800"``), from an argument or a file that is not UTF-8 (Python decodes those with
``surrogateescape``: the byte 0xFF becomes U+DCFF), or from bytes decoded with
``surrogatepass``. NUL and the other control characters are valid Unicode and are
allowed: the tokenizers accept them (the BERT normalizer drops them), and refusing them
would refuse texts scraped with a stray control character that predict fine.

``estimate_tokens`` prices a text in tokens without a tokenizer, for the server's limits.
"""

from __future__ import annotations

import math

from ..errors import UserError
from ..tasks import TASKS

# UTF-8 bytes per token of the estimate. Measured with the default encoder's WordPiece
# tokenizer: English (SST-2 test) has 4.47 characters per token, CJK 1 character (3 bytes)
# per token, ASCII digits and spaces 2 characters, runs of ASCII punctuation 1. Bytes/3 is
# exact for CJK, counts English 1.5x high (a limit errs on the safe side) and ASCII
# punctuation at most 3x low; the cap at max_length bounds every text whatever it holds.
BYTES_PER_TOKEN = 3
SPECIAL_TOKENS = {False: 2, True: 3}  # [CLS] a [SEP] / [CLS] a [SEP] b [SEP]


def check_text(text, where: str) -> bytes:
    """``text`` as UTF-8 bytes; a ``UserError`` naming ``where`` (``texts[3]``) when it is not a str of valid
    Unicode."""
    if not isinstance(text, str):
        raise UserError(f"{where} is {type(text).__name__}, not a string: give every text as a string.")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(f"{where} is not valid Unicode text: {_surrogate(text, e.start)}") from None


def _surrogate(text: str, i: int) -> str:
    code = ord(text[i])
    said = f"it holds an unpaired surrogate (U+{code:04X}) at character {i}"
    if 0xDC80 <= code <= 0xDCFF:  # what surrogateescape makes of a byte that is not UTF-8
        return (f"{said}, which stands for the byte 0x{code - 0xDC00:02X} that is not UTF-8 (a command-line "
                "argument or a file in another encoding?): convert the text to UTF-8.")
    return (f"{said}, half of a UTF-16 pair and not a character: send the whole pair or the character itself "
            "(JSON: \"\\ud83d\\ude00\" for U+1F600), or remove it.")


def check_texts(values, name: str) -> list[str]:
    """``values`` (a str or an iterable of them) as a list, each checked by ``check_text``."""
    if isinstance(values, str):
        values = [values]
    if values is None or isinstance(values, bytes | dict) or not hasattr(values, "__iter__"):
        raise UserError(f"{name}: expected a string or a list of strings, got {type(values).__name__}.")
    values = list(values)
    for i, t in enumerate(values):
        check_text(t, f"{name}[{i}]")
    return values


def check_inputs(texts, pairs, meta: dict) -> tuple[list[str], list[str] | None]:
    """Texts (and second texts) as lists of valid text; a pair model needs one pair per text."""
    texts = check_texts(texts, "texts")
    pairs = check_texts(pairs, "text_pairs") if pairs is not None else None
    if meta.get("columns", {}).get("pair") and pairs is None and not TASKS[meta["task"]].pairs_optional:
        raise UserError("this model was trained on text pairs: give text_pairs as well.")
    if pairs is not None and len(pairs) != len(texts):
        raise UserError(f"{len(texts)} texts but {len(pairs)} text pairs; expected one pair per text.")
    return texts, pairs


def estimate_tokens(n_bytes: int, pair_bytes: int | None, max_length: int, windows: int | None = None) -> int:
    """Tokens of one input whose text has ``n_bytes`` UTF-8 bytes (and its second text ``pair_bytes``).

    A truncating model reads at most ``max_length`` tokens of an input, so that caps the
    estimate. An extractive model (``windows``: its stride) reads a long context in windows
    of ``max_length`` tokens that overlap by the stride instead of truncating it.
    """
    n = math.ceil(n_bytes / BYTES_PER_TOKEN) + SPECIAL_TOKENS[pair_bytes is not None]
    if pair_bytes is not None:
        n += math.ceil(pair_bytes / BYTES_PER_TOKEN)
    if windows is None or n <= max_length:
        return min(n, max_length)
    step = max(1, max_length - windows)
    return (1 + math.ceil((n - max_length) / step)) * max_length
