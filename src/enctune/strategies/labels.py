"""Label descriptions: the textual instructions behind ``zeroshot`` and instruction-initialised heads.

``--labels "positive: a happy customer|loved it;negative: an angry customer;neutral"`` names
each label with one or more phrasings (``|``); a label without a description is described
by its own name. ``--template "This review is {}."`` wraps every phrasing. A label's vector
e_c is the mean of its phrasings' unit-length embeddings, renormalised (averaging several
phrasings smooths the quirks of any one wording):

    e_c = normalize( sum_j normalize(Enc(template(phrase_cj))) )     (C, H)

A text x is then scored by cosine similarity, s_c = cos(Enc(x), e_c), which is what a
sentence encoder trained with a cosine objective (the default encoder) was trained to rank.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def parse_descriptions(spec: str | None) -> dict[str, list[str]]:
    """``"a: x|y;b: z;c"`` -> {"a": ["x", "y"], "b": ["z"], "c": []} (order kept)."""
    out: dict[str, list[str]] = {}
    if not spec:
        return out
    for part in spec.split(";"):
        if not part.strip():
            continue
        name, _, desc = part.partition(":")
        name = name.strip()
        if not name:
            raise UserError(f"--labels: '{part.strip()}' has no label name before ':'.")
        if name in out:
            raise UserError(f"--labels: label '{name}' is described twice.")
        out[name] = [d.strip() for d in desc.split("|") if d.strip()]
    return out


def label_phrases(task, spec: str | None) -> list[list[str]]:
    """One list of phrasings per task label, in the task's label order."""
    given = parse_descriptions(spec)
    unknown = [n for n in given if n not in task.labels]
    if unknown:
        raise UserError(f"--labels names {', '.join(repr(n) for n in unknown)}, not among the data's labels "
                        f"({', '.join(task.labels)}).")
    return [given.get(lab) or [lab.replace("_", " ")] for lab in task.labels]


def has_descriptions(task, spec: str | None) -> bool:
    """Whether the labels say something in words: given descriptions, or label names that are words."""
    if parse_descriptions(spec):
        return True
    return all(any(ch.isalpha() for ch in str(lab)) for lab in task.labels)


def label_embeddings(encoder, task, spec: str | None, template: str | None,
                     precision: str = "fp32") -> np.ndarray:
    """(C, H) unit vectors, one per label (see the module docstring)."""
    phrases = label_phrases(task, spec)
    tpl = template or "{}"
    flat = [tpl.replace("{}", p) for ps in phrases for p in ps]
    tokens = encoder.tokenize(flat)
    was = encoder.training
    vecs = encoder.encode(tokens, precision=precision)[(encoder.layer, encoder.pooling)]
    encoder.train(was)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    out, i = [], 0
    for ps in phrases:
        v = vecs[i:i + len(ps)].sum(0)
        out.append(v / max(float(np.linalg.norm(v)), 1e-12))
        i += len(ps)
    return np.stack(out).astype(np.float32)


def init_head_from_labels(head, embeddings: np.ndarray) -> None:
    """Set a cosine head's class vectors to the label embeddings (bias 0)."""
    import torch

    from ..tasks.heads import CosineLinear  # lazy: torch (~2 s)

    layer = next(m for m in head.modules() if isinstance(m, CosineLinear))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(embeddings))
        layer.bias.zero_()
