"""What enctune reads from a model folder's JSON, checked field by field before anything is built.

A model folder can come from anywhere (a colleague, a download, a disk that failed). What enctune
reads from it is checked against what enctune writes, field by field, so that a damaged or
tampered folder is refused with a message naming the file and the field, instead of a traceback
deep in torch, a head of five million rows allocated before anyone looks at its file, or
predictions quietly changed (a negative temperature inverts every probability).

``ModelMeta`` is ``enctune.json``; a task checks its own ``task_options`` (``Task.Options``).
``OnnxMeta`` is an ONNX export's ``enctune-onnx.json``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import UserError
from .jsonfile import printable, shown, where
from .tasks import TASKS

FORMAT_VERSION = 1
# the poolings a model folder may name (encoders.pooling.POOLINGS implements them; a test keeps the two equal)
POOLING_NAMES = ("cls", "mean", "max", "last", "mask")
MAX_LENGTH = 32_768  # TrainConfig's bound on --max-length; the saved value is at most that
MIN_LENGTH = 2  # room for the tokenizer's special tokens; TrainConfig asks for 8 or more
MAX_LAYER = 1_000  # no encoder has more layers; the encoder's own count is checked when it loads
# more outputs than enctune trains (a head of 1.6 GB at hidden size 384): refused before the labels are hashed
# for the duplicate check, the one step of reading enctune.json that grows faster than parsing it
MAX_LABELS = 1 << 20
# calibrate.LOG_T_BOUNDS keeps a fitted temperature within e^-4 .. e^4 (0.018 .. 55); a little room either side
TEMPERATURE_RANGE = (0.01, 100.0)
SPELLED_OUT = ("base_model",)  # shown (run card, /info), never used: see read_json_object
# an integer label as data.dataset.label_map writes it, within the 4,300 digits Python's int() reads
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]{0,4298})")

Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Temperature = Annotated[float, Field(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1], allow_inf_nan=False)]


def _plain_file_name(name: str) -> str:
    """``name`` when it names a file or folder inside its folder (no separator, not '.' or '..', at most the 255
    bytes a file system allows); else ValueError."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > 255 or name in (".", "..") \
            or any(c in name for c in "/\\\x00"):
        raise ValueError(f"expected a name inside the folder (not a path), not {shown(name)}")
    return name


FileName = Annotated[str, AfterValidator(_plain_file_name)]






class _Strict(BaseModel):
    """Strict (a value of the wrong JSON type is refused, never converted) and closed (no unknown keys)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class ColumnsMeta(_Strict):
    """The columns the model was trained on: what ``evaluate`` looks for, and whether it takes text pairs."""

    text: str | None = None
    pair: str | None = None
    label: str | None = None


class ModelMeta(BaseModel):
    """enctune.json, as ``enctune.train`` writes it (``write_model_folder`` adds format_version and adapter).

    Ranges are those the writer can produce (``TrainConfig``'s bounds, calibrate's temperature interval), so a
    value outside one was not written by enctune. Open: a field this version does not know is kept and not
    read (a newer writer that changes what a field means bumps format_version, which is refused).
    """

    model_config = ConfigDict(strict=True, extra="allow")

    format_version: int = Field(FORMAT_VERSION, ge=1)
    task: str
    labels: list[str] = Field(max_length=MAX_LABELS)
    label_type: Literal["str", "int", "float"] = "str"
    pair_mode: Literal["cross", "bi"] = "cross"
    task_options: dict[str, Any] = Field(default_factory=dict)
    level: Literal["sequence", "token"] | None = None
    pooling: str
    layer: int = Field(-1, ge=-1, le=MAX_LAYER)
    max_length: int = Field(ge=MIN_LENGTH, le=MAX_LENGTH)
    dropout: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    temperature: Temperature | None = None
    template: str | None = None
    adapter: FileName | None = None
    adapter_merged: bool | None = None
    columns: ColumnsMeta = Field(default_factory=ColumnsMeta)
    strategy: str | None = None
    base_model: str | None = None
    enctune_version: str | None = None

    @field_validator("format_version")
    @classmethod
    def _readable(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(f"format {v} was written by a newer enctune (this one reads format {FORMAT_VERSION}); "
                             "upgrade enctune")
        return v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"task {shown(v)} is not known to this version of enctune "
                             f"(it knows {', '.join(TASKS)})")
        return v

    @field_validator("pooling")
    @classmethod
    def _known_pooling(cls, v: str) -> str:
        if v not in POOLING_NAMES:
            raise ValueError(f"expected one of {', '.join(POOLING_NAMES)}, not {shown(v)}")
        return v

    @field_validator("template")
    @classmethod
    def _one_slot(cls, v: str | None) -> str | None:
        if v is not None and v.count("{}") != 1:
            raise ValueError("the cloze template must hold '{}' (where the text goes) exactly once")
        return v

    @model_validator(mode="after")
    def _labels_fit_the_task(self) -> ModelMeta:
        _check_labels(self.labels, self.label_type, TASKS[self.task].min_labels, f"{self.task} model")
        return self


def _check_labels(labels: list[str], label_type: str, least: int, what: str) -> None:
    """ValueError unless there are at least ``least`` labels, none twice (each names one output; a repeat
    merges two outputs' probabilities), and integer labels are integers as label_map writes them."""
    if len(labels) < least:
        raise ValueError(f"'labels': {len(labels)} label(s); a {what} has at least {least}")
    if len(set(labels)) != len(labels):
        seen: set[str] = set()
        twice = next(lab for lab in labels if lab in seen or seen.add(lab))
        raise ValueError(f"'labels': {shown(twice)} appears twice; each label names one output")
    if label_type == "int":
        bad = next((lab for lab in labels if not _CANONICAL_INT.fullmatch(lab)), None)
        if bad is not None:
            raise ValueError(f"'label_type' is 'int' but label {shown(bad)} is not an integer written plainly "
                             "(such as 0, 7 or -3)")


class OnnxMeta(BaseModel):
    """enctune-onnx.json, as ``enctune export`` writes it (serve/export.py). Open, like ``ModelMeta``; the
    model files are plain names inside the folder (a path would point onnxruntime at any file on the disk)."""

    model_config = ConfigDict(strict=True, extra="allow")

    format_version: int = Field(1, ge=1, le=1)
    format: Literal["onnx"] | None = None
    task: str
    labels: list[str] = Field(max_length=MAX_LABELS)
    label_type: Literal["str", "int", "float"] = "str"
    pair_mode: Literal["cross"] = "cross"
    task_options: dict[str, Any] = Field(default_factory=dict)
    columns: ColumnsMeta = Field(default_factory=ColumnsMeta)
    max_length: int = Field(ge=MIN_LENGTH, le=MAX_LENGTH)
    pad_token_id: int = Field(ge=0, le=2**31 - 1)
    padding_side: Literal["left", "right"] = "right"
    model_files: dict[Literal["fp32", "int8"], FileName] = Field(min_length=1)
    default_precision: Literal["fp32", "int8"] = "fp32"
    refine_below: Probability = 0.6
    temperature: Temperature | None = None
    inputs: list[Literal["input_ids", "attention_mask", "token_type_ids"]] | None = None
    base_model: str | None = None
    pooling: str | None = None
    strategy: str | None = None

    @field_validator("task")
    @classmethod
    def _decodable(cls, v: str) -> str:
        served = [name for name, cls in TASKS.items() if cls.level == "sequence"]
        if v not in served:
            raise ValueError(f"task {shown(v)} is not served from ONNX by this version of enctune "
                             f"(it serves {', '.join(served)})")
        return v

    @model_validator(mode="after")
    def _labels_fit_the_task(self) -> OnnxMeta:
        _check_labels(self.labels, self.label_type, TASKS[self.task].min_labels, f"{self.task} model")
        return self


def damaged(f: Path, e: ValidationError, what: str, prefix: tuple = ()) -> UserError:
    """The first validation error as a UserError naming the file, the field and what was expected."""
    err = e.errors(include_url=False)[0]
    place = where(prefix + tuple(err["loc"]))
    if err["type"] == "value_error":
        problem = str(err["ctx"]["error"])
    elif err["type"] == "missing":
        problem = "missing"
    elif err["type"] == "too_long":
        problem = f"{len(err['input']):,} items, where enctune writes at most {err['ctx']['max_length']:,}"
    elif err["type"] == "too_short":
        problem = f"{len(err['input'])} item(s), where enctune writes at least {err['ctx']['min_length']}"
    elif err["type"] in ("dict_type", "model_type"):
        problem = f"expected a JSON object, not {shown(err['input'])}"
    else:  # pydantic's "Input should be a valid integer", "Input should be less than 1"...
        problem = f"{err['msg'].replace('Input should be', 'expected')}, not {shown(err['input'])}"
    return UserError(printable(f"{f}: {f'{place!r}: ' if place else ''}{problem}; the {what} is damaged."))
