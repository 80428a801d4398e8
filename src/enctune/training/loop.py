"""The one training loop. It trains whatever module it is handed; it knows no task or strategy.

Features: Accelerate for device placement, mixed precision and (later) many processes;
AdamW with linear warm-up then linear decay; gradient accumulation and clipping;
evaluation every ``eval_every`` optimizer steps and at each epoch end; early stopping on
the validation score with the best weights restored; a progress bar with loss and
examples/s; costs (wall time, examples, tokens, peak memory) counted as it goes.

Inputs: ``model(**inputs) -> logits`` where a batch is ``{"labels": ..., **inputs}``;
``loss_fn(logits, labels) -> scalar``; ``evaluate(model) -> (score, metrics)`` with a
higher score better.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import progress
from .precision import autocast


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
    description: str = "train"


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


def fit(model: nn.Module, loader, loss_fn: Callable, evaluate: Callable, cfg: LoopConfig,
        sampler=None) -> LoopResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    set_seed(cfg.seed)
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, cpu=not torch.cuda.is_available(),
                              mixed_precision="no")
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases and norms are not decayed
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates every parameter in one pass: ~6x less optimizer time on CPU than the loop.
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=_fused_ok(params))
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    device_type = accelerator.device.type

    result = LoopResult()
    best_state = None
    evals_since_best = 0
    t0 = time.perf_counter()

    def run_eval(epoch_float: float) -> bool:
        nonlocal best_state, evals_since_best
        if result.history and result.history[-1]["step"] == result.steps:
            return evals_since_best >= cfg.patience  # nothing changed since the last evaluation
        t_eval = time.perf_counter()
        model.eval()
        with torch.inference_mode(), autocast(device_type, cfg.precision):
            score, metrics = evaluate(accelerator.unwrap_model(model))
        model.train()
        result.eval_seconds += time.perf_counter() - t_eval
        result.history.append({"step": result.steps, "epoch": round(epoch_float, 3), "score": score, **metrics,
                               "train_loss": round(running, 6)})
        if score > result.best_score:
            result.best_score, result.best_step = score, result.steps
            # only trainable weights can have changed: copy those
            best_state = {k: v.detach().clone() for k, v in accelerator.unwrap_model(model).named_parameters()
                          if v.requires_grad}
            evals_since_best = 0
        else:
            evals_since_best += 1
        return evals_since_best >= cfg.patience

    model.train()
    running, seen_in_window, window_t = 0.0, 0, time.perf_counter()
    stop = False
    with progress.bar(cfg.description, total=total, status=True) as pbar:
        for epoch in range(cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            for i, batch in enumerate(loader):
                labels = batch.pop("labels")
                with accelerator.accumulate(model):
                    with autocast(device_type, cfg.precision):
                        logits = model(**batch)
                    loss = loss_fn(logits.float(), labels)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                n = len(labels)
                result.examples += n
                seen_in_window += n
                if "attention_mask" in batch:
                    result.tokens += int(batch["attention_mask"].sum())
                running = 0.9 * running + 0.1 * loss.item() if result.steps else loss.item()
                if not accelerator.sync_gradients:
                    continue
                result.steps += 1
                rate = seen_in_window / max(time.perf_counter() - window_t, 1e-9)
                pbar.advance(1, status=f"loss {running:.4f}  {rate:.0f} ex/s")
                if result.steps % max(1, total // 200) == 0 or result.steps == 1:
                    result.losses.append([result.steps, round(epoch + (i + 1) / len(loader), 4), round(running, 6)])
                if (i + 1) < len(loader) and _eval_due(cfg, result.steps, i + 1, len(loader)):
                    if run_eval(epoch + (i + 1) / len(loader)):
                        stop = True
                        break
            if stop:
                result.stopped_early = True
                break
            if run_eval(epoch + 1.0):
                result.stopped_early = epoch + 1 < cfg.epochs
                break
    result.epochs_run = round(result.steps / max(steps_per_epoch, 1), 3)
    result.seconds = time.perf_counter() - t0
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state, strict=False)
    unwrapped.eval()
    return result



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
