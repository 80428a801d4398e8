"""Prediction from an exported ONNX folder with onnxruntime: no torch, no transformers.

The folder (written by ``enctune export``)::

    enctune-onnx.json   task, labels, columns, max length, pad token, inputs, model files, check
    model.onnx          token ids -> logits (the encoder, its pooling and the head in one graph)
    model.int8.onnx     the same with dynamically quantised int8 weights (``--quantize int8``)
    tokenizer.json      the fast tokenizer (read with the ``tokenizers`` library)
    metrics.json        the run's metrics, when the export came from a run folder

Texts are tokenized exactly as ``Encoder.tokenize`` does (same tokenizer file, same
truncation), sorted by length and cut into batches of at most ``TOKENS_PER_BATCH`` padded
tokens, so short texts share large batches and padding stays small. Outputs come back in
input order and are decoded by the same rule as the task's ``decode``.

int8 with a safety net: dynamic int8 quantisation moves probabilities by up to a few
hundredths, which flips the label of texts near the decision boundary. With ``int8`` (and
an fp32 model beside it), every text whose int8 top probability is below ``refine_below``
(``enctune-onnx.json``, default 0.6) is scored again by the fp32 model, and that answer is
kept. Confident texts, usually the large majority, pay only the int8 price. ``int8-raw``
turns the safety net off.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..calibrate import abstain
from ..encoders.tokens import token_budget_batches
from ..errors import UserError
from ..model_folder import ONNX_MARKER, read_onnx_meta
from ..numeric import softmax
from ..tasks import TASKS
from .inputs import check_inputs

TOKENS_PER_BATCH = 1024  # padded tokens per batch: small enough to stay in the CPU caches (1.2-1.5x faster than 8,192)
ONNX_PRECISIONS = ("fp32", "int8", "int8-raw", "fastest")
REFINE_BELOW = 0.6  # reduced precision: classifications less sure than this are re-scored in fp32


def default_threads() -> int:
    """Threads for onnxruntime: OMP_NUM_THREADS when set, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OnnxPredictor:
    runtime = "onnxruntime"

    def __init__(self, folder: Path, meta: dict, precision: str | None = None, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder, self.meta = folder, meta
        files = meta["model_files"]  # precision -> file name
        if precision in (None, "auto"):
            precision = meta.get("default_precision", "fp32")
        if precision == "fastest":
            precision = "int8" if "int8" in files else "fp32"
        if precision not in ONNX_PRECISIONS:
            raise UserError(f"precision '{precision}': an ONNX folder runs in one of {', '.join(files)}.")
        if precision.removesuffix("-raw") not in files:
            raise UserError(f"{folder}: has no {precision} model (it holds {', '.join(files)}); export the run "
                            f"again with --quantize int8.")
        self.precision = precision
        self.task = TASKS[meta["task"]].from_config(meta)  # decoding is the task's own (no torch needed)
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:
            raise UserError(f"{folder / 'tokenizer.json'}: unreadable ({e}).") from None
        self.max_length = int(meta["max_length"])
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3

        def session(name: str):
            path = folder / files[name]
            try:
                return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:
                raise UserError(f"{path}: onnxruntime could not load it ({e}).") from None

        self.session = session(precision.removesuffix("-raw"))
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.refine_below = float(meta.get("refine_below", REFINE_BELOW))
        self.refine = None  # the fp32 session that re-scores unsure int8 predictions
        if precision == "int8" and "fp32" in files and self.refine_below > 0 and self.task.calibrates:
            self.refine = session("fp32")
        self.refined = 0  # texts re-scored so far

    @classmethod
    def load(cls, path: str | os.PathLike, precision: str | None = None, threads: int | None = None) -> OnnxPredictor:
        """The predictor for an exported folder. enctune-onnx.json is checked field by field
        (``model_folder.OnnxMeta``); then the graph must answer one score per label and the pad token must be
        in the tokenizer's vocabulary, or every prediction would fail inside onnxruntime."""
        folder = Path(path)
        meta = read_onnx_meta(folder, ONNX_MARKER)
        predictor = cls(folder, meta, precision, threads)
        f = folder / ONNX_MARKER
        width = predictor.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(meta["labels"]):
            graph = folder / meta["model_files"][predictor.precision.removesuffix("-raw")]
            raise UserError(f"{f}: {len(meta['labels'])} labels, but {graph} answers {width} scores; the exported "
                            "folder is damaged.")
        if meta["pad_token_id"] >= predictor.tokenizer.get_vocab_size():
            raise UserError(f"{f}: 'pad_token_id' {meta['pad_token_id']} is not in tokenizer.json's vocabulary "
                            f"({predictor.tokenizer.get_vocab_size()} tokens); the exported folder is damaged.")
        return predictor

    @property
    def labels(self) -> list:
        return self.task.labels

    def _check_pairs(self, texts, pairs):
        return check_inputs(texts, pairs, self.meta)

    def tokenize(self, texts: list[str], pairs: list[str] | None = None):
        """Token ids and token type ids per text, unpadded."""
        items = list(zip(texts, pairs, strict=True)) if pairs is not None else texts
        encs = self.tokenizer.encode_batch(items, add_special_tokens=True)
        return [e.ids for e in encs], [e.type_ids for e in encs]

    def logits(self, texts, pairs=None, batch_size: int = 256, progress=None) -> np.ndarray:
        texts, pairs = self._check_pairs(texts, pairs)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        ids, types = self.tokenize(texts, pairs)
        out = self._run(self.session, ids, types, np.arange(len(ids)), batch_size, progress)
        if self.refine is not None:
            unsure = np.flatnonzero(self.task.confidence(out) < self.refine_below)
            if len(unsure):
                out[unsure] = self._run(self.refine, ids, types, unsure, batch_size)[unsure]
                self.refined += len(unsure)
        t = self.meta.get("temperature")
        if t and self.task.calibrates:  # calibrated, as the run's PyTorch predictor returns them
            out = (out / np.float32(t)).astype(np.float32)
        return out

    def _run(self, session, ids, types, rows: np.ndarray, batch_size: int, progress=None) -> np.ndarray:
        """Logits of ``rows`` (others stay zero), in length-sorted token-budget batches."""
        lengths = np.fromiter((len(ids[i]) for i in rows), dtype=np.int64, count=len(rows))
        pad, left = int(self.meta["pad_token_id"]), self.meta.get("padding_side") == "left"
        out = np.zeros((len(ids), len(self.labels)), dtype=np.float32)
        for batch in token_budget_batches(lengths, TOKENS_PER_BATCH, batch_size):
            idx = rows[batch]
            width = int(lengths[batch].max())
            feed = {"input_ids": np.full((len(idx), width), pad, dtype=np.int64),
                    "attention_mask": np.zeros((len(idx), width), dtype=np.int64),
                    "token_type_ids": np.zeros((len(idx), width), dtype=np.int64)}
            for r, i in enumerate(idx):
                n = len(ids[i])
                sl = slice(width - n, width) if left else slice(0, n)
                feed["input_ids"][r, sl] = ids[i]
                feed["attention_mask"][r, sl] = 1
                feed["token_type_ids"][r, sl] = types[i]
            out[idx] = session.run(["logits"], {k: feed[k] for k in self.inputs})[0]
            if progress is not None:
                progress(len(idx))
        return out

    def predict(self, texts, pairs=None, batch_size: int = 256, abstain_below: float | None = None) -> list[dict]:
        """One dict per text, as the task decodes it (classify: ``{"label", "probabilities"}``)."""
        return abstain(self.task.decode(self.logits(texts, pairs, batch_size)), abstain_below)

    def predict_proba(self, texts, pairs=None, batch_size: int = 256) -> np.ndarray:
        return softmax(self.logits(texts, pairs, batch_size))
