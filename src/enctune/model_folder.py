"""The model folder: one writer and one reader, shared by every strategy and task.

Layout (safetensors and JSON only; nothing is unpickled on load)::

    model/
      enctune.json        task, labels, pooling, layer, max length, columns, strategy, versions
      head.safetensors    the task head
      encoder/            the encoder: config.json, model.safetensors, tokenizer files
      adapter/            lora only: adapter_config.json, adapter_model.safetensors (the B A deltas)
      README.md           a short model card

An encoder that did not change (probe, or the frozen base under LoRA adapters) is written as
its source's files, linked rather than serialised again; a LoRA run stores only its adapters
beside it (``"adapter": "adapter"`` in enctune.json), which the reader puts back on top.

``write_model_folder`` writes into a temporary sibling folder and renames it into place,
so a crash leaves the old folder or none, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import UserError

FORMAT_VERSION = 1
ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_PREFIX = "lora_"  # PEFT's name for every LoRA parameter (lora_A, lora_B, lora_embedding_A, ...)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same bytes, no copy: safetensors files are never modified in place
    except OSError:
        shutil.copy2(src, dst)


def _reuse_encoder_files(source: str, dst: Path) -> bool:
    """For an encoder that did not train: its config and safetensors weights from the source folder,
    linked (or copied) rather than serialised again. False when the source has no safetensors."""
    src = Path(source)
    weights = sorted(src.glob("*.safetensors")) if src.is_dir() else []
    if not weights or not (src / "config.json").is_file():
        return False
    dst.mkdir(parents=True, exist_ok=True)
    for f in [src / "config.json", *weights, *src.glob("*.safetensors.index.json")]:
        _link_or_copy(f, dst / f.name)
    return True


def is_adapted(model) -> bool:
    """Whether ``model`` is a PEFT ``PeftModel`` (a base network with adapters); peft is not imported here:
    when nothing has imported it, no model can be one."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def _save_base(model, dst: Path) -> None:
    """The base network under a PeftModel, saved without its adapters: PEFT wraps each adapted layer, so
    its weights appear as ``<layer>.base_layer.weight`` beside ``<layer>.lora_A...``; keep the former under
    the layer's own name and drop the latter."""
    base = model.get_base_model()
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ADAPTER_PREFIX not in k}
    base.save_pretrained(dst, state_dict=state, safe_serialization=True)


def _save_adapter(model, dst: Path) -> None:
    """The adapters alone: adapter_config.json and adapter_model.safetensors (PEFT's model card is dropped)."""
    model.save_pretrained(dst, safe_serialization=True)
    for f in dst.iterdir():
        if f.is_dir():
            shutil.rmtree(f)
        elif f.name not in ADAPTER_FILES:
            f.unlink()


def write_model_folder(folder: Path, encoder, head, meta: dict, card: str, encoder_trained: bool = True) -> None:
    """Write encoder, head, tokenizer and metadata into ``folder`` (replaced atomically).

    An encoder that did not train (a probe) keeps its source files, linked rather than rewritten; so does
    the frozen base of an encoder with adapters, whose adapters go to ``adapter/``."""
    from safetensors.torch import save_file

    from .encoders.encoder import hf_quiet

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    # a lazily loaded encoder that was never built has no adapters (and needs no building to be saved)
    adapted = getattr(encoder, "loaded", True) and is_adapted(encoder.model)
    try:
        with hf_quiet():
            if adapted:
                if not _reuse_encoder_files(encoder.source, tmp / "encoder"):
                    _save_base(encoder.model, tmp / "encoder")
                _save_adapter(encoder.model, tmp / ADAPTER_DIR)
            elif encoder_trained or not _reuse_encoder_files(encoder.source, tmp / "encoder"):
                encoder.model.save_pretrained(tmp / "encoder", safe_serialization=True)
            encoder.tokenizer.save_pretrained(tmp / "encoder")
        state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(tmp / "head.safetensors"), metadata={"format": "enctune-head"})
        meta = {"format_version": FORMAT_VERSION, **{k: v for k, v in meta.items() if k != "adapter"},
                **({"adapter": ADAPTER_DIR} if adapted else {})}
        (tmp / "enctune.json").write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
        _replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def find_model_folder(path: str | Path) -> Path:
    """The model folder inside a run folder, or the folder itself; UserError if neither."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such folder.")
    for candidate in (p / "model", p):
        if (candidate / "enctune.json").is_file():
            return candidate
    raise UserError(f"{p}: not an enctune model folder (no enctune.json here or in {p / 'model'}). "
                    "Pass the --out folder of 'enctune train'.")


def read_meta(folder: Path) -> dict:
    f = folder / "enctune.json"
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{f}: unreadable ({e}).") from None
    for key in ("task", "labels", "pooling", "max_length"):
        if key not in meta:
            raise UserError(f"{f}: missing '{key}'; the model folder is damaged.")
    return meta


def read_head_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    f = folder / "head.safetensors"
    if not f.is_file():
        raise UserError(f"{f}: missing; the model folder is damaged.")
    try:
        return load_file(str(f))
    except Exception as e:
        raise UserError(f"{f}: unreadable or truncated ({e}).") from None
