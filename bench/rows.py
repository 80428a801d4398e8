"""The rows of the benchmark: what runs side by side, on which data, and what is compared.

A row is a set of *points* (one for most rows; one per data set, size and length for
``growth``) and, at each point, the *variants* compared there. ``Row.cases(rep)`` lists the
runs of one repetition in order, so the orchestrator interleaves the variants (rep 1: A, B,
C; rep 2: A, B, C; ...) and slow drift of the machine (thermal, other load) spreads evenly
over them instead of biasing whichever variant ran last.

Rows (SST-2 and the default encoder unless said otherwise; batch 32, seed 42):

- ``full``: full fine-tuning for one epoch, lr 1e-4, warm-up 0.1: ``enctune_full`` against
  ``Trainer`` padded to 128 (``trainer_pad128``) and ``Trainer`` at its best
  (``trainer_best``: dynamic padding, length grouping, bf16 only where native). Train
  examples/s, test accuracy, wall time, peak memory, FLOP rate and MFU.
- ``probe``: a frozen encoder. enctune's probe with an empty feature cache
  (``enctune_probe_cold``), then again on the now warm cache (``enctune_probe_warm``),
  against ``Trainer`` with the encoder frozen (``trainer_frozen``, 3 epochs, lr 1e-3) and
  sentence-transformers + logistic regression (``st_logreg``). Wall time end to end, accuracy.
- ``predict``: one Hugging Face classification folder (trained once in the row's set-up with
  the ``trainer_best`` recipe) labels the SST-2 test texts through ``pipeline``,
  ``enctune.load(folder)`` and ``enctune.load(folder, precision="fastest")``. Examples/s and
  label agreement with the pipeline.
- ``growth``: ``enctune_full`` against ``trainer_best`` as the train set grows and as the
  maximum length grows, on several data sets. Train time and peak memory per point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .data import growth_pool, write_growth_subset, write_quick_subset
from .runner import Runner

QUICK_SIZES = {"train": 300, "validation": 100, "test": 200}
QUICK_GROWTH = {"sizes": [100], "lengths": [32], "sweep_size": 100, "n_val": 50}
FULL_GROWTH = {"sizes": [1000, 2000, 4000, 8000], "lengths": [32, 64, 128, 256], "sweep_size": 2000, "n_val": 200}


@dataclass
class Settings:
    repo: Path
    data_root: Path
    work: Path
    quick: bool
    encoder: str
    runner: Runner
    datasets: list[str]
    sizes: list[int]
    lengths: list[int]
    sweep_size: int
    n_val: int
    predict_model: Path | None = None  # reuse this classification folder in the predict row
    _folders: dict = field(default_factory=dict)

    def sst2(self) -> Path:
        """SST-2 as the rows use it: the shared folder, or a small subset with ``--quick``."""
        if not self.quick:
            return self.data_root / "sst2"
        if "sst2" not in self._folders:
            self._folders["sst2"] = write_quick_subset(self.data_root / "sst2", self.work / "data" / "sst2-quick",
                                                       QUICK_SIZES["train"], QUICK_SIZES["validation"],
                                                       QUICK_SIZES["test"])
        return self._folders["sst2"]


@dataclass
class Metric:
    key: str
    header: str
    better: str | None = None  # "higher", "lower" or None (context only)


@dataclass
class Ratio:
    """``num_variant.num_metric / den_variant.den_metric`` (or their difference), per point."""

    label: str
    num_variant: str
    den_variant: str
    num_metric: str
    den_metric: str | None = None
    kind: str = "ratio"  # or "diff"
    better: str | None = None

    @property
    def den(self) -> str:
        return self.den_metric or self.num_metric


@dataclass
class Case:
    point: str
    variant: str
    args: dict


@dataclass
class Row:
    name: str
    description: str
    metrics: list[Metric]
    ratios: list[Ratio]
    make_cases: Callable[[int], list[Case]]
    setup: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    postprocess: Callable[[list[dict]], None] | None = None

    def cases(self, rep: int) -> list[Case]:
        return self.make_cases(rep)


TRAIN_METRICS = [
    Metric("train_examples_per_second", "train ex/s", "higher"),
    Metric("train_examples_per_second_excl_eval", "train ex/s excl. eval", "higher"),
    Metric("train_seconds", "train s", "lower"),
    Metric("gflops_per_second", "GFLOP/s (6N x real tokens)", "higher"),
    Metric("mfu", "MFU vs fp32 GEMM", "higher"),
    Metric("peak_rss_mb", "peak RSS MB", "lower"),
]


def plan_full(s: Settings) -> Row:
    data = str(s.sst2())
    peers = ("trainer_pad128", "trainer_best")
    ratios = []
    for peer in peers:
        ratios += [
            Ratio(f"train ex/s, enctune_full / {peer}", "enctune_full", peer, "train_examples_per_second",
                  better="higher"),
            Ratio(f"train ex/s excl. enctune's eval, enctune_full / {peer}", "enctune_full", peer,
                  "train_examples_per_second_excl_eval", "train_examples_per_second", better="higher"),
            Ratio(f"wall s, enctune_full / {peer}", "enctune_full", peer, "wall_seconds", better="lower"),
            Ratio(f"peak RSS, enctune_full / {peer}", "enctune_full", peer, "peak_rss_mb", better="lower"),
            Ratio(f"test accuracy, enctune_full - {peer}", "enctune_full", peer, "test_accuracy", kind="diff",
                  better="higher"),
        ]
    variants = ("enctune_full", *peers)
    return Row(
        name="full",
        description="Full fine-tuning, SST-2, 1 epoch, batch 32, lr 1e-4, warm-up 0.1, seed 42.",
        metrics=TRAIN_METRICS[:3] + [Metric("test_accuracy", "test acc", "higher"),
                                     Metric("wall_seconds", "wall s", "lower")] + TRAIN_METRICS[3:] + [
            Metric("train_tokens", "real train tokens"), Metric("precision", "precision")],
        ratios=ratios,
        make_cases=lambda rep: [Case("", v, {"data": data, "encoder": s.encoder}) for v in variants],
        notes=["enctune's train_seconds includes its validation passes (twice an epoch); the Trainer peers do not "
               "evaluate while training. 'excl. eval' appears when enctune reports eval_seconds.",
               "GFLOP/s = 6 x encoder non-embedding params x real (non-pad) train tokens / train seconds "
               "(excl. eval when known); padding is wasted work and is not counted.",
               "trainer_best truncates at 256 tokens (enctune's default max length); trainer_pad128 at 128."],
    )


def plan_probe(s: Settings) -> Row:
    data = str(s.sst2())

    def cases(rep: int) -> list[Case]:
        cache = s.work / f"probe-cache-rep{rep}"
        cache.mkdir(parents=True, exist_ok=False)  # empty: the cold run fills it, the warm run reads it
        enc = {"data": data, "encoder": s.encoder, "env": {"ENCTUNE_CACHE": str(cache)}}
        peer = {"data": data, "encoder": s.encoder}
        return [Case("", "enctune_probe_cold", enc), Case("", "enctune_probe_warm", enc),
                Case("", "trainer_frozen", peer), Case("", "st_logreg", peer)]

    ratios = []
    for peer in ("trainer_frozen", "st_logreg"):
        for run in ("enctune_probe_cold", "enctune_probe_warm"):
            ratios.append(Ratio(f"wall s, {peer} / {run} (speed-up)", peer, run, "wall_seconds", better="higher"))
    for peer in ("st_logreg", "trainer_frozen"):
        for run in ("enctune_probe_cold", "enctune_probe_warm"):
            ratios.append(Ratio(f"test accuracy, {run} - {peer}", run, peer, "test_accuracy", kind="diff",
                                better="higher"))
    return Row(
        name="probe",
        description="Frozen encoder, SST-2: enctune probe (cold and warm feature cache) vs Trainer with a frozen "
                    "encoder (3 epochs, lr 1e-3) vs sentence-transformers + LogisticRegression.",
        metrics=[Metric("wall_seconds", "wall s", "lower"), Metric("test_accuracy", "test acc", "higher"),
                 Metric("validation_accuracy", "val acc", "higher"), Metric("cache_hits", "cache hits"),
                 Metric("peak_rss_mb", "peak RSS MB", "lower")],
        ratios=ratios,
        make_cases=cases,
        notes=["Each repetition uses a new, empty ENCTUNE_CACHE folder: the cold run fills it, the warm run "
               "right after reads it.",
               "Ratios here are peer / enctune wall time: above 1 means enctune is faster."],
    )


def _agreement(results: list[dict]) -> None:
    """Label agreement of every predict variant with the pipeline and with enctune_fp32 of the same repetition."""
    refs: dict[str, dict[int, list[str]]] = {"pipeline": {}, "enctune_fp32": {}}
    for r in results:
        if r["variant"] in refs and r["result"].get("labels"):
            refs[r["variant"]][r["rep"]] = r["result"]["labels"]
    for r in results:
        labels = r["result"].pop("labels", None)
        for variant, by_rep in refs.items():
            ref = by_rep.get(r["rep"])
            if labels is not None and ref is not None and len(labels) == len(ref):
                same = sum(a == b for a, b in zip(labels, ref, strict=True))
                r["result"][f"agreement_with_{variant.removeprefix('enctune_')}"] = round(same / len(ref), 4)


def plan_predict(s: Settings) -> Row:
    data = str(s.sst2())
    folder = s.work / "predict-model"
    # with --quick, 1 epoch on 300 texts can leave a constant classifier, and agreement with a constant is no check
    epochs = 3 if s.quick else 1
    if s.predict_model is not None:
        folder = s.predict_model
        setup = {"status": "ok", "reused": str(folder)}
    else:
        setup = s.runner.run("predict_setup", {"data": data, "encoder": s.encoder, "save_to": str(folder),
                                               "predict": True, "epochs": epochs}, "predict set-up")
    ok = setup["status"] == "ok"
    onnx = s.work / "predict-onnx"
    export = s.runner.run("predict_export", {"model": str(folder), "out": str(onnx),
                                             "check_data": str(Path(data) / "test.jsonl")},
                          "predict ONNX export") if ok else {"status": "skipped"}
    variants = ("pipeline", "enctune_fp32", "enctune_fast") + (
        ("enctune_onnx", "enctune_onnx_int8") if export["status"] == "ok" else ())

    def cases(rep: int) -> list[Case]:
        if not ok:
            return []
        return [Case("", v, {"data": data, "model": str(onnx if v.startswith("enctune_onnx") else folder),
                             "label_folder": str(folder)}) for v in variants]

    notes = [f"One Hugging Face sequence-classification folder, trained once with the trainer_best recipe "
             f"({epochs} epoch{'s' if epochs > 1 else ''}) and saved with its tokenizer, is used by every variant.",
             "Every variant predicts the first 8 texts once before the timed pass (warm-up).",
             "pipeline runs with batch_size=32 and with its default; the faster setting is reported.",
             "enctune_onnx / enctune_onnx_int8: `enctune export --format onnx --quantize int8` of the same folder "
             "(done once, untimed), run by onnxruntime; agreement w/ fp32 compares with enctune_fp32's labels."]
    if setup.get("reused"):
        notes.append(f"The classification folder was reused (--predict-model {setup['reused']}), not trained here.")
    if ok and export["status"] != "ok":
        notes.append(f"ONNX EXPORT FAILED, its variants did not run: {export.get('error')}")
    if not ok:
        notes.append(f"SET-UP FAILED, no variant ran: {setup.get('error')}")
    return Row(
        name="predict",
        description="Prediction on the SST-2 test texts from one Hugging Face classification folder.",
        metrics=[Metric("examples_per_second", "ex/s", "higher"), Metric("predict_seconds", "predict s", "lower"),
                 Metric("load_seconds", "load s", "lower"), Metric("test_accuracy", "test acc", "higher"),
                 Metric("agreement_with_pipeline", "agreement w/ pipeline", "higher"),
                 Metric("agreement_with_fp32", "agreement w/ enctune_fp32", "higher"),
                 Metric("peak_rss_mb", "peak RSS MB", "lower"), Metric("best_setting", "setting")],
        ratios=[Ratio(f"ex/s, {v} / pipeline", v, "pipeline", "examples_per_second", better="higher")
                for v in variants[1:]],
        make_cases=cases,
        setup={"predict_setup": setup, "predict_export": export, "n_texts_source": data},
        notes=notes,
        postprocess=_agreement,
    )


def plan_growth(s: Settings) -> Row:
    points: list[tuple[str, dict]] = []
    notes = [f"Train sets: a seeded shuffle of train, filled from validation then test when train is smaller; "
             f"enctune also gets a {s.n_val}-row validation file of unused rows (train rows when none are left).",
             f"Size sweep at max length 256 (enctune's default; trainer_best truncates at 256 too); length sweep "
             f"on {s.sweep_size} examples."]
    for ds in s.datasets:
        src = s.data_root / ds
        if not (src / "train.jsonl").is_file():
            notes.append(f"{ds}: skipped, no {src / 'train.jsonl'}")
            continue
        pool, n_train = growth_pool(src)
        folders: dict[int, Path | None] = {}

        def subset(n: int, ds=ds, pool=pool, n_train=n_train, folders=folders) -> Path | None:
            if n not in folders:
                dst = s.work / "data" / f"{ds}-n{n}"
                info = write_growth_subset(pool, n, dst, s.n_val)
                folders[n] = dst if info else None
                if info is None:
                    notes.append(f"{ds} n={n}: skipped, the data set has only {len(pool)} rows in all")
                elif n > n_train:
                    notes.append(f"{ds} n={n}: train has {n_train} rows; {n - n_train} filled from other splits")
            return folders[n]

        for n in s.sizes:
            if (folder := subset(n)) is not None:
                points.append((f"{ds} n={n}", {"data": str(folder)}))
        for length in s.lengths:
            if (folder := subset(s.sweep_size)) is not None:
                points.append((f"{ds} n={s.sweep_size} L={length}", {"data": str(folder), "max_length": length}))
    variants = ("enctune_full", "trainer_best")

    def cases(rep: int) -> list[Case]:
        return [Case(point, v, {**args, "encoder": s.encoder, "predict": False})
                for point, args in points for v in variants]

    return Row(
        name="growth",
        description="Full fine-tuning (1 epoch) as the train set and the maximum length grow: enctune_full vs "
                    "trainer_best.",
        metrics=TRAIN_METRICS,
        ratios=[Ratio("train s, enctune / trainer_best", "enctune_full", "trainer_best", "train_seconds",
                      better="lower"),
                Ratio("peak RSS, enctune / trainer_best", "enctune_full", "trainer_best", "peak_rss_mb",
                      better="lower")],
        make_cases=cases,
        setup={"points": [p for p, _ in points]},
        notes=notes,
    )


ROWS: dict[str, Callable[[Settings], Row]] = {
    "full": plan_full, "probe": plan_probe, "predict": plan_predict, "growth": plan_growth,
}
