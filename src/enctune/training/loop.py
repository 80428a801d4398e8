"""The one training loop. It trains whatever module it is handed; it knows no task or strategy.

Features: Accelerate for device placement, mixed precision and many processes (DDP via
``torchrun`` or ``accelerate launch``: each process takes its share of every global batch,
see ``distributed``); AdamW with linear warm-up then linear decay; gradient accumulation and
clipping; a padded-token cap per forward pass (``max_tokens_per_batch``: larger batches run
as several passes with accumulated gradients, the same step); evaluation every
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

from .. import progress
from ..errors import UserError
from . import distributed, fast_dropout
from .batching import split_by_tokens
from .checkpoint import Checkpointer
from .precision import autocast, embeddings_in_autocast_dtype


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
    description: str = "train"
    # per-parameter learning-rate multipliers by name (layer-wise decay); a missing name gets 1.0
    lr_scales: dict[str, float] | None = None
    deadline: float | None = None  # time.monotonic() after which training stops (the --budget ladder)
    keep_best: bool = True  # restore the weights of the best evaluation (else keep the last)
    early_stopping: bool = True  # stop after ``patience`` evaluations without improvement


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)  # [step, epoch, smoothed train loss], ~200 points
    best_score: float = -math.inf
    best_step: int = 0
    steps: int = 0
    epochs_run: float = 0.0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0  # part of ``seconds`` spent evaluating
    stopped_early: bool = False
    resumed_at_step: int | None = None
    out_of_time: bool = False  # stopped at the deadline


def fit(model: nn.Module, loader, loss_fn: Callable, evaluate: Callable, cfg: LoopConfig,
        checkpoints: Checkpointer | None = None) -> LoopResult:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    set_seed(cfg.seed)
    # Parameters that get no gradient (a BERT pooler enctune does not use, layers above --layer) must not
    # stall DDP's gradient reduction.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = accelerator.process_index, accelerator.num_processes
    if checkpoints is not None and accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):
        raise UserError("--checkpoint-every/--resume: checkpoints are written for one process or DDP; under "
                        f"{accelerator.distributed_type.value} each process holds only a shard of the model.")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.lr_scales)
    # The fused kernel updates every parameter in one pass: ~6x less optimizer time on CPU than the loop.
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=_fused_ok(params))
    sampler, collate = loader.batch_sampler, loader.collate_fn
    batches_per_epoch = len(sampler)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    # Stepped by hand once per optimizer step: the schedule is that of one process with this global batch.
    scheduler = linear_warmup_decay(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    device_type = accelerator.device.type
    # With whole (unsharded) parameters and no loss scaling, Accelerate's optimizer step and gradient clipping
    # come down to torch's, plus checks it repeats on every call (a package lookup each: ~0.2 ms a step, which
    # is most of a small head's step). Sharded set-ups keep Accelerate's versions.
    plain = accelerator.distributed_type.value in ("NO", "MULTI_CPU", "MULTI_GPU")
    inner = optimizer.optimizer
    step_optimizer = inner.step if plain else optimizer.step
    # The fused kernel divides every gradient by ``grad_scale`` as it reads it (the hook GradScaler uses):
    # clipping through it saves a pass that rewrites every gradient (~2 ms of a ~160 ms CPU step).
    fold_clip = plain and bool(inner.defaults.get("fused"))

    def clip_gradients() -> None:
        if fold_clip:
            clip_in_fused_step(inner, params, cfg.max_grad_norm)
        elif plain:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)  # one kernel, not one per tensor
        else:
            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)

    result = LoopResult()
    pos = {"epoch": 0, "batch": 0, "evals_since_best": 0, "stop": False}  # where the data order stands
    best_state = None
    if checkpoints is not None and checkpoints.resume:
        saved, best_state = checkpoints.load(unwrapped, optimizer, scheduler)
        pos = saved["pos"]
        # tokens were summed over processes when saved: count them once
        result = LoopResult(**{**saved["result"], "resumed_at_step": saved["result"]["steps"],
                               "tokens": saved["result"]["tokens"] if rank == 0 else 0})
    t0 = time.perf_counter() - result.seconds

    def run_eval(epoch_float: float) -> bool:
        nonlocal best_state
        if result.history and result.history[-1]["step"] == result.steps:
            # nothing changed since the last evaluation
            return cfg.early_stopping and pos["evals_since_best"] >= cfg.patience
        t_eval = time.perf_counter()
        model.eval()
        with torch.inference_mode(), autocast(device_type, cfg.precision):
            score, metrics = evaluate(unwrapped)
        model.train()
        result.eval_seconds += time.perf_counter() - t_eval
        result.history.append({"step": result.steps, "epoch": round(epoch_float, 3), "lr": scheduler.get_last_lr()[0],
                               "score": score, **metrics, "train_loss": round(running, 6) if running is not None else None})
        if score > result.best_score:
            result.best_score, result.best_step = score, result.steps
            # only trainable weights can have changed: copy those
            best_state = {k: v.detach().clone() for k, v in unwrapped.named_parameters() if v.requires_grad}
            pos["evals_since_best"] = 0
        else:
            pos["evals_since_best"] += 1
        return cfg.early_stopping and pos["evals_since_best"] >= cfg.patience

    def out_of_time() -> bool:
        return cfg.deadline is not None and time.monotonic() > cfg.deadline

    def save_checkpoint() -> None:
        result.seconds = time.perf_counter() - t0
        record = asdict(result) | {"resumed_at_step": None, "tokens": distributed.sum_int(result.tokens)}
        checkpoints.save(unwrapped, optimizer, scheduler, {"pos": dict(pos), "steps": result.steps,
                                                          "result": record}, best_state)

    def train_step(group: list) -> float:
        """One optimizer step over ``group`` (grad_accum global batches); returns the mean loss."""
        pieces = []
        for idx in group:
            batch = collate(distributed.shard(idx, rank, world))
            pieces += split_by_tokens(batch, cfg.max_tokens_per_batch)
        n_rows = sum(len(p["labels"]) for p in pieces)
        total_loss = 0.0
        for j, piece in enumerate(pieces):
            piece = {k: v.to(accelerator.device) for k, v in piece.items()}
            labels = piece.pop("labels")
            # gradients are averaged across processes only on the last pass of the step
            with accelerator.no_sync(model) if j < len(pieces) - 1 else nullcontext():
                with autocast(device_type, cfg.precision):
                    logits = model(**piece)
                loss = loss_fn(logits.float(), labels) * (len(labels) / n_rows)
                accelerator.backward(loss)
            total_loss += loss.item()
            if "attention_mask" in piece:
                result.tokens += int(piece["attention_mask"].sum())
        result.examples += sum(len(idx) for idx in group)
        if cfg.max_grad_norm:
            clip_gradients()
        step_optimizer()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps += 1
        return total_loss

    model.train()
    # the smoothed loss travels in ``pos`` so that a resumed run records the same history
    running, seen_in_window, window_t = pos.get("running"), 0, time.perf_counter()
    with fast_dropout.installed(unwrapped, device_type), embeddings_in_autocast_dtype(unwrapped, device_type), \
            progress.bar(cfg.description, total=total, status=True) as pbar:
        pbar.advance(result.steps)
        while pos["epoch"] < cfg.epochs and not pos["stop"]:
            epoch = pos["epoch"]
            sampler.set_epoch(epoch)
            order = list(sampler)
            for start in range(pos["batch"], len(order), cfg.grad_accum):
                group = order[start:start + cfg.grad_accum]
                loss = train_step(group)
                pos["batch"] = start + len(group)
                seen_in_window += sum(len(idx) for idx in group)
                running = loss if running is None else 0.9 * running + 0.1 * loss
                pos["running"] = running
                rate = seen_in_window / max(time.perf_counter() - window_t, 1e-9)
                pbar.advance(1, status=f"loss {running:.4f}  {rate:.0f} ex/s")
                if result.steps % max(1, total // 200) == 0 or result.steps == 1:
                    result.losses.append([result.steps, round(epoch + pos["batch"] / len(order), 4), round(running, 6)])
                if pos["batch"] < len(order) and (_eval_due(cfg, result.steps, pos["batch"], len(order))
                                                  or out_of_time()):
                    pos["stop"] = run_eval(epoch + pos["batch"] / len(order)) or out_of_time()
                    result.out_of_time = out_of_time()
                if checkpoints is not None and (pos["stop"] or checkpoints.due(result.steps)):
                    save_checkpoint()
                if pos["stop"]:
                    break
            if not pos["stop"]:
                pos["stop"] = run_eval(epoch + 1.0) or out_of_time()
                result.out_of_time = out_of_time()
                pos["epoch"], pos["batch"] = epoch + 1, 0
                if checkpoints is not None:
                    save_checkpoint()
    result.stopped_early = pos["stop"] and pos["epoch"] < cfg.epochs
    result.epochs_run = round(result.steps / max(steps_per_epoch, 1), 3)
    result.seconds = time.perf_counter() - t0
    result.tokens = distributed.sum_int(result.tokens)
    if best_state is not None and cfg.keep_best:
        unwrapped.load_state_dict(best_state, strict=False)
    unwrapped.eval()
    return result


def clip_in_fused_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], max_norm: float) -> None:
    """Clip the gradients of ``params`` to total norm ``max_norm`` inside the next step of ``optimizer`` (a
    fused Adam/AdamW): the same update as ``clip_grad_norm_`` before the step, without rewriting every
    gradient first. ``clip_grad_norm_`` multiplies by min(1, max_norm / (norm + 1e-6)); the fused kernel
    divides each gradient by ``grad_scale`` as it reads it."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
    optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0)


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
