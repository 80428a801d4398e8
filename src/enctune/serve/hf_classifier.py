"""Hugging Face sequence-classification folders (``...ForSequenceClassification`` with ``id2label``): trained
elsewhere, predicting through enctune's fast path.

Checked as a model folder is: no code of its own, labels for every class index (``hf_labels``), every
weight present and finite. The task is the registered one whose ``hf_problem_types`` holds the
folder's ``problem_type``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from torch import nn

from ..encoders.encoder import Encoder, hf_quiet, usable_max_length
from ..encoders.resolve import check_weights, refuse_custom_code
from ..errors import UserError
from ..jsonfile import printable, read_json_object
from ..speed.first_token import FirstTokenLayer, first_token_only, wrap_last_layer
from ..tasks import TASKS
from .predictor import PREDICT_NO_CODE, Predictor, check_finite


class HFSequenceClassifier(nn.Module):
    """A transformers ``...ForSequenceClassification`` model seen as ``batch -> logits``. A BERT-style
    one computes its last layer for the first token only (``first_token``): the only state it reads."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        wrap_last_layer(model)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kw = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        layers = getattr(getattr(self.model.base_model, "encoder", None), "layer", None)
        last = layers[-1] if isinstance(layers, nn.ModuleList) and len(layers) else None
        with first_token_only(last if isinstance(last, FirstTokenLayer) else None):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kw).logits


def is_hf_classifier(folder: Path) -> bool:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return False
    try:
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, RecursionError, AttributeError):  # AttributeError: not a JSON object
        return False
    return isinstance(archs, list) and any(str(a).endswith("ForSequenceClassification") for a in archs)


_CLASS_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def hf_labels(folder: Path) -> None:
    """Refuse a classifier folder whose config.json ``id2label`` is not a label for each class index 0..n-1.

    transformers turns the keys into integers (a key that is not one is a ValueError there) and counts the
    classes by them, and the predictor reads ``id2label[0..n-1]``: a gap is a KeyError, a repeated name merges
    two classes' probabilities, and a ``num_labels`` that disagrees makes transformers invent LABEL_i names.
    No ``id2label`` is fine (transformers names the classes LABEL_0, LABEL_1, ...).
    """
    f = folder / "config.json"
    cfg = read_json_object(f, "classifier folder")
    id2label = cfg.get("id2label")
    if id2label is None:
        return
    if not isinstance(id2label, dict) or not id2label:
        raise UserError(f"{f}: 'id2label' must map the class indices 0, 1, ... to label names; the classifier "
                        "folder is damaged.")
    bad = next((k for k in id2label if not _CLASS_INDEX.fullmatch(k)), None)
    if bad is not None:
        raise UserError(printable(f"{f}: 'id2label' key {bad[:40]!r} is not a class index (0, 1, 2, ...); the "
                                  "classifier folder is damaged."))
    indices = {int(k) for k in id2label}
    gap = next((i for i in range(len(indices)) if i not in indices), None)
    if gap is not None:
        raise UserError(f"{f}: 'id2label' has no label for class {gap} (its {len(indices)} classes need the indices "
                        f"0 to {len(indices) - 1}); the classifier folder is damaged.")
    names = [str(v) for v in id2label.values()]
    if len(set(names)) != len(names):
        raise UserError(printable(f"{f}: 'id2label' gives two classes the same name; each class needs its own "
                                  "label. The classifier folder is damaged."))
    n = cfg.get("num_labels")
    if n is not None and n != len(indices):
        raise UserError(f"{f}: 'num_labels' is {str(n)[:20]} but 'id2label' names {len(indices)} classes; the "
                        "classifier folder is damaged.")


def load_hf_classifier(folder: Path, precision: str):
    """A transformers ``...ForSequenceClassification`` folder, checked as a model folder is: no code of its
    own, labels for every class index (``hf_labels``), every weight present and finite."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_weights(str(folder))
    refuse_custom_code(str(folder), PREDICT_NO_CODE)
    hf_labels(folder)
    try:
        with hf_quiet():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                folder, use_safetensors=True, trust_remote_code=False, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except Exception as e:  # damaged files raise anything from OSError to the tokenizers library's own errors
        raise UserError(f"{folder}: could not load the classifier ({type(e).__name__}: {e}).") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise UserError(f"{folder}: the weights lack {len(missing)} of the classifier's tensors ({missing[0]}"
                        f"{', ...' if len(missing) > 1 else ''}), which would predict from random values; the "
                        "folder is damaged or is not a trained classifier.")
    check_finite(model, folder)
    cfg = model.config
    task_cls = next((t for t in TASKS.values() if cfg.problem_type in t.hf_problem_types), None)
    if task_cls is None:
        raise UserError(f"{folder}: problem type '{cfg.problem_type}' is not supported here; expected one of "
                        f"{', '.join(str(p) for t in TASKS.values() for p in t.hf_problem_types if p)}.")
    labels = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
    encoder = Encoder(model.base_model, tokenizer, "cls", str(folder), usable_max_length(cfg, tokenizer, 512))
    meta = {"task": task_cls.name, "labels": labels, "pooling": "model", "max_length": encoder.max_length,
            "strategy": "external", "base_model": str(folder), "columns": {}}
    return Predictor(HFSequenceClassifier(model), encoder, task_cls(labels), meta, precision, source=str(folder))
