"""Typed run configuration: defaults, a YAML/JSON file, then command-line flags, in that order.

Every field is validated where it enters; an unknown key in a config file is an error, not
a silent default. ``None`` for epochs/lr/batch size means "the strategy's default".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: str
    out: str = "runs/latest"
    validation: str | None = None
    test: str | None = None
    model: str = "default"
    task: Literal["auto", "classify", "multilabel", "regress", "tag", "extract"] = "auto"
    strategy: Literal["auto", "zeroshot", "probe", "fewshot", "partial", "lora", "full"] = "auto"
    # a time budget ("10m", "90s", "1h"): the strategy ladder of auto, or the time limit of one strategy
    budget: str | None = None
    # label descriptions ("positive: a happy customer|a great product;negative: ..."), for zeroshot and
    # instruction-initialised heads; a label without one is described by its own name
    labels: str | None = None
    template: str | None = None  # instruction template around each description, e.g. "This review is {}."
    init_head: Literal["auto", "random", "labels"] = "auto"  # auto: from the descriptions when --labels is given
    zeroshot_mode: Literal["auto", "similarity", "cloze"] = "auto"  # cloze needs an encoder with its MLM head
    unfreeze_layers: int | None = Field(default=None, ge=1, le=1000)  # partial: top layers that train [2]
    layer_lr_decay: float | None = Field(default=None, gt=0, le=1)  # partial/full: lr x decay per layer down
    lora_r: int = Field(default=8, ge=1, le=1024)
    lora_alpha: float = Field(default=16.0, gt=0)
    lora_dropout: float = Field(default=0.1, ge=0, lt=1)
    lora_targets: str | None = None  # comma-separated module names [every linear layer of the encoder blocks]
    fewshot_pairs: int | None = Field(default=None, ge=2)  # fewshot: contrastive pairs to draw [auto]
    keep: Literal["auto", "best", "last"] = "auto"  # weights to keep: auto = best unless validation is tiny
    # probe: the head solved full-batch (L-BFGS over a path of L2 strengths) or trained by the loop (sgd);
    # auto = lbfgs unless the head starts from label descriptions or checkpoints are asked for
    head_solver: Literal["auto", "lbfgs", "sgd"] = "auto"
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    epochs: int | None = Field(default=None, ge=1, le=10_000)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)
    lr: float | None = Field(default=None, gt=0, lt=10)
    max_length: int = Field(default=256, ge=8, le=32_768)
    seed: int = Field(default=42, ge=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    pooling: Literal["cls", "mean", "max", "last"] | None = None
    layer: int | Literal["best"] = -1  # "best": probe every layer on validation, keep the best (probe only)
    class_weights: Literal["none", "balanced"] = "none"
    dropout: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    grad_accum: int = Field(default=1, ge=1)
    max_grad_norm: float = Field(default=1.0, ge=0)
    patience: int = Field(default=3, ge=1)
    eval_every: int | None = Field(default=None, ge=1)
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.9)
    freeze_embeddings: bool = True  # full: keep the word-embedding matrix fixed (half the optimizer state)
    trust_remote_code: bool = False
    # task options
    pair_mode: Literal["auto", "cross", "bi"] = "auto"  # text pairs: one input (cross) or encoded apart (bi)
    label_delimiter: str | None = None  # multilabel: splits a string label into labels [default: ","]
    at_least_one: bool | None = None  # multilabel: always predict a label [default: when every train row has one]
    max_answer_length: int | None = Field(default=None, ge=1, le=1024)  # extract: tokens in an answer [30]
    doc_stride: int | None = Field(default=None, ge=8, le=4096)  # extract: overlap of context windows [128]
    allow_pickle: bool = False  # read an encoder folder that carries pickle files (*.bin, *.pt, *.pkl)
    checkpoint_every: int | None = Field(default=None, ge=1)  # optimizer steps; also at each epoch end
    resume: bool = False  # continue from the latest checkpoint in <out>/checkpoints
    max_tokens_per_batch: int | None = Field(default=None, ge=8)  # padded tokens per forward pass
    gradient_checkpointing: bool = False  # full: recompute activations in backward (less memory)
    calibrate: bool = True  # classify: fit a temperature on validation logits (calibrated probabilities)
    cv: int | None = Field(default=None, ge=2, le=50)  # stratified k-fold on train before the final run
    add: str | None = None  # a labelled file appended to train (e.g. the rows `enctune suggest` chose)

    @field_validator("layer")
    @classmethod
    def _layer_range(cls, v):
        if isinstance(v, int) and v < -1:
            raise ValueError("must be -1 (last), 0 (embeddings), a layer number, or 'best'")
        return v

    @model_validator(mode="after")
    def _best_layer_needs_probe(self):
        if self.layer == "best" and self.strategy != "probe":
            raise ValueError("--layer best picks a layer for a frozen encoder: use it with --strategy probe")
        return self

    @model_validator(mode="after")
    def _combinations(self):
        if self.budget is not None:
            budget_seconds(self.budget)  # raises on a malformed budget
        if self.template is not None and self.template.count("{}") != 1:
            raise ValueError(f"--template {self.template!r}: must hold '{{}}' exactly once (where the label's "
                             "description goes)")
        if self.init_head == "labels" and self.strategy == "zeroshot":
            raise ValueError("--init-head labels is what zeroshot does already; drop it")
        if self.unfreeze_layers is not None and self.strategy not in ("partial", "auto"):
            raise ValueError(f"--unfreeze-layers is for --strategy partial, not {self.strategy}")
        if self.layer_lr_decay is not None and self.strategy not in ("partial", "full", "auto"):
            raise ValueError(f"--layer-lr-decay is for --strategy partial or full, not {self.strategy}")
        lora_set = sorted(f for f in self.model_fields_set if f.startswith("lora_"))
        if lora_set and self.strategy not in ("lora", "auto"):
            raise ValueError(f"{', '.join('--' + f.replace('_', '-') for f in lora_set)}: for --strategy lora, "
                             f"not {self.strategy}")
        if self.fewshot_pairs is not None and self.strategy not in ("fewshot", "auto"):
            raise ValueError(f"--fewshot-pairs is for --strategy fewshot, not {self.strategy}")
        return self

    @field_validator("data", "out")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not str(v).strip():
            raise ValueError("must not be empty")
        return v


def budget_seconds(text: str) -> float:
    """'90s', '10m', '1.5h' or a bare number of seconds -> seconds (> 0); ValueError otherwise."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text).lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--budget {text!r}: expected a duration such as 90s, 10m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _explain(e: ValidationError, source: str) -> UserError:
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"]) or "config"
        name = _flag(field) if source == "flags" else f"'{field}'"
        value = err.get("input")
        if not err["loc"]:  # a rule across fields (model validator): its message says it all
            parts.append(str(err["msg"]).removeprefix("Value error, "))
        elif err["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown option")
        else:
            parts.append(f"{name}={value!r}: {err['msg']}")
    where = "invalid option value" if source == "flags" else f"{source}: invalid config"
    return UserError(f"{where}: " + "; ".join(parts) + ".")


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file.")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            obj = json.loads(text)
        else:
            import yaml

            obj = yaml.safe_load(text)
    except Exception as e:
        raise UserError(f"{path}: could not parse the config file ({e}).") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a mapping of option names to values.")
    return {str(k).replace("-", "_"): v for k, v in obj.items()}


def make_config(flags: dict, config_file: str | None = None) -> TrainConfig:
    """Merge defaults <- config file <- flags that were given (not None)."""
    merged: dict = {}
    if config_file:
        file_values = read_config_file(config_file)
        try:
            TrainConfig.model_validate({"data": "x", **file_values})
        except ValidationError as e:
            raise _explain(e, str(config_file)) from None
        merged.update(file_values)
    merged.update({k: v for k, v in flags.items() if v is not None})
    if "data" not in merged:
        raise UserError("missing --data: give a data file or a folder with train/validation/test files.")
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as e:
        raise _explain(e, "flags") from None
