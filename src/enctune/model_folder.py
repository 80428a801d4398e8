"""The model folder: one writer and one reader, shared by every strategy and task.

Layout (safetensors and JSON only; nothing is unpickled on load)::

    model/
      enctune.json        task, labels, pooling, layer, max length, columns, strategy, versions
      head.safetensors    the task head
      encoder/            the encoder: config.json, model.safetensors, tokenizer files
      README.md           the model card
      ...                 what the strategy keeps beside the encoder (LoRA: adapter/)

The strategy writes the encoder (``Strategy.write_encoder``): an encoder that did not change
(probe, or the frozen base under LoRA adapters) is its source's files, linked rather than
serialised again; a LoRA run stores only its adapters beside it, which the reader puts back on
top (``Strategy.read_encoder``).

``write_model_folder`` builds the folder in a staging sibling and swaps it into place
(``atomic.staged_folder``): a crash leaves the old folder or the new one, never half of one.
Every value read back is checked first (``folder_schema``; the head's tensors against its
safetensors header, then for finite values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .atomic import staged_folder
from .errors import UserError
from .folder_schema import FORMAT_VERSION, SPELLED_OUT, ModelMeta, OnnxMeta, damaged
from .jsonfile import printable, read_json_object, shown
from .tasks import TASKS

META_FILE = "enctune.json"
HEAD_FILE = "head.safetensors"
ONNX_MARKER = "enctune-onnx.json"  # an exported ONNX folder (``enctune export``)
HEAD_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})  # what a head may be saved in; loading casts to fp32


def write_model_folder(folder: Path, encoder, head, meta: dict, card: str,
                       write_encoder: Callable[[object, Path], dict]) -> None:
    """Write encoder, head, tokenizer and metadata into ``folder`` (replaced atomically); ``write_encoder(encoder,
    folder / "encoder")`` is the strategy's (it returns what enctune.json should add)."""
    from safetensors.torch import save_file

    from .encoders.encoder import hf_quiet  # lazy: the encoder module imports torch (~2 s)

    with staged_folder(folder) as tmp:
        with hf_quiet():
            added = write_encoder(encoder, tmp / "encoder")
            encoder.tokenizer.save_pretrained(tmp / "encoder")
        state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(tmp / HEAD_FILE), metadata={"format": "enctune-head"})
        meta = {"format_version": FORMAT_VERSION, **{k: v for k, v in meta.items() if k not in added}, **added}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "README.md").write_text(card)


def find_model_folder(path: str | Path) -> Path:
    """The model folder inside a run folder, or the folder itself; UserError if neither."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such folder.")
    for candidate in (p / "model", p):
        if (candidate / META_FILE).is_file():
            return candidate
    raise UserError(f"{p}: not an enctune model folder (no enctune.json here or in {p / 'model'}). "
                    "Pass the --out folder of 'enctune train'.")


def read_meta(folder: Path) -> dict:
    """enctune.json, checked field by field (``ModelMeta``, then the task's options, ``Task.Options``); a folder it
    names (``adapter``) must be there."""
    meta = _read_checked(folder / META_FILE, ModelMeta, "model folder")
    named = meta.get("adapter")
    if named is not None and not (folder / named).is_dir():
        raise UserError(f"{folder / META_FILE}: 'adapter' names {named!r}, which is not in the model folder; the "
                        "model folder is damaged.")
    return meta


def read_onnx_meta(folder: Path, name: str = ONNX_MARKER) -> dict:
    """An ONNX export's ``name`` (enctune-onnx.json), checked field by field (``OnnxMeta``, the task's options)."""
    return _read_checked(folder / name, OnnxMeta, "exported folder")


def _read_checked(f: Path, schema, what: str) -> dict:
    raw = read_json_object(f, what, SPELLED_OUT)
    try:
        meta = schema.model_validate(raw)
    except ValidationError as e:
        raise damaged(f, e, what) from None
    try:
        options = TASKS[meta.task].Options.model_validate(meta.task_options)
        options.check_labels(len(meta.labels))
    except ValidationError as e:
        raise damaged(f, e, what, ("task_options",)) from None
    except ValueError as e:
        raise UserError(printable(f"{f}: {e}; the {what} is damaged.")) from None
    return meta.model_dump(exclude_unset=True)


def _head_header(f: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape), from the safetensors header alone (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(f), "pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            return {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()}
    except Exception as e:  # safetensors raises its own error type for a damaged header
        raise UserError(printable(f"{f}: unreadable or truncated ({e}); the model folder is damaged.")) from None


def _head_mismatch(header: dict[str, tuple[str, tuple[int, ...]]], expected: dict[str, tuple[int, ...]]) -> str | None:
    """What keeps the tensors in ``header`` from filling a head of the ``expected`` shapes, or None."""
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing:
        return f"no tensor {shown(missing[0])}"
    if extra:
        return f"an unexpected tensor {shown(extra[0])}"
    for name, shape in expected.items():
        dtype, found = header[name]
        if found != shape:
            return f"tensor {name!r} has shape {list(found)}, where enctune.json implies {list(shape)}"
        if dtype not in HEAD_DTYPES:
            return f"tensor {name!r} is {dtype}, not a floating-point type"
    return None


def all_finite(tensor) -> bool:
    """Whether every value of a floating-point tensor is finite: its minimum and maximum are (``torch.aminmax``
    propagates NaN). One vectorised pass, ~6 ms over the default encoder's 22.7M weights, where
    ``isfinite(t).all()`` takes 60-180 ms and 1.6 s at worst on a busy CPU."""
    import torch

    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def read_head_state(folder: Path, expected: dict[str, tuple[int, ...]]) -> dict:
    """The head's tensors, once known to fill the head enctune.json describes (``expected``: name -> shape).

    Names, shapes and dtypes come from the safetensors header first, so a head that does not fit is refused
    before its data is read or a head of the size enctune.json claims is built. Then every value must be
    finite: one NaN weight makes every probability NaN.
    """
    from safetensors.torch import load_file

    f = folder / HEAD_FILE
    if not f.is_file():
        raise UserError(f"{f}: missing; the model folder is damaged.")
    problem = _head_mismatch(_head_header(f), expected)
    if problem is not None:
        raise UserError(f"{f}: {problem}; the head does not fit enctune.json, so the model folder is damaged.")
    try:
        state = load_file(str(f))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise UserError(printable(f"{f}: unreadable or truncated ({e}); the model folder is damaged.")) from None
    for name, tensor in state.items():
        if not all_finite(tensor):
            raise UserError(f"{f}: tensor {name!r} holds NaN or infinite values; the model folder is damaged.")
    return state
