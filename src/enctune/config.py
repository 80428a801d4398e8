"""Typed run configuration: defaults, a YAML/JSON file, then command-line flags, in that order.

``TrainConfig`` is the core settings (``CoreConfig``) plus every registered strategy's options
(``Strategy.Options``), assembled once from the registry: a new strategy's options become
fields, flags and help without an edit here. Every field is validated where it enters; an
unknown key in a config file is an error, not a silent default; an option of one strategy given
with another is refused. ``None`` for epochs/lr/batch size means "the strategy's default".

Each field's ``description`` is its help text on the command line, and ``json_schema_extra``
may name its flag spelling (``{"flag": "--calibrate/--no-calibrate"}``) and say how its default
reads (``{"default_text": "..."}``).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .errors import UserError
from .strategies import STRATEGIES
from .tasks import TASKS


def _opt(default: Any, help: str, flag: str | None = None, default_text: str | None = None, **constraints):
    """A config field with its help text (and, when not the plain ``--name``, its flag spelling)."""
    extra = {k: v for k, v in (("flag", flag), ("default_text", default_text)) if v is not None}
    return Field(default, description=help, json_schema_extra=extra or None, **constraints)


class CoreConfig(BaseModel):
    """The settings every run has; ``TrainConfig`` adds the strategies' own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: str = Field(description="A data file (train) or a folder with train/validation/test files.",
                      json_schema_extra={"required": True})
    out: str = _opt("runs/latest", "Run folder to write.")
    overwrite: bool = _opt(False, "Replace a finished run already at --out (without it, that is an error).")
    validation: str | None = _opt(None, "Validation file.", default_text="10% carved from train")
    test: str | None = _opt(None, "Test file, evaluated at the end of the run.", default_text="none")
    model: str = _opt("default", "Encoder: 'default' (all-MiniLM-L6-v2), a local folder, a run folder or a hub id.")
    task: str = _opt("auto", f"auto or one of {', '.join(TASKS)}; auto: from the data's shape.")
    strategy: str = _opt("auto", f"auto or one of {', '.join(STRATEGIES)}; auto: the advisor's choice, or with "
                                 "--budget a ladder of strategies.")
    budget: str | None = _opt(None, "A time budget (90s, 10m, 1h): auto tries strategies cheapest first within it "
                                    "and keeps the best on validation; one strategy stops at it.",
                              default_text="20m for the advisor, no limit for one strategy")
    labels: str | None = _opt(None, "Label descriptions: 'pos: a happy customer|loved it;neg: an angry customer' "
                                    "(zeroshot, and the head's start).", default_text="the label names")
    template: str | None = _opt(None, "Instruction around each label description, e.g. 'This review is {}.'; in "
                                      "cloze mode around each text, with the mask: '{} It was [MASK].'",
                                default_text="{}")
    init_head: Literal["auto", "random", "labels"] = _opt("auto", "random, labels (from the descriptions) or auto "
                                                                  "(labels when --labels is given).")
    keep: Literal["auto", "best", "last"] = _opt("auto", "Weights to keep: best, last or auto (best unless "
                                                         "validation is a tiny split carved from train).")
    text_column: str | None = _opt(None, "Column holding the text.", default_text="found by name")
    text_pair_column: str | None = _opt(None, "Column holding the second text of a pair.",
                                        default_text="found by name")
    label_column: str | None = _opt(None, "Column holding the label.", default_text="found by name")
    epochs: int | None = _opt(None, "Passes over the training data.", default_text="the strategy's", ge=1,
                              le=10_000)
    batch_size: int | None = _opt(None, "Examples per optimizer step (the global batch).",
                                  default_text="the strategy's", ge=1, le=65_536)
    lr: float | None = _opt(None, "Peak learning rate.", default_text="the strategy's", gt=0, lt=10)
    max_length: int = _opt(256, "Tokens per text; longer texts are cut (and counted).", ge=8, le=32_768)
    seed: int = _opt(42, "Random seed: the validation split, shuffling, initialisation.", ge=0)
    precision: Literal["auto", "fp32", "bf16"] = _opt("auto", "auto (bf16 where the hardware computes it "
                                                              "natively, or ENCTUNE_PRECISION), fp32 or bf16.")
    pooling: Literal["cls", "mean", "max", "last"] | None = _opt(None, "cls, mean, max or last.",
                                                                  default_text="the encoder's")
    layer: int | Literal["best"] = _opt(-1, "Encoder layer to pool (0 = embeddings, -1 = last; 'best' for a frozen "
                                            "encoder: the layer a linear probe scores best on).")
    class_weights: Literal["none", "balanced"] = _opt("none", "none, or balanced (every class counts alike in "
                                                              "the loss).")
    dropout: float = _opt(0.1, "Dropout before the head.", ge=0, lt=1)
    weight_decay: float = _opt(0.01, "AdamW weight decay (matrices only).", ge=0)
    warmup_ratio: float = _opt(0.1, "Share of the steps over which the learning rate rises.", ge=0, lt=1)
    grad_accum: int = _opt(1, "Batches per optimizer step.", ge=1)
    max_grad_norm: float = _opt(1.0, "Gradient clipping norm (0: none).", ge=0)
    patience: int = _opt(3, "Evaluations without improvement before stopping.", ge=1)
    eval_every: int | None = _opt(None, "Evaluate every N optimizer steps.", default_text="twice an epoch", ge=1)
    validation_fraction: float = _opt(0.1, "Share of train carved out for validation when none is given.",
                                      gt=0, lt=0.9)
    freeze_embeddings: bool = _opt(True, "Keep the word-embedding matrix fixed (half the optimizer state).",
                                   flag="--freeze-embeddings/--train-embeddings")
    trust_remote_code: bool = _opt(False, "Run the encoder folder's own code while training (prediction never "
                                          "does).")
    pair_mode: Literal["auto", "cross", "bi"] = _opt("auto", "Text pairs: cross (one input), bi (encoded apart) or "
                                                             "auto (bi for values, else cross).")
    label_delimiter: str | None = _opt(None, "multilabel: separator in string labels.", default_text=",")
    at_least_one: bool | None = _opt(None, "multilabel: always predict a label.", flag="--at-least-one/"
                                     "--allow-no-label", default_text="when every train row has one")
    matryoshka_dims: str | None = _opt(None, "retrieve: also train the embedding cut to these widths, so that a "
                                             "prefix of it can stand for it (none: the full width alone).",
                                       default_text="256,128,64 where narrower than the encoder")
    negatives: int | None = _opt(None, "rerank: hard negatives mined per query by the encoder when the data gives "
                                       "positives alone (0: none); retrieve: 1 mines one a query when the data "
                                       "gives none, 0 ignores the data's.", default_text="rerank 4, retrieve 0",
                                 ge=0, le=100)
    max_answer_length: int | None = _opt(None, "extract: most tokens in an answer.", default_text="30", ge=1,
                                         le=1024)
    doc_stride: int | None = _opt(None, "extract: token overlap of context windows.", default_text="128", ge=8,
                                  le=4096)
    allow_pickle: bool = _opt(False, "Read an encoder folder that carries pickle files (*.bin, *.pt, *.pkl), which "
                                     "can run code when loaded.")
    checkpoint_every: int | None = _opt(None, "Checkpoint every N optimizer steps (and at each epoch end).",
                                        default_text="no checkpoints", ge=1)
    resume: bool = _opt(False, "Continue from the latest checkpoint in OUT/checkpoints.")
    max_tokens_per_batch: int | None = _opt(None, "Cap padded tokens per forward pass (bigger batches run in "
                                                  "parts).", default_text="no cap", ge=8)
    gradient_checkpointing: bool = _opt(False, "Recompute activations in the backward pass (less memory).")
    calibrate: bool = _opt(True, "Fit a temperature on validation for calibrated probabilities.",
                           flag="--calibrate/--no-calibrate")
    report_to: str | None = _opt(None, "Log training to experiment trackers: tensorboard, mlflow or both "
                                       "(comma-separated).", default_text="none")
    repeats: int = _opt(1, "Train this many times with seeds seed, seed + 1, ...: every score's mean and spread, "
                           "and the run with the best validation score kept.", ge=1, le=100)
    cv: int | None = _opt(None, "Stratified k-fold cross-validation on train before the final run.",
                          default_text="none", ge=2, le=50)
    add: str | None = _opt(None, "Labelled file appended to train (e.g. the rows 'enctune suggest' chose).",
                           default_text="none")
    unlabelled: str | None = _opt(None, "Unlabelled texts for self-training: the run's model labels them, its "
                                        "surest pseudo-labels join train for a student, kept unless "
                                        "validation says it is worse (a validation split carved from a few dozen "
                                        "rows says nothing).", default_text="none")
    self_training_rounds: int = _opt(1, "With --unlabelled: rounds of self-training at most (each kept "
                                        "student teaches the next).", ge=1, le=10)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v != "auto" and v not in STRATEGIES:
            raise ValueError(f"expected auto or one of {', '.join(STRATEGIES)}")
        return v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v != "auto" and v not in TASKS:
            raise ValueError(f"expected auto or one of {', '.join(TASKS)}")
        return v

    @field_validator("layer")
    @classmethod
    def _layer_range(cls, v):
        if isinstance(v, int) and v < -1:
            raise ValueError("must be -1 (last), 0 (embeddings), a layer number, or 'best'")
        return v

    @field_validator("data", "out")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not str(v).strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _combinations(self):
        if self.budget is not None:
            budget_seconds(self.budget)  # raises on a malformed budget
        if self.template is not None and self.template.count("{}") != 1:
            raise ValueError(f"--template {self.template!r}: must hold '{{}}' exactly once (where the label's "
                             "description goes)")
        picks = [n for n, s in STRATEGIES.items() if s.frozen_features and s.trains]  # a head on one layer's features
        if self.layer == "best" and self.strategy not in picks:
            frozen = ", ".join(picks)
            raise ValueError(f"--layer best picks a layer for a frozen encoder: use it with --strategy {frozen}")
        if self.init_head == "labels" and self.strategy in STRATEGIES and not STRATEGIES[self.strategy].trains:
            raise ValueError(f"--init-head labels is what {self.strategy} does already; drop it")
        self._options_of_other_strategies()
        return self

    def _options_of_other_strategies(self) -> None:
        """An option that belongs to strategies other than the chosen one is a mistake (``auto`` takes them all)."""
        if self.strategy == "auto":
            return
        foreign: dict[str, list[str]] = {}
        for name in sorted(self.model_fields_set):
            owners = OPTION_OWNERS.get(name)
            if owners and self.strategy not in owners:
                foreign.setdefault(" or ".join(owners), []).append(_flag(name))
        for owners, flags in foreign.items():
            raise ValueError(f"{', '.join(flags)}: for --strategy {owners}, not {self.strategy}")


def _strategy_fields() -> tuple[dict[str, tuple], dict[str, list[str]]]:
    """Every registered strategy's options as fields (a name shared by several must be the same field), and
    which strategies own each."""
    fields: dict[str, tuple] = {}
    owners: dict[str, list[str]] = {}
    for name, cls in STRATEGIES.items():
        for field, info in cls.Options.model_fields.items():
            if field in CoreConfig.model_fields:
                raise TypeError(f"strategy {name}: option {field!r} is a core setting already")
            if field in fields and repr(fields[field][1]) != repr(info):
                raise TypeError(f"strategy {name}: option {field!r} differs from {owners[field]}'s")
            fields[field] = (info.annotation, info)
            owners.setdefault(field, []).append(name)
    return fields, {k: sorted(v) for k, v in owners.items()}


_FIELDS, OPTION_OWNERS = _strategy_fields()
TrainConfig = create_model("TrainConfig", __base__=CoreConfig, __doc__="A run's settings: core and strategies'.",
                           **_FIELDS)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def budget_seconds(text: str) -> float:
    """'90s', '10m', '1.5h' or a bare number of seconds -> seconds (> 0); ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text).lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--budget {text!r}: expected a duration such as 90s, 10m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# how a setting is named where it came from: a flag, a Python keyword argument, a config file's key
NAMING = {"flags": _flag, "python": lambda f: f"{f}=", "file": lambda f: f"'{f}'"}


def explain(e: ValidationError, source: str) -> UserError:
    """A pydantic error as a UserError naming the setting as the user wrote it (``source``: "flags", "python", or
    a config file's path) and what was expected; an unknown name gets the closest known one."""
    name_of = NAMING.get(source, NAMING["file"])
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"]) or "config"
        name = name_of(field)
        value = err.get("input")
        if not err["loc"]:  # a rule across fields (model validator): its message says it all
            parts.append(str(err["msg"]).removeprefix("Value error, "))
        elif err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, list(TrainConfig.model_fields), n=1, cutoff=0.75)
            parts.append(f"{name}: unknown {'keyword argument' if source == 'python' else 'option'}"
                         + (f" (did you mean {name_of(close[0])}?)" if close else ""))
        else:
            parts.append(f"{name}{'' if source == 'python' else '='}{value!r}: "
                         f"{str(err['msg']).removeprefix('Value error, ')}")
    where = {"flags": "invalid option value", "python": "invalid argument"}.get(source, f"{source}: invalid config")
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


def make_config(flags: dict, config_file: str | None = None, source: str = "flags") -> TrainConfig:
    """Merge defaults <- config file <- flags that were given (not None); ``source`` names them in errors
    ("flags" for the command line, "python" for keyword arguments)."""
    merged: dict = {}
    if config_file:
        file_values = read_config_file(config_file)
        try:
            TrainConfig.model_validate({"data": "x", **file_values})
        except ValidationError as e:
            raise explain(e, str(config_file)) from None
        merged.update(file_values)
    merged.update({k: v for k, v in flags.items() if v is not None})
    if "data" not in merged:
        raise UserError(f"missing {NAMING[source]('data')}: give a data file or a folder with train/validation/test "
                        "files.")
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as e:
        raise explain(e, source) from None
