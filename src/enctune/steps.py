"""The steps of a run, each a function with typed inputs and outputs.

    load_splits     read and check: the data's files, the task (named or detected), checked examples
    load_encoder    resolve the encoder: tokenizer and config now, the network on first use
    prepare         tokenize every split and encode its targets
    choose          the strategy: as named, the advisor's pick, or (with --budget) the ladder's rungs
    adapt           run the strategy (or climb the ladder) through the one training loop
    evaluate        model outputs on validation and test, what is fitted on validation, the scores
    repeated        adapt and evaluate with N seeds (--repeats): the spread of every score, the best kept
    calibrate       a temperature fitted on validation, kept only when it lowers validation ECE

``api.train`` runs them in this order and writes the run folder; cross-validation, ``advise``
and the ladder use the same functions. Raises ``UserError`` for every mistake the user can fix.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import progress
from .calibrate import calibration_report, fit_temperature
from .config import TrainConfig, budget_seconds
from .data import Columns, Examples, carve_validation, overlap_warnings, read_table, split_files
from .encoders.resolve import refuse_lora_run
from .errors import UserError
from .phases import Phases
from .retrieval import Corpus, corpus_metrics, is_beir_folder, read_beir
from .strategies import STRATEGIES, CostFacts, Estimate, RunContext, StrategyResult
from .strategies.advisor import applicable, choose_strategy, estimates, smallest_class
from .strategies.ladder import run_ladder
from .tasks import Prepared, Task, detect_task, get_task


@dataclass
class Splits:
    """The checked data of a run: examples per split, the columns they came from, and the task fitted on
    train (label map, target statistics)."""

    train: Examples
    validation: Examples
    test: Examples | None
    columns: Columns
    task: Task
    validation_carved: bool = False
    files: dict[str, str] = field(default_factory=dict)
    task_reason: str = ""
    corpus: Corpus | None = None  # a retrieval folder's documents and judgements: test ranks the whole corpus

    @property
    def labels(self) -> list:
        return self.task.labels

    @property
    def label_type(self) -> str:
        return self.task.label_type

    def named(self) -> dict[str, Examples | None]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def load_splits(data: str | Path, validation: str | Path | None = None, test: str | Path | None = None,
                text_column: str | None = None, pair_column: str | None = None, label_column: str | None = None,
                validation_fraction: float = 0.1, seed: int = 42, task: str | None = None,
                task_options: dict | None = None) -> Splits:
    """Read and check every split through the task (``task`` None or "auto": the data's shape decides); a
    validation split is carved from train (seeded, stratified) when none is given. A retrieval folder
    (corpus.jsonl, queries.jsonl, qrels/) gives its judged pairs as the splits and is kept as ``corpus``."""
    if is_beir_folder(data):
        return _corpus_splits(Path(data), text_column, pair_column, label_column, validation_fraction, seed, task,
                              task_options)
    files = split_files(data, validation, test)
    train_table = read_table(files["train"])
    if task in (None, "auto"):
        task, reason = detect_task(train_table, text_column, pair_column, label_column)
    else:
        reason = "chosen with --task"
    t = get_task(task)(**(task_options or {}))
    columns = t.infer_columns(train_table, text_column, pair_column, label_column)
    train = t.read(train_table, columns)
    t.fit(train, columns.label)
    t.resolve_pair_mode(train.pairs is not None)

    def other(split: str) -> Examples | None:
        if split not in files:
            return None
        table = read_table(files[split])
        ex = t.read(table, t.infer_columns(table, columns.text, columns.pair, columns.label))
        t.check(ex, columns.label)
        return ex

    val, tst = other("validation"), other("test")
    carved = val is None
    if carved:
        train, val = carve_validation(train, validation_fraction, seed, t.stratify_key(train))
    overlap_warnings(train, tst, files)
    return Splits(train, val, tst, columns, t, carved, {k: str(v) for k, v in files.items()}, reason)


def _corpus_splits(folder: Path, text_column, pair_column, label_column, validation_fraction: float, seed: int,
                   task: str | None, options: dict | None) -> Splits:
    corpus = read_beir(folder)
    tables = {split: corpus.pairs(split) for split in ("train", "validation", "test")}
    if tables["train"] is None:
        raise UserError(f"{folder / 'qrels'}: no train.tsv, so nothing to train on (a folder with test judgements "
                        "alone is for `enctune evaluate`).")
    reason = "chosen with --task" if task not in (None, "auto") else "a retrieval folder (corpus, queries, qrels)"
    t = get_task("retrieve" if task in (None, "auto") else task)(**(options or {}))
    columns = t.infer_columns(tables["train"], text_column, pair_column, label_column)
    read_split = {k: t.read(v, columns) for k, v in tables.items() if v is not None}
    t.fit(read_split["train"], columns.label)
    t.resolve_pair_mode(True)
    train, val = read_split["train"], read_split.get("validation")
    carved = val is None
    if carved:
        train, val = carve_validation(train, validation_fraction, seed, None)
    files = {k: str(corpus.qrels_files[k]) for k in tables if tables[k] is not None}
    return Splits(train, val, read_split.get("test"), columns, t, carved, files, reason, corpus)


def task_options(cfg: TrainConfig) -> dict:
    """What the task is built with beyond its labels (the rest of its state is fitted on train)."""
    opts = {"pair_mode": cfg.pair_mode}
    for k in ("label_delimiter", "at_least_one", "max_answer_length", "doc_stride", "matryoshka_dims",
              "negatives"):
        v = getattr(cfg, k)
        if v is not None:
            opts[k] = v
    return opts


def read(cfg: TrainConfig) -> Splits:
    """``load_splits`` with the run's settings."""
    return load_splits(cfg.data, cfg.validation, cfg.test, cfg.text_column, cfg.text_pair_column, cfg.label_column,
                       cfg.validation_fraction, cfg.seed, cfg.task, task_options(cfg))


def load_encoder(cfg: TrainConfig, task: Task, layer: int | None = None, lazy: bool = True):
    """The run's encoder, laid out for the task (a per-token task pads on the right). Lazy: a probe whose
    features are all cached never needs the network, only its tokenizer and config."""
    from .encoders.encoder import Encoder  # lazy: torch (~2 s), which the help text never needs

    refuse_lora_run(cfg.model)
    if cfg.trust_remote_code:
        warnings.warn("--trust-remote-code: the encoder's own code runs in this training run; the model folder "
                      "it writes keeps that code, which enctune's predict, evaluate, serve and export never run, "
                      "so they will refuse the folder.", UserWarning, stacklevel=2)
    if layer is None:
        layer = -1 if cfg.layer == "best" else cfg.layer
    encoder = Encoder.load(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length, layer=layer,
                           trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle, lazy=lazy)
    if task.padding_side is not None:
        encoder.tokenizer.padding_side = task.padding_side
    return encoder


def prepare(task: Task, encoder, splits: Splits, class_weights: str = "none") -> dict[str, Prepared]:
    """Model inputs and targets of every split; warns how many texts were cut at the encoder's max length.
    ``class_weights`` "balanced" sets the task's loss weights from train."""
    prepared = {k: task.prepare(encoder, ex) for k, ex in splits.named().items() if ex is not None}
    truncated = {k: p.tokens.truncated for k, p in prepared.items()}
    if any(truncated.values()):
        warnings.warn(f"texts cut at --max-length {encoder.max_length} tokens: "
                      + ", ".join(f"{k} {v}" for k, v in truncated.items() if v), UserWarning, stacklevel=2)
    if class_weights == "balanced":
        task.class_weights = task.balanced_weights(prepared["train"].targets)
    return prepared


def cost_facts(cfg: TrainConfig, task: Task, encoder, prepared: dict[str, Prepared],
               precision: str | None = None) -> CostFacts:
    """What the strategies' cost estimates read, measured on this run's data and encoder. With ``precision`` (the
    advisor is choosing) also what choosing needs: the training rate (``training.rate``: a few steps of the
    encoder, under a second for the default) and the network's skeleton, on which each strategy counts exactly
    what it would train. A named strategy skips both: its run counts its own, and the skeleton imports the
    network's modeling code (~3 s), which a probe reading cached features never needs (a warm probe took 10.0
    against 6.0 s with it, examples/sst2, 2 AVX2 cores); its recorded estimates then count by formula."""
    import torch  # lazy: torch (~2 s), loaded by any run that gets here

    from .training.rate import measured_rate  # lazy: torch (~2 s)

    # what is built and run here draws from torch's generator (initial weights, dropout): on a fork of it, so that
    # the run trains as it would have without the estimate
    with torch.random.fork_rng(devices=[]):
        network = encoder.skeleton() if precision is not None else None
        head_params = sum(p.numel() for p in task.build_head(encoder.hidden_size, 0.0).parameters())
        rate = None
        if precision is not None and not torch.cuda.is_available():  # on a GPU, the CPU's rate says nothing
            rate = measured_rate(encoder.model, precision, float(prepared["train"].tokens.lengths().mean()))
    params = sum(p.numel() for p in network.parameters()) if network is not None else encoder.num_params()
    return CostFacts(train_tokens=int(prepared["train"].tokens.lengths().sum()),
                     eval_tokens=sum(int(p.tokens.lengths().sum()) for k, p in prepared.items() if k != "train"),
                     train_examples=len(prepared["train"]), params=params, layers=encoder.num_layers,
                     hidden=encoder.hidden_size, labels=max(len(task.labels), 1), level=task.level, task=task,
                     options=cfg, network=network, head_params=head_params, measured_rate=rate,
                     validation_tokens=int(prepared["validation"].tokens.lengths().sum()))


@dataclass
class Choice:
    strategy: str  # a strategy's name, or "auto" for the ladder
    reason: str
    estimates: dict[str, Estimate]
    budget: float | None  # seconds
    not_applicable: dict[str, str] = field(default_factory=dict)  # strategy -> why it does not apply


def choose(cfg: TrainConfig, splits: Splits, facts: CostFacts, where: str = "this machine",
           ladder: bool = True) -> Choice:
    """The strategy to run: the one named, or the advisor's pick within the budget; with --budget and auto (and
    ``ladder``), the ladder."""
    smallest = smallest_class(splits.task, splits.train)
    why_not = {k: v for k, v in applicable(splits.task, cfg, smallest).items() if v}
    est = estimates(facts, [n for n in STRATEGIES if n not in why_not])
    budget = budget_seconds(cfg.budget) if cfg.budget else None
    if cfg.strategy != "auto":
        if cfg.strategy in why_not:
            raise UserError(why_not[cfg.strategy])
        return Choice(cfg.strategy, "chosen with --strategy", est, budget, why_not)
    if budget is not None and ladder:
        return Choice("auto", f"a ladder within {cfg.budget}", est, budget, why_not)
    name, reason = choose_strategy(splits.task, smallest, est, budget, where)
    return Choice(name, reason, est, budget, why_not)


@dataclass
class Adapted:
    result: StrategyResult
    strategy: str
    reason: str
    table: list[dict] | None = None  # the ladder's rungs


def adapt(ctx: RunContext, choice: Choice) -> Adapted:
    """Run the chosen strategy (under its time limit when --budget names one), or climb the ladder."""

    if choice.strategy == "auto":
        result, name, reason, table = run_ladder(ctx, choice.budget, choice.estimates, split_outputs)
        progress.info(f"strategy {name}: {reason}")
        return Adapted(result, name, reason, table)
    if choice.budget is not None:  # one strategy under a time limit: training stops at the deadline
        ctx.deadline = time.monotonic() + choice.budget
    return Adapted(STRATEGIES[choice.strategy]().run(ctx), choice.strategy, choice.reason)


def split_outputs(result: StrategyResult, ctx: RunContext, split: str):
    """Model outputs on one split: from cached features when the encoder stayed frozen, else a forward
    pass (each process scores its share of the rows)."""
    from . import distributed  # lazy: torch (~2 s)
    from .model import TaskModel, batched_logits, head_logits  # lazy: torch (~2 s)

    if split in result.outputs:  # computed by the loop with the kept weights
        return result.outputs[split]
    if split in result.features:
        return head_logits(result.head, result.features[split])
    encoder = result.encoder or ctx.encoder
    model = TaskModel(encoder, result.head, ctx.task.level)
    tokens = ctx.prepared[split].tokens
    return distributed.gather_rows(len(tokens), lambda idx: batched_logits(
        model, encoder, tokens.subset(idx), 256, "fp32"))


@dataclass
class Evaluation:
    outputs: dict[str, Any]  # split -> model outputs
    scores: dict[str, dict]  # split -> metrics
    fitted: dict  # what was fitted on validation (thresholds...)


def evaluate(ctx: RunContext, result: StrategyResult) -> Evaluation:
    """Outputs on validation and test, what the task fits on validation once the weights are final, scores."""
    named = ctx.splits.named()
    outputs = {s: split_outputs(result, ctx, s) for s in ("validation", "test") if named[s] is not None}
    fitted = ctx.task.after_fit(outputs["validation"], ctx.prepared["validation"], named["validation"])
    scores = {s: ctx.task.evaluate_outputs(out, ctx.prepared[s], named[s]) for s, out in outputs.items()}
    corpus = ctx.splits.corpus
    if corpus is not None and not ctx.task.has_head and "test" in corpus.qrels:
        # an embedding's test: its queries rank the whole corpus, scored by the graded judgements
        scores["test"] = corpus_metrics(lambda texts: _embedded(result, ctx, texts), corpus, "test")
    return Evaluation(outputs, scores, fitted)


def _embedded(result: StrategyResult, ctx: RunContext, texts: list[str]) -> np.ndarray:
    """The trained model's vectors (N, H) of single texts (its head included), in fp32."""
    from .model import TaskModel, batched_logits  # lazy: torch (~2 s)

    encoder = result.encoder or ctx.encoder
    model = TaskModel(encoder, result.head, ctx.task.level)
    with progress.bar("embed", total=len(texts)) as pbar:
        return batched_logits(model, encoder, encoder.tokenize(texts), 256, "fp32", progress=pbar)


# a temperature fitted and judged on fewer validation rows is noise: on a 2-row split carved from 16 examples, one
# that lowered validation ECE 0.176 -> 0.003 raised test ECE 0.017 -> 0.156 (SST-2, 1,821 test rows)
MIN_CALIBRATION_ROWS = 30


def calibrate(task: Task, evaluation: Evaluation, prepared: dict[str, Prepared], wanted: bool) -> dict | None:
    """Temperature scaling for a task with softmax outputs (``--calibrate``): the report of the temperature
    fitted on validation, with ``kept`` saying whether it lowered the validation ECE on at least
    ``MIN_CALIBRATION_ROWS`` rows (else the run keeps T = 1, and ``why_not_kept`` says why: a temperature that
    makes validation worse, or that a handful of rows chose, is not calibration)."""
    if not (wanted and task.calibrates):
        return None

    targets = {k: np.asarray(prepared[k].targets) for k in evaluation.outputs}
    temperature = fit_temperature(evaluation.outputs["validation"], targets["validation"])
    report = calibration_report(temperature, evaluation.outputs, targets)
    val = report["validation"]
    rows = len(targets["validation"])
    report["kept"] = bool(val["ece_after"] < val["ece_before"] and rows >= MIN_CALIBRATION_ROWS)
    if not report["kept"]:
        report["why_not_kept"] = (f"validation has {rows} rows, too few to fit or judge a temperature (at least "
                                  f"{MIN_CALIBRATION_ROWS})" if rows < MIN_CALIBRATION_ROWS
                                  else "it did not lower the validation ECE")
    return report


@dataclass
class Outcome:
    """The run kept: its context (encoder, task), what the strategy returned, its evaluation; with --repeats,
    the spread of every score over the seeds."""

    ctx: RunContext
    adapted: Adapted
    evaluation: Evaluation
    repeats: dict | None = None


def repeated(ctx: RunContext, choice: Choice, repeats: int = 1, phases: Phases | None = None) -> Outcome:
    """Adapt and evaluate ``repeats`` times, with seeds seed, seed + 1, ... (the data split stays the one the
    run's seed made): every score's mean, standard deviation and values go into the report, and the run with
    the best validation score is kept. On a validation split of a few dozen rows one score is noise; the
    spread says how much. ``phases`` times training (the loop's validation passes apart) and evaluation."""
    phases = phases or Phases()
    outcomes, as_read = [], copy.deepcopy(ctx.task) if repeats > 1 else None
    for i in range(repeats):
        run = ctx if i == 0 else _reseeded(ctx, as_read, ctx.cfg.seed + i)
        if repeats > 1 and ctx.log is not None:  # each seed's curves apart in the trackers
            run = dataclasses.replace(run, log=_prefixed(ctx.log, f"seed {run.cfg.seed}/"))
        with phases("train"):
            adapted = adapt(run, choice)
            run.task.record_head(adapted.result.head)
        phases.move(adapted.result.loop.eval_seconds, "train", "validation_passes")
        with phases("evaluate"):
            evaluation = evaluate(run, adapted.result)
        outcomes.append((run.score(evaluation.outputs["validation"]), -i, Outcome(run, adapted, evaluation)))
        if repeats > 1:
            progress.info(f"repeat {i + 1}/{repeats} (seed {run.cfg.seed}): validation "
                          f"{run.task.primary_metric} {outcomes[-1][0]:.4f}")
    kept = max(outcomes, key=lambda o: o[:2])[2]
    if repeats > 1:
        kept.repeats = _spread([o[2] for o in outcomes], kept.ctx.cfg.seed)
    return kept


def _prefixed(log, prefix: str):
    return lambda phase, values, step: log(prefix + phase, values, step)


def _reseeded(ctx: RunContext, as_read: Task, seed: int) -> RunContext:
    """A fresh start for another repeat: the seed, a newly loaded encoder, the task as read (not as the last
    repeat fitted it), no checkpoints."""
    from .training.seed import seed_all  # lazy: torch (~2 s), loaded by any run that gets here

    seed_all(seed)
    cfg = ctx.cfg.model_copy(update={"seed": seed})
    task = copy.deepcopy(as_read)
    return dataclasses.replace(ctx, cfg=cfg, task=task, splits=dataclasses.replace(ctx.splits, task=task),
                               encoder=load_encoder(cfg, task, layer=ctx.encoder.layer), checkpoints=None,
                               deadline=None)


def _spread(outcomes: list[Outcome], kept_seed: int) -> dict:
    """Per split and top-level score: mean, standard deviation (ddof 1) and the values, in seed order."""
    out: dict = {"seeds": [o.ctx.cfg.seed for o in outcomes], "kept_seed": kept_seed}
    for split in ("validation", "test"):
        names = [k for k, v in (outcomes[0].evaluation.scores.get(split) or {}).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if names:
            values = {k: [float(o.evaluation.scores[split][k]) for o in outcomes] for k in names}
            out[split] = {k: {"mean": round(float(np.mean(v)), 6), "std": round(float(np.std(v, ddof=1)), 6),
                              "values": [round(x, 6) for x in v]} for k, v in values.items()}
    return out

