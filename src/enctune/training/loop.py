"""The one training loop. It trains whatever module it is handed; it knows no task or strategy.

Features: Accelerate for device placement, mixed precision and many processes (DDP via
``torchrun`` or ``accelerate launch``: each process takes its share of every global batch,
see ``distributed``); AdamW with linear warm-up then linear decay; gradient accumulation and
clipping; a padded-token cap per forward pass (``max_tokens_per_batch``: larger batches run
as several passes with accumulated gradients, the same step; a loss over the whole batch,
``whole_batch_loss``, through gradient caching, see ``gradcache``); evaluation every
``eval_every`` optimizer steps and at each epoch end; early stopping on the validation
score with the best weights restored; checkpoints every ``checkpoint_every`` steps and at
each epoch end, and resuming from the latest (see ``checkpoint``); a progress bar with loss
and examples/s; costs (wall time, examples, tokens) counted as it goes.

Inputs: ``loader`` is a DataLoader over row indices with a ``batch_sampler`` that yields
*global* batches and has ``set_epoch(epoch)`` (the same order for the same seed and epoch:
what makes resuming exact); ``model(**inputs) -> logits`` where a collated batch is
``{"labels": ..., **inputs}``; ``loss_fn(logits, labels) -> scalar`` (a mean);
``evaluate(model) -> (score, metrics)`` with a higher score better, called on every process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .. import distributed, progress
from ..errors import UserError
from ..phases import process_age
from ..precision import autocast
from ..speed.bf16 import embeddings_in_autocast_dtype
from ..speed.clip import gradient_clipper
from ..speed.dropout import installed as fast_dropout_installed
from .batching import split_by_tokens
from .checkpoint import Checkpointer
from .gradcache import cached_backward


@dataclass
class LoopConfig:
    epochs: int
    lr: float
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    patience: int = 3  # evaluations without improvement before stopping
    eval_every: int | None = None  # optimizer steps; when None, evals_per_epoch decides
    evals_per_epoch: int = 1  # evenly spaced, the last at the epoch's end
    precision: str = "fp32"
    seed: int = 42
    max_tokens_per_batch: int | None = None  # padded tokens per forward pass (memory cap)
    whole_batch_loss: bool = False  # the loss compares a batch's rows: passes of one batch cache gradients
    description: str = "train"
    # per-parameter learning-rate multipliers by name (layer-wise decay); a missing name gets 1.0
    lr_scales: dict[str, float] | None = None
    deadline: float | None = None  # time.monotonic() after which training stops (the --budget ladder)
    keep_best: bool = True  # restore the weights of the best evaluation (else keep the last)
    early_stopping: bool = True  # stop after ``patience`` evaluations without improvement
    log: Callable | None = None  # log(phase, values, step): the experiment trackers (enctune.tracking)


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)  # [step, epoch, smoothed train loss], ~200 points
    best_score: float = -math.inf
    best_step: int = 0
    kept_step: int | None = None  # the step whose weights the model holds at the end (best, or last)
    steps: int = 0
    epochs_run: float = 0.0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0  # part of ``seconds`` spent evaluating
    stopped_early: bool = False
    resumed_at_step: int | None = None
    out_of_time: bool = False  # stopped at the deadline
    started_at: float | None = None  # the process's age (s) when the loop began: what a user waited for step 1
    # the loop's seconds before each evaluation of ``history``, evaluations apart (a time-to-accuracy curve); kept
    # beside the history, which stays the same for the same seed
    history_seconds: list[float] = field(default_factory=list)


@dataclass
class _Training:
    """What one ``fit`` holds between its steps."""

    cfg: LoopConfig
    accelerator: object
    model: nn.Module  # as Accelerate wrapped it (DDP under a launcher)
    unwrapped: nn.Module
    optimizer: object
    scheduler: object
    step_optimizer: Callable
    clip: Callable
    collate: Callable
    loss_fn: Callable
    evaluate: Callable
    checkpoints: Checkpointer | None
    result: LoopResult = field(default_factory=LoopResult)
    pos: dict = field(default_factory=lambda: {"epoch": 0, "batch": 0, "evals_since_best": 0, "stop": False})
    best_state: dict | None = None
    t0: float = 0.0

    @property
    def running(self) -> float | None:
        return self.pos.get("running")  # the smoothed loss travels in ``pos``: a resumed run records the same

    def out_of_time(self) -> bool:
        return self.cfg.deadline is not None and time.monotonic() > self.cfg.deadline


def fit(model: nn.Module, loader, loss_fn: Callable, evaluate: Callable, cfg: LoopConfig,
        checkpoints: Checkpointer | None = None) -> LoopResult:
    """Train ``model`` on ``loader``'s batches (see the module docstring); returns the loop's record."""
    t = _start(model, loader, loss_fn, evaluate, cfg, checkpoints)
    sampler, result, pos = loader.batch_sampler, t.result, t.pos
    steps_per_epoch = math.ceil(len(sampler) / cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    device_type = t.accelerator.device.type
    seen, window_t = 0, time.perf_counter()
    t.model.train()
    with fast_dropout_installed(t.unwrapped, device_type), embeddings_in_autocast_dtype(t.unwrapped, device_type), \
            progress.bar(cfg.description, total=total, status=True) as pbar:
        pbar.advance(result.steps)
        while pos["epoch"] < cfg.epochs and not pos["stop"]:
            epoch = pos["epoch"]
            sampler.set_epoch(epoch)
            order = list(sampler)
            for start in range(pos["batch"], len(order), cfg.grad_accum):
                group = order[start:start + cfg.grad_accum]
                loss = _train_step(t, group)
                pos["batch"] = start + len(group)
                seen += sum(len(idx) for idx in group)
                pos["running"] = loss if t.running is None else 0.9 * t.running + 0.1 * loss
                rate = seen / max(time.perf_counter() - window_t, 1e-9)
                pbar.advance(1, status=f"loss {t.running:.4f}  {rate:.0f} ex/s")
                if cfg.log is not None:
                    cfg.log(cfg.description, {"loss": t.running, "lr": t.scheduler.get_last_lr()[0],
                                              "examples_per_second": rate}, result.steps)
                if result.steps % max(1, total // 200) == 0 or result.steps == 1:
                    result.losses.append([result.steps, round(epoch + pos["batch"] / len(order), 4),
                                          round(t.running, 6)])
                if pos["batch"] < len(order) and (_eval_due(cfg, result.steps, pos["batch"], len(order))
                                                  or t.out_of_time()):
                    pos["stop"] = _evaluate(t, epoch + pos["batch"] / len(order)) or t.out_of_time()
                    result.out_of_time = t.out_of_time()
                if checkpoints is not None and (pos["stop"] or checkpoints.due(result.steps)):
                    _save(t)
                if pos["stop"]:
                    break
            if not pos["stop"]:
                pos["stop"] = _evaluate(t, epoch + 1.0) or t.out_of_time()
                result.out_of_time = t.out_of_time()
                pos["epoch"], pos["batch"] = epoch + 1, 0
                if checkpoints is not None:
                    _save(t)
    return _finish(t, steps_per_epoch)


def _start(model, loader, loss_fn, evaluate, cfg: LoopConfig, checkpoints) -> _Training:
    """Accelerate, the optimizer (fused AdamW, weight decay on matrices only), the schedule, the clipping, and
    the state of a checkpoint to resume from."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    set_seed(cfg.seed)
    # Parameters that get no gradient (a BERT pooler enctune does not use, layers above --layer) must not
    # stall DDP's gradient reduction.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if checkpoints is not None and accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):
        raise UserError("--checkpoint-every/--resume: checkpoints are written for one process or DDP; under "
                        f"{accelerator.distributed_type.value} each process holds only a shard of the model.")
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates every parameter in one pass: ~6x less optimizer time on CPU than the loop.
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.weight_decay, cfg.lr_scales), lr=cfg.lr,
                                  fused=_fused_ok(params))
    total = math.ceil(len(loader.batch_sampler) / cfg.grad_accum) * cfg.epochs
    # Stepped by hand once per optimizer step: the schedule is that of one process with this global batch.
    scheduler = linear_warmup_decay(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    # With whole (unsharded) parameters and no loss scaling, Accelerate's optimizer step and gradient clipping
    # come down to torch's, plus checks it repeats on every call (a package lookup each: ~0.2 ms a step, which
    # is most of a small head's step). Sharded set-ups keep Accelerate's versions.
    plain = accelerator.distributed_type.value in ("NO", "MULTI_CPU", "MULTI_GPU")
    t = _Training(cfg, accelerator, model, accelerator.unwrap_model(model), optimizer, scheduler,
                  optimizer.optimizer.step if plain else optimizer.step,
                  gradient_clipper(optimizer.optimizer, params, cfg.max_grad_norm, plain, accelerator.clip_grad_norm_),
                  loader.collate_fn, loss_fn, evaluate, checkpoints)
    if checkpoints is not None and checkpoints.resume:
        saved, t.best_state = checkpoints.load(t.unwrapped, optimizer, scheduler)
        t.pos = saved["pos"]
        # tokens were summed over processes when saved: count them once
        t.result = LoopResult(**{**saved["result"], "resumed_at_step": saved["result"]["steps"],
                                 "tokens": saved["result"]["tokens"] if accelerator.process_index == 0 else 0})
    t.t0 = time.perf_counter() - t.result.seconds
    t.result.started_at = process_age()
    return t


def _train_step(t: _Training, group: list) -> float:
    """One optimizer step over ``group`` (grad_accum global batches); returns the mean loss. Each process takes
    its share of every batch; a batch over the padded-token cap runs as several passes."""
    accelerator, cfg, result = t.accelerator, t.cfg, t.result
    rank, world = accelerator.process_index, accelerator.num_processes
    batches = [split_by_tokens(t.collate(distributed.shard(idx, rank, world)), cfg.max_tokens_per_batch)
               for idx in group]
    n_rows = sum(len(p["labels"]) for pieces in batches for p in pieces)
    n_passes, done = sum(len(pieces) for pieces in batches), 0
    total_loss = 0.0
    for pieces in batches:
        pieces = [{k: v.to(accelerator.device) for k, v in piece.items()} for piece in pieces]
        # every input's real tokens (a text encoded apart has its own mask: attention_mask_b, _c)
        result.tokens += sum(int(v.sum()) for p in pieces for k, v in p.items() if k.startswith("attention_mask"))
        if cfg.whole_batch_loss and len(pieces) > 1:
            rows = sum(len(p["labels"]) for p in pieces)
            total_loss += cached_backward(t.model, pieces, t.loss_fn, rows / n_rows, accelerator.device.type,
                                          cfg.precision, accelerator.backward, accelerator.no_sync,
                                          done + len(pieces) == n_passes)
            done += len(pieces)
            continue
        for piece in pieces:
            labels = piece.pop("labels")
            done += 1
            # gradients are averaged across processes only on the last pass of the step
            with accelerator.no_sync(t.model) if done < n_passes else nullcontext():
                with autocast(accelerator.device.type, cfg.precision):
                    logits = t.model(**piece)
                loss = t.loss_fn(logits.float(), labels) * (len(labels) / n_rows)
                accelerator.backward(loss)
            total_loss += loss.item()
    result.examples += sum(len(idx) for idx in group)
    if cfg.max_grad_norm:
        t.clip()
    t.step_optimizer()
    t.scheduler.step()
    t.optimizer.zero_grad(set_to_none=True)
    result.steps += 1
    return total_loss


def _evaluate(t: _Training, epoch_float: float) -> bool:
    """Score the model now (unless nothing changed since the last time), keep its weights when best; True
    when early stopping says to stop."""
    cfg, result, pos = t.cfg, t.result, t.pos
    if not (result.history and result.history[-1]["step"] == result.steps):
        t_eval = time.perf_counter()
        trained = t_eval - t.t0 - result.eval_seconds  # the loop's time so far, evaluations apart
        t.model.eval()
        with torch.inference_mode(), autocast(t.accelerator.device.type, cfg.precision):
            score, metrics = t.evaluate(t.unwrapped)
        t.model.train()
        result.eval_seconds += time.perf_counter() - t_eval
        result.history.append({"step": result.steps, "epoch": round(epoch_float, 3),
                               "lr": t.scheduler.get_last_lr()[0], "score": score, **metrics,
                               "train_loss": round(t.running, 6) if t.running is not None else None})
        result.history_seconds.append(round(trained, 3))
        if cfg.log is not None:
            cfg.log(cfg.description, {f"validation_{k}": v for k, v in metrics.items()}, result.steps)
        if score > result.best_score:
            result.best_score, result.best_step = score, result.steps
            # only trainable weights can have changed: copy those
            t.best_state = {k: v.detach().clone() for k, v in t.unwrapped.named_parameters() if v.requires_grad}
            pos["evals_since_best"] = 0
        else:
            pos["evals_since_best"] += 1
    return cfg.early_stopping and pos["evals_since_best"] >= cfg.patience


def _save(t: _Training) -> None:
    t.result.seconds = time.perf_counter() - t.t0
    record = asdict(t.result) | {"resumed_at_step": None, "tokens": distributed.sum_int(t.result.tokens)}
    t.checkpoints.save(t.unwrapped, t.optimizer, t.scheduler, {"pos": dict(t.pos), "steps": t.result.steps,
                                                               "result": record}, t.best_state)


def _finish(t: _Training, steps_per_epoch: int) -> LoopResult:
    """The record completed, and the best weights back in the model when early stopping kept them."""
    result, cfg = t.result, t.cfg
    result.stopped_early = t.pos["stop"] and t.pos["epoch"] < cfg.epochs
    result.epochs_run = round(result.steps / max(steps_per_epoch, 1), 3)
    result.seconds = time.perf_counter() - t.t0
    result.tokens = distributed.sum_int(result.tokens)
    result.kept_step = result.steps
    if t.best_state is not None and cfg.keep_best:
        t.unwrapped.load_state_dict(t.best_state, strict=False)
        result.kept_step = result.best_step
    t.unwrapped.eval()
    return result


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    """Learning rate rising linearly from 0 over ``warmup`` steps, then falling linearly to 0 at ``total``."""
    def scale(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, scale)


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 lr_scales: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups of the trainable parameters: weight decay on matrices only (biases and norms are not
    decayed), and one group per learning-rate multiplier of ``lr_scales`` (by parameter name)."""
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = (lr_scales or {}).get(name, 1.0)
            groups.setdefault((scale, p.ndim >= 2), []).append(p)
    return [{"params": ps, "lr": lr * scale, "weight_decay": weight_decay if decayed else 0.0}
            for (scale, decayed), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))]


def _eval_due(cfg: LoopConfig, step: int, batch: int, batches: int) -> bool:
    """Whether to evaluate after this optimizer step (the epoch's end is handled by the caller)."""
    if cfg.eval_every:
        return step % cfg.eval_every == 0
    if cfg.evals_per_epoch <= 1:
        return False
    marks = {round(batches * k / cfg.evals_per_epoch) for k in range(1, cfg.evals_per_epoch)}
    return batch in marks


def _fused_ok(params: list[torch.Tensor]) -> bool | None:
    """Use the fused AdamW kernel when every parameter is a float tensor on one supported device."""
    if not params:
        return None
    devices = {p.device.type for p in params}
    return True if len(devices) == 1 and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params) \
        else None
