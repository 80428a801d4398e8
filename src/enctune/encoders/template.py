"""Texts wrapped in a template before tokenisation (zeroshot's cloze prompt ``"{} It was [MASK]."``), cut so
that the template survives, and token counts without truncation (how many texts were cut)."""

from __future__ import annotations

import logging


def uncut_ids(tokenizer, *args) -> list[list[int]]:
    """Token ids with no truncation, without the tokenizer's warning about inputs over its maximum."""
    quiet = logging.getLogger("transformers.tokenization_utils_base")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return tokenizer(*args, add_special_tokens=True, truncation=False)["input_ids"]
    finally:
        quiet.setLevel(level)


def apply_template(tokenizer, template: str, texts: list[str], pairs: list[str] | None,
                   max_length: int) -> tuple[list[str], int]:
    """Every text wrapped in the template, and how many were cut to fit ``max_length``.

    The tokenizer's own truncation would cut the end of the wrapped text, and with it a cloze
    template's mask: an over-long text is cut instead, at a token boundary (offsets), by as many
    tokens as the wrapped input is too long. A mask token typed in a text is dropped, so the
    template's mask is the only one.
    """
    tok, tpl = tokenizer, template
    mask = tok.mask_token
    if mask:
        texts = [t.replace(mask, " ") for t in texts]
    wrapped = [tpl.replace("{}", t) for t in texts]
    cut_rows: set[int] = set()
    for _ in range(3):  # a cut string can tokenize differently at its new end: check again
        args = (wrapped, pairs) if pairs is not None else (wrapped,)
        lengths = [len(x) for x in uncut_ids(tok, *args)]
        over = [i for i, n in enumerate(lengths) if n > max_length]
        if not over:
            break
        for i in over:
            excess = lengths[i] - max_length
            try:
                ends = [e for _, e in tok(texts[i], add_special_tokens=False,
                                          return_offsets_mapping=True)["offset_mapping"]]
                keep = max(len(ends) - excess, 0)
                texts[i] = texts[i][:ends[keep - 1]] if keep else ""
            except NotImplementedError:  # a slow tokenizer has no offsets: cut words (a token or more each)
                words = texts[i].split()
                texts[i] = " ".join(words[:max(len(words) - excess, 0)])
            wrapped[i] = tpl.replace("{}", texts[i])
            cut_rows.add(i)
    return wrapped, len(cut_rows)
