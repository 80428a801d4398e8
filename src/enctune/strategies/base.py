"""What a strategy is, what it is handed and what it hands back.

A strategy decides which parameters move (all, some, none, a head over cached features) and
hands the one training loop a module to train. It is one module in this package that
registers itself (``@register``) and carries everything the rest of enctune asks of it:

- its options (``Options``, a pydantic model whose fields become ``TrainConfig`` fields and
  command-line flags, refused for other strategies);
- which tasks it applies to (``applies``) and its cost on given data (``estimate``), which the
  advisor and ``enctune advise`` read;
- its place on the ``--budget`` ladder (``ladder_rank``) and in the advisor's preference
  (``auto_rank``, ``min_per_class``);
- what its model folder holds (``write_encoder``, ``read_encoder``, ``plain_encoder``).

It returns the trained head, whether the encoder changed, the loop's record, and any
features it cached (so evaluation can reuse them instead of running the encoder again).

Strategy modules import torch only inside ``run`` and the functions it calls, so that the
registry, the config and the command line's help load without it (~2 s, ARCHITECTURE.md).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from .labels import init_head_from_labels, label_embeddings

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..encoders.encoder import Encoder
    from ..tasks import Prepared, Task
    from ..training.checkpoint import Checkpointer
    from ..training.loop import LoopConfig, LoopResult

SMALL_VALIDATION = 50  # rows: below this a validation split carved from train does not rank checkpoints
MIN_STEPS = 32  # optimizer steps a default schedule gives a small training set (at most MAX_FLOOR_EPOCHS)
MAX_FLOOR_EPOCHS = 20
# Training tokens per second per core of full fine-tuning for a 22.7M-parameter encoder on a CPU (scaled by
# parameter count), where the rate was not measured (training.rate); a GPU is taken as GPU_SPEEDUP times 8 cores.
CPU_TOKENS_PER_SEC_PER_CORE = 900.0
GPU_SPEEDUP = 30.0
# What every run pays besides its passes over the data: building the network, the first calls' warm-up, the
# evaluation's bookkeeping (about 2 s for the default encoder on 2 AVX2 cores, BENCHMARKS.md "estimates").
START_SECONDS = 2.0


class StrategyOptions(BaseModel):
    """A strategy's own settings. Each field is a ``TrainConfig`` field and a flag of the same name
    (``lora_r`` is ``--lora-r``), described by its ``Field(description=...)``."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class CostFacts:
    """What a strategy's cost depends on, measured on the run's data and encoder."""

    train_tokens: int  # tokens in the training split
    eval_tokens: int  # tokens in validation and test
    train_examples: int
    params: int  # the encoder's parameters
    layers: int
    hidden: int
    labels: int
    level: str  # the task's level: "sequence" or "token"
    task: Any = None  # the run's task (its per-strategy defaults)
    options: Any = None  # the run's config (each strategy reads its own options and the user's epochs)
    network: Any = None  # the encoder's network without weights (Encoder.skeleton): trainable parameters are
    #                      counted on it by the code a run selects them with (Strategy.trainable_params)
    head_params: int = 0  # the task head's parameters
    validation_tokens: int = 0  # tokens in validation (evaluated several times by a run that trains the encoder)
    measured_rate: float | None = None  # training.rate.measured_rate, when measured

    def rate(self) -> float:
        """Training tokens per second of full fine-tuning on this machine: measured (``training.rate``), else
        CPU_TOKENS_PER_SEC_PER_CORE per core scaled by size."""
        import torch  # lazy: torch (~2 s) is loaded by the run anyway; the help text never gets here

        if self.measured_rate:
            return self.measured_rate
        scale = 22.7e6 / max(self.params, 1)
        if torch.cuda.is_available():
            return CPU_TOKENS_PER_SEC_PER_CORE * 8 * GPU_SPEEDUP * scale
        return CPU_TOKENS_PER_SEC_PER_CORE * max(torch.get_num_threads(), 1) * scale

    def forward_seconds(self) -> float:
        """One frozen pass over every split: a forward pass is a third of a training step's cost per token
        (measured: 4,900 against 1,565 tokens/s for the default encoder, BENCHMARKS.md "estimates")."""
        return (self.train_tokens + self.eval_tokens) / (3 * self.rate())

    def eval_seconds(self, validation_passes: float) -> float:
        """Evaluating a run that trains the encoder: ``validation_passes`` over validation, one over test."""
        test_tokens = self.eval_tokens - self.validation_tokens
        return (validation_passes * self.validation_tokens + test_tokens) / (3 * self.rate())

    @property
    def weights_mb(self) -> float:
        return self.params * 4 / 2**20

    @property
    def activations_mb(self) -> float:
        """A batch of 32 x 128 tokens, ~20 saved tensors per layer, fp32."""
        return 32 * 128 * self.hidden * max(self.layers, 1) * 20 * 4 / 2**20


@dataclass
class Estimate:
    strategy: str
    seconds: float
    memory_mb: float
    trainable_params: int
    note: str = ""


@dataclass
class RunContext:
    cfg: TrainConfig
    encoder: Encoder
    task: Task
    splits: Any  # steps.Splits
    prepared: dict[str, Prepared]  # "train", "validation", optionally "test": model inputs and targets
    precision: str
    checkpoints: Checkpointer | None = None  # --checkpoint-every / --resume
    deadline: float | None = None  # time.monotonic() when the --budget ladder's time is up
    log: Any = None  # log(phase, values, step) of the run's experiment trackers (--report-to), or None

    def keep_best(self) -> bool:
        """Rank evaluations (and stop early) only on a validation split big enough to rank with: a split
        carved from a few dozen training rows moves by whole examples and would end training at noise."""
        if self.cfg.keep != "auto":
            return self.cfg.keep == "best"
        return not (self.splits.validation_carved and len(self.splits.validation) < SMALL_VALIDATION)

    def loop_config(self, epochs: int, lr: float, description: str, **overrides) -> LoopConfig:
        """The loop settings every trainable strategy shares, from the run's config."""
        from ..training.loop import LoopConfig  # lazy: the loop imports torch (~2 s)

        cfg, keep = self.cfg, self.keep_best()
        settings = dict(epochs=epochs, lr=lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                        grad_accum=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, patience=cfg.patience,
                        eval_every=cfg.eval_every, precision=self.precision, seed=cfg.seed,
                        max_tokens_per_batch=cfg.max_tokens_per_batch, description=description,
                        deadline=self.deadline, keep_best=keep, early_stopping=keep, log=self.log,
                        whole_batch_loss=self.task.whole_batch_loss)
        settings.update(overrides)
        return LoopConfig(**settings)

    def head_from_labels(self) -> bool:
        return head_from_labels(self.cfg, self.task)

    def build_head(self, unit: bool = False):
        """The task's head, started from the label descriptions when ``head_from_labels``; else, with
        ``unit`` and a task whose heads can, a linear head on unit-length vectors (``heads.UnitNorm``).
        Returns (head, label embeddings or None)."""
        cfg, task = self.cfg, self.task
        if not self.head_from_labels():
            if unit and task.unit_heads and task.pair_mode != "bi":
                task.options["head"] = "unit"
            else:
                task.options.pop("head", None)
            head = task.build_head(self.encoder.hidden_size, cfg.dropout)
            task.start_head(head, self.encoder, self.prepared["train"])
            return head, None

        task.options["head"] = "cosine"
        head = task.build_head(self.encoder.hidden_size, cfg.dropout)
        emb = label_embeddings(self.encoder, task, cfg.labels, cfg.template, self.precision)
        init_head_from_labels(head, emb)
        return head, emb

    @property
    def tokens(self) -> dict:
        return {k: p.tokens for k, p in self.prepared.items()}

    @property
    def targets(self) -> dict:
        return {k: p.targets for k, p in self.prepared.items()}

    def examples(self, split: str):
        return {"train": self.splits.train, "validation": self.splits.validation, "test": self.splits.test}[split]

    def score(self, outputs, split: str = "validation") -> float:
        return self.task.score_outputs(outputs, self.prepared[split], self.examples(split))


@dataclass
class StrategyResult:
    head: Any  # nn.Module
    loop: LoopResult
    encoder_trained: bool
    features: dict[str, Any] = field(default_factory=dict)  # split -> pooled features (N, H)
    outputs: dict[str, Any] = field(default_factory=dict)  # split -> model outputs of the kept weights, fp32
    costs: dict = field(default_factory=dict)
    encoder: Encoder | None = None  # the encoder the head sits on, when not the run's (a ladder rung's copy)


class Strategy:
    name: ClassVar[str]
    summary: ClassVar[str] = ""  # what trains, in a few words (help, advise)
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    epochs: ClassVar[int]
    lr: ClassVar[float]
    batch_size: ClassVar[int]
    step_floor: ClassVar[bool] = False  # default epochs raised so a small train set gets MIN_STEPS steps
    # --budget ladder: rungs are tried by rank, cheapest first (None: not a rung)
    ladder_rank: ClassVar[int | None] = None
    # the advisor (--strategy auto without --budget) picks, among the strategies that apply and fit the
    # budget, the one of highest auto_rank whose min_per_class the smallest class meets (None: never picked)
    auto_rank: ClassVar[int | None] = None
    min_per_class: ClassVar[int] = 0
    max_per_class: ClassVar[int | None] = None  # the ladder skips it above this smallest class (None: no limit)
    frozen_features: ClassVar[bool] = False  # the encoder stays frozen and is pooled once (--layer best)
    trains: ClassVar[bool] = True  # False: nothing is fitted to the examples (the ladder always runs one that is)

    def run(self, ctx: RunContext) -> StrategyResult:
        raise NotImplementedError

    # ---- what the advisor and the ladder ask ------------------------------------------------------------
    @classmethod
    def applies(cls, task: Task, cfg: TrainConfig, smallest_class: int | None) -> str | None:
        """Why this strategy cannot run on this task and data, or None when it can."""
        return None

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        """Time, peak memory and trainable parameters of a run on ``facts``."""
        raise NotImplementedError

    @classmethod
    def select_trainable(cls, cfg: TrainConfig, network, n_layers: int) -> None:
        """Set ``requires_grad`` on the encoder's ``network`` (its head always trains): nothing here; ``full``,
        ``partial`` and ``lora`` choose theirs. The run and the advisor's count both call it."""

    @classmethod
    def trains_head(cls) -> bool:
        return cls.trains

    @classmethod
    def trainable_params(cls, facts: CostFacts) -> int | None:
        """The parameters a run trains, counted by applying ``select_trainable`` to the encoder's skeleton (the
        code the run uses), plus the head's; None without a skeleton."""
        if facts.network is None:
            return None
        facts.network.requires_grad_(False)
        cls.select_trainable(facts.options, facts.network, facts.layers)
        body = sum(p.numel() for p in facts.network.parameters() if p.requires_grad)
        return body + (facts.head_params if cls.trains_head() else 0)

    @classmethod
    def epochs_for(cls, facts: CostFacts) -> int:
        """The epochs a run on ``facts`` would train (the user's, the task's, or this strategy's default)."""
        if facts.options is None:
            return cls.epochs
        return cls().hyper(facts.options, facts.task, facts.train_examples)[0]

    @classmethod
    def options(cls, cfg: TrainConfig) -> StrategyOptions:
        """This strategy's options, as the run's config holds them."""
        return cls.Options(**{k: getattr(cfg, k) for k in cls.Options.model_fields})

    def hyper(self, cfg: TrainConfig, task: Task | None = None, n_train: int | None = None) -> tuple[int, float, int]:
        """Epochs, learning rate and batch size: the user's when given, else the task's for this
        strategy, else this strategy's. Without ``--epochs``, a strategy with a step floor trains a small
        set for at least MIN_STEPS optimizer steps (3 epochs of 64 examples would be 6 steps)."""
        d = task.defaults.get(self.name, {}) if task is not None else {}
        epochs, lr = cfg.epochs or d.get("epochs", self.epochs), cfg.lr or d.get("lr", self.lr)
        batch_size = cfg.batch_size or d.get("batch_size", self.batch_size)
        if self.step_floor and not cfg.epochs and n_train:
            steps_per_epoch = -(-n_train // (batch_size * cfg.grad_accum))
            epochs = max(epochs, min(MAX_FLOOR_EPOCHS, -(-MIN_STEPS // steps_per_epoch)))
        return epochs, lr, batch_size

    def resolved(self, cfg: TrainConfig, task: Task, n_train: int) -> dict:
        """The settings this strategy ran with where the config left them to it (None in the config: "the
        strategy's default"), for the run's config.json."""
        epochs, lr, batch_size = self.hyper(cfg, task, n_train)
        return {"epochs": epochs, "lr": lr, "batch_size": batch_size}

    # ---- what its model folder holds ----------------------------------------------------------------
    @classmethod
    def write_encoder(cls, encoder: Encoder, folder: Path, trained: bool) -> dict:
        """Write the encoder into ``folder`` (a model folder's ``encoder/``); returns what enctune.json should
        add. An encoder that did not train keeps its source's files, linked rather than written again."""
        if trained or not link_encoder_files(encoder.source, folder):
            encoder.model.save_pretrained(folder, safe_serialization=True)
        return {}

    @classmethod
    def read_encoder(cls, encoder: Encoder, model_folder: Path, meta: dict, precision: str) -> None:
        """Put back on a loaded encoder what ``write_encoder`` kept beside it (nothing, by default)."""

    @classmethod
    def plain_encoder(cls, encoder: Encoder) -> bool:
        """Turn the encoder into a plain network of the source's architecture, for export (nothing to do by
        default); True when something changed."""
        return False


def link_encoder_files(source: str, dst: Path) -> bool:
    """The config and safetensors weights of an encoder that did not change, linked (or copied) from its source
    folder rather than serialised again. False when the source has no safetensors."""
    src = Path(source)
    weights = sorted(src.glob("*.safetensors")) if src.is_dir() else []
    if not weights or not (src / "config.json").is_file():
        return False
    dst.mkdir(parents=True, exist_ok=True)
    for f in [src / "config.json", *weights, *src.glob("*.safetensors.index.json")]:
        try:
            os.link(f, dst / f.name)  # same bytes, no copy: safetensors files are never modified in place
        except OSError:
            shutil.copy2(f, dst / f.name)
    return True


def head_from_labels(cfg: TrainConfig, task: Task) -> bool:
    """Whether the head starts from the label descriptions: ``--init-head labels``, or ``auto`` with
    ``--labels`` given, for a task whose heads can."""
    want = cfg.init_head == "labels" or (cfg.init_head == "auto" and cfg.labels is not None)
    if want and not task.label_heads:
        if cfg.init_head == "labels":
            raise UserError(f"--init-head labels: the '{task.name}' task has no head that starts from label "
                            "descriptions.")
        return False
    return want


def one_input_classes(task: Task, strategy: str, what: str) -> str | None:
    """Why ``task`` is not one class per example from one input (what zeroshot and fewshot compare), or None."""
    if task.label_space != "classes":
        return (f"--strategy {strategy} {what}: only for tasks with one class per example, not '{task.name}'. "
                "Use --strategy probe or full.")
    if task.pair_mode == "bi":
        return (f"--strategy {strategy} takes one input per example; text pairs encoded apart (--pair-mode bi) "
                "give two. Use --pair-mode cross, or --strategy probe or full.")
    return None


def count_params(module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total


def all_but_word_embeddings(network, freeze_embeddings: bool) -> None:
    """Every weight of ``network`` trains, but (with ``freeze_embeddings``, the default) the word embeddings."""
    network.requires_grad_(True)
    if freeze_embeddings:
        # The word-embedding matrix is half of a small encoder's parameters; rows of words absent from
        # the task data get no gradient anyway, and keeping it fixed saves its dense gradient and
        # optimizer state on every step.
        emb = network.get_input_embeddings()
        if emb is not None:
            emb.weight.requires_grad_(False)


def layers_trained(n_layers: int, unfreeze: int | None) -> int:
    """The top layers ``partial`` trains: ``unfreeze``, or a third of them (at least one)."""
    return unfreeze or max(1, math.ceil(max(n_layers, 1) / 3))
