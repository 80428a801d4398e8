"""Every CPU speed patch enctune applies, in one place, each behind a named switch.

A patch replaces a stock piece of PyTorch or transformers with a faster one that computes the
same thing (each has a test of equality with the stock path in ``tests/speed/``). The code that
uses one asks ``enabled(name)`` first and otherwise takes the stock path, so:

- ``ENCTUNE_DISABLE=fast_dropout,first_token`` (or ``all``) turns patches off, for a comparison
  or when one misbehaves;
- a patch runs only with the library versions it was tested with (``Patch.requires``); outside
  them it falls back to the stock path and says so once.

| switch | what it does | measured gain (where) |
| --- | --- | --- |
| ``malloc`` | glibc keeps multi-MiB activations in the heap | first bf16 pass over SST-2 test 2.0 -> 1.6 s |
| ``fast_dropout`` | dropout masks from 15 random bits, not a double each | ~a fifth of a CPU training step |
| ``bf16_residual`` | a post-norm encoder's residual stream in bf16 under CPU autocast | 3-19% train examples/s |
| ``fused_clip`` | gradient clipping inside the fused AdamW step | ~2 ms of a ~160 ms step |
| ``no_pooler`` | BERT's unused pooler not run | 0.7 ms of each training forward |
| ``first_token`` | a classifier's last layer for the first token only | a seventh of a 6-layer pass |
| ``tokenizer_backend`` | token ids straight from the Rust tokenizer | a third of tokenisation time |
| ``bf16_copy`` | inference on a bf16 copy of the weights | 1.25x on a 2-core Xeon |
| ``lazy_network`` | the network loads on first use (a warm probe never needs it) | most of a warm probe's load time |
| ``reuse_validation`` | the final evaluation takes the loop's fp32 validation outputs of the kept weights | 3.7 s of a 133 s SST-2 run |

The figures come from BENCHMARKS.md and the patches' docstrings, which say how each was measured.
(``ENCTUNE_MALLOC_TUNING=0`` still turns ``malloc`` off too.)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata

SWITCH = "ENCTUNE_DISABLE"


@dataclass(frozen=True)
class Patch:
    name: str
    what: str
    requires: dict[str, str] = field(default_factory=dict)  # package -> versions it was tested with (PEP 440)


# torch 2.2 is the oldest pyproject.toml admits; 2.15 the first not tested
TORCH = ">=2.2,<2.15"
TRANSFORMERS = ">=4.44,<6"

PATCHES = {p.name: p for p in (
    Patch("malloc", "glibc malloc thresholds: activations reuse heap memory"),
    Patch("fast_dropout", "dropout masks from 15 random bits per element", {"torch": TORCH,
                                                                             "transformers": ">=4.48,<6"}),
    Patch("bf16_residual", "post-norm encoders' embeddings in the autocast dtype under CPU autocast",
          {"torch": TORCH}),
    Patch("fused_clip", "gradient clipping through the fused AdamW kernel's grad_scale", {"torch": TORCH}),
    Patch("no_pooler", "the BERT-family pooler, which enctune never reads, not run", {"transformers": TRANSFORMERS}),
    Patch("first_token", "a BERT-style classifier's last layer computed for the first token only",
          {"transformers": TRANSFORMERS}),
    Patch("tokenizer_backend", "token ids from the fast tokenizer's Rust backend", {"transformers": TRANSFORMERS,
                                                                                     "tokenizers": ">=0.19,<1"}),
    Patch("bf16_copy", "inference on a bf16 copy of the weights instead of casting them on every call",
          {"torch": TORCH}),
    Patch("lazy_network", "an encoder's network loaded on first use", {"transformers": TRANSFORMERS}),
    Patch("reuse_validation", "the loop's validation outputs of the kept weights reused by the final evaluation"),
)}


def disabled() -> set[str]:
    """The patches the environment turns off (``ENCTUNE_DISABLE``; ``all`` for every one)."""
    names = {n.strip() for n in os.environ.get(SWITCH, "").split(",") if n.strip()}
    if "all" in names:
        return set(PATCHES)
    if os.environ.get("ENCTUNE_MALLOC_TUNING", "1") == "0":
        names.add("malloc")
    return names


def enabled(name: str) -> bool:
    """Whether patch ``name`` is to run: not switched off, and the installed libraries are versions it was
    tested with."""
    if name not in PATCHES:
        raise KeyError(f"no speed patch named {name!r}; the patches are {', '.join(PATCHES)}")
    return name not in disabled() and _tested_versions(name)


@cache
def _tested_versions(name: str) -> bool:
    """True when every library the patch requires is installed at a tested version; else False, said once."""
    from packaging.specifiers import SpecifierSet

    for package, versions in PATCHES[name].requires.items():
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue  # not installed: the code path that uses the patch cannot run either
        if installed.split("+")[0] not in SpecifierSet(versions):
            warnings.warn(f"enctune's '{name}' speed patch was tested with {package}{versions}; {package} "
                          f"{installed} is installed, so the stock path runs instead.", UserWarning, stacklevel=3)
            return False
    return True
