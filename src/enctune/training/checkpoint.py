"""Checkpoints of a training run, and resuming from the latest one.

A checkpoint is a folder ``step-NNNNNNN/`` under the run's ``checkpoints/`` folder; it is
written into a temporary sibling and renamed into place, so a kill at any moment leaves the
previous checkpoint whole (only the newest is kept). Tensors are safetensors, everything
else JSON; nothing is unpickled on resume.

    trainable.safetensors   every trainable parameter (frozen ones are rebuilt from the encoder)
    best.safetensors        the best weights so far (early stopping restores them at the end)
    optimizer.safetensors   optimizer state tensors; their structure is in state.json
    state.json              data position (epoch, batch), loop record, scheduler, the random
                            states of every process, and the run's settings

Resuming with other settings than the run that wrote the checkpoint is a ``UserError``.
The loop calls ``save`` on every process (the random states are gathered); only the main
process writes. Model and optimizer states are those of DDP (identical on every process).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..errors import UserError

PREFIX = "step-"


def rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    out = {"python": [py[0], list(py[1]), py[2]],
           "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
           "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(s: dict) -> None:
    random.setstate((s["python"][0], tuple(s["python"][1]), s["python"][2]))
    n = s["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.tensor(s["torch"], dtype=torch.uint8))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(x, dtype=torch.uint8) for x in s["cuda"]])


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, layout = {}, {}
    for pid, st in sd["state"].items():
        layout[str(pid)] = {}
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{name}"] = v.detach().cpu().contiguous()
                layout[str(pid)][name] = None
            else:
                layout[str(pid)][name] = v
    return tensors, {"state": layout, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {}
    for pid, names in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v is None else v) for k, v in names.items()}
    groups = [{**g, **({"betas": tuple(g["betas"])} if "betas" in g else {})} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


class Checkpointer:
    """Saves every ``every`` optimizer steps (and at epoch ends) into ``folder``; loads the latest."""

    def __init__(self, folder: str | os.PathLike, every: int | None, resume: bool, settings: dict):
        self.folder = Path(folder)
        self.every = every
        self.resume = resume
        self.settings = settings  # the run's settings, JSON-able: resuming with others is refused

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def latest(self) -> Path | None:
        found = sorted(p for p in self.folder.glob(f"{PREFIX}*") if (p / "state.json").is_file())
        return found[-1] if found else None

    def save(self, model, optimizer, scheduler, loop: dict, best: dict | None) -> None:
        from safetensors.torch import save_file

        rngs = distributed.gather_list(rng_state())  # every process's random state, rank order
        if not distributed.is_main():
            return
        trainable = {k: v.detach().cpu().contiguous() for k, v in model.named_parameters() if v.requires_grad}
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        state = {"loop": loop, "scheduler": scheduler.state_dict(), "optimizer": opt_meta, "rng": rngs,
                 "settings": self.settings}
        final = self.folder / f"{PREFIX}{loop['steps']:07d}"
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            save_file(trainable, str(tmp / "trainable.safetensors"))
            if best is not None:
                save_file({k: v.cpu().contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(json.dumps(state, default=_jsonable))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.folder.iterdir():  # older checkpoints and leftovers of killed writes
            if old != final and (old.name.startswith(PREFIX) or old.name.startswith(".tmp-")):
                shutil.rmtree(old, ignore_errors=True)

    def load(self, model, optimizer, scheduler) -> tuple[dict, dict | None]:
        """Restore model, optimizer, scheduler and random states; return (loop record, best weights).

        Everything is checked before anything is restored: a checkpoint that does not parse, lacks a part,
        was written with other settings or data, or holds states that do not fit is a UserError."""
        from safetensors.torch import load_file

        ckpt = self.latest()
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint in {self.folder}; train without --resume to start afresh.")
        try:
            state = json.loads((ckpt / "state.json").read_text())
            trainable = load_file(str(ckpt / "trainable.safetensors"))
            opt_tensors = load_file(str(ckpt / "optimizer.safetensors"))
            best = load_file(str(ckpt / "best.safetensors")) if (ckpt / "best.safetensors").is_file() else None
        except Exception as e:  # a damaged checkpoint names itself
            raise _damaged(ckpt, e) from None
        missing = [k for k in ("settings", "loop", "rng", "optimizer", "scheduler")
                   if not isinstance(state, dict) or k not in state]
        if missing or not isinstance(state["settings"], dict) or not isinstance(state["rng"], list):
            raise _damaged(ckpt, f"state.json lacks {', '.join(missing) or 'a well-formed settings or rng entry'}")
        self._same_settings(ckpt, state["settings"])
        rank, world = distributed.rank_world()
        if len(state["rng"]) != world:
            raise UserError(f"--resume: the checkpoint was written by {len(state['rng'])} process(es); "
                            f"resume with the same number (now {world}).")
        params = dict(model.named_parameters())
        unknown = sorted(set(trainable) - set(params))
        if unknown or any(params[k].shape != v.shape for k, v in trainable.items()):
            raise _damaged(ckpt, f"its weights do not fit this model ({', '.join(unknown[:3]) or 'shapes differ'})")
        try:
            set_rng_state(state["rng"][rank])
            optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, state["optimizer"]))
            scheduler.load_state_dict(state["scheduler"])
        except Exception as e:  # a state that parses but does not fit (damaged RNG words, optimizer groups...)
            raise _damaged(ckpt, e) from None
        with torch.no_grad():
            for k, v in trainable.items():
                params[k].copy_(v)
        return state["loop"], best

    def _same_settings(self, ckpt: Path, then: dict) -> None:
        digests_then, digests_now = then.get("data_digests") or {}, self.settings.get("data_digests") or {}
        changed_data = sorted(s for s in digests_now if digests_then.get(s) not in (None, digests_now[s]))
        if changed_data:
            raise UserError(f"--resume: the data changed since the checkpoint in {ckpt} was written (the "
                            f"{', '.join(changed_data)} file has other contents now); resume with the same data, "
                            "or train afresh without --resume.")
        changed = sorted(k for k in set(self.settings) | set(then)
                         if k != "data_digests" and self.settings.get(k) != then.get(k))
        if changed:
            raise UserError(f"--resume: the checkpoint in {ckpt} was written with other settings ("
                            + ", ".join(f"{k}: {then.get(k)!r} then, {self.settings.get(k)!r} now"
                                        for k in changed) + "); resume with the same options.")


def _damaged(ckpt: Path, why) -> UserError:
    return UserError(f"{ckpt}: unreadable checkpoint ({why}); remove it to resume from an earlier one, or train "
                     "afresh without --resume.")


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if torch.is_tensor(x):
        return x.item() if x.ndim == 0 else x.tolist()
    return str(x)
