"""Prediction from a model folder: the object ``enctune.load`` returns.

The same object serves Python, the command line and (later) HTTP. Batches are sorted by
length and sized by a token budget, run under inference mode, and returned in input order.

It loads an enctune model folder (``enctune.json``, ``head.safetensors``, ``encoder/``);
``hf_classifier`` builds one from a Hugging Face sequence-classification folder.

Precision: ``fp32`` (default, exact), ``bf16`` (a bf16 copy of the weights, under autocast), ``int8`` (dynamic int8
quantisation of every linear layer, CPU), ``fastest`` (bf16 on GPUs and CPUs with native
bf16, else int8 on CPU).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..calibrate import abstain
from ..data import Examples
from ..encoders.encoder import Encoder
from ..encoders.pooling import POOLINGS
from ..encoders.resolve import refuse_custom_code
from ..errors import UserError
from ..model import TaskModel, batched_logits
from ..model_folder import all_finite, find_model_folder, read_head_state, read_meta
from ..numeric import softmax
from ..precision import cpu_has_bf16, resolve_precision
from ..speed.bf16 import bf16_copy
from ..strategies import STRATEGIES
from ..tasks import TASKS
from .inputs import check_inputs
from .onnx_predictor import REFINE_BELOW  # the same threshold as the ONNX runtime's (a module without torch)

PREDICT_PRECISIONS = ("fp32", "bf16", "int8", "fastest", "auto")
PREDICT_NO_CODE = "prediction never does (only training takes --trust-remote-code)."


def resolve_predict_precision(precision: str, device: str = "cpu") -> str:

    if precision not in PREDICT_PRECISIONS:
        raise UserError(f"--precision '{precision}': expected one of {', '.join(PREDICT_PRECISIONS)}.")
    if precision == "fastest":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_bf16() else "int8"
    if precision == "int8":
        return "int8"
    return resolve_precision(precision, device)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every nn.Linear replaced by a dynamically quantised int8 one (CPU)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks the quantised tensor API as deprecated
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


class Predictor:
    """Predictions from a model folder (see the module docstring).

    Under a reduced precision (bf16, int8) a classifier re-scores in fp32 every text whose top
    probability is below ``refine_below`` (0.6 by default; 0 turns it off): rounding moves
    probabilities by a few hundredths, which flips a label only near the decision boundary,
    so the few unsure texts get the exact answer and the rest keep the fast one.
    """

    def __init__(self, model: nn.Module, encoder: Encoder, task, meta: dict, precision: str = "fp32",
                 refine_below: float = REFINE_BELOW, source: str | None = None):
        self.source = source  # the folder it was loaded from, for messages (None: built in memory)
        # a prediction does not report how many texts were cut: no second, uncut tokenisation of long texts
        # (~13 ms for a 10,000-character text)
        encoder.count_truncated = False
        self.encoder = encoder
        self.task = task
        self.meta = meta
        self.precision = resolve_predict_precision(precision)
        self.fp32_model = model.eval()
        # reduced precision runs a copy; the fp32 model stays for re-scoring unsure texts
        self.model = quantize_int8(model) if self.precision == "int8" else \
            bf16_copy(model) if self.precision == "bf16" else model
        self.model.eval()
        self.refine_below = refine_below
        self.refined = 0  # texts re-scored in fp32 so far

    @classmethod
    def load(cls, path: str | Path, precision: str = "fp32") -> Predictor:
        """The predictor for a run or model folder (or a Hugging Face classifier folder: ``_load_hf``).

        Nothing in the folder is trusted: enctune.json is checked field by field (``read_meta``), the encoder
        folder must not ask to run code, the weights must be finite, and the head's tensors must have the
        shapes enctune.json implies, read from their file's header before the head is built (``head_layout``).
        """
        folder = find_model_folder(path)
        meta = read_meta(folder)
        enc_dir = folder / "encoder"
        if not (enc_dir / "config.json").is_file():
            raise UserError(f"{enc_dir / 'config.json'}: missing; the model folder is damaged.")
        if not list(enc_dir.glob("*.safetensors")):
            raise UserError(f"{enc_dir}: no model.safetensors; the model folder is damaged (only safetensors "
                            "weights are read).")
        refuse_custom_code(str(enc_dir), PREDICT_NO_CODE)
        encoder = Encoder.load(str(enc_dir), pooling=meta["pooling"], max_length=meta["max_length"],
                               trust_remote_code=False)
        encoder.layer = meta.get("layer", -1)
        if encoder.layer > encoder.num_layers:
            raise UserError(f"{folder / 'enctune.json'}: 'layer' {encoder.layer} is past the encoder's last layer "
                            f"({encoder.num_layers}); the model folder is damaged.")
        encoder.template = meta.get("template")  # zeroshot cloze: the prompt every text is wrapped in
        strategy = STRATEGIES.get(meta.get("strategy"))
        if strategy is not None:  # what the strategy kept beside the encoder (LoRA: its adapters) goes back on
            strategy.read_encoder(encoder, folder, meta, resolve_predict_precision(precision))
        check_finite(encoder.model, enc_dir)
        task = TASKS[meta["task"]].from_config(meta)
        if task.padding_side is not None:
            encoder.tokenizer.padding_side = task.padding_side
        dropout = meta.get("dropout", 0.1)
        state = read_head_state(folder, head_layout(task, encoder.hidden_size, dropout))
        head = task.build_head(encoder.hidden_size, dropout)
        head.load_state_dict(state)  # names and shapes were checked against the file's header
        return cls(TaskModel(encoder, head, task.level), encoder, task, meta, precision, source=str(folder))

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def _check_pairs(self, texts, pairs):
        return check_inputs(texts, pairs, self.meta)

    def outputs(self, prepared, batch_size: int = 256, progress=None):
        """The model's outputs for prepared inputs: (N, C) logits, or one (T_i, C) array per input."""
        if len(prepared) == 0:
            return [] if self.task.level == "token" else np.zeros((0, self.n_outputs), dtype=np.float32)
        autocast_precision = "bf16" if self.precision == "bf16" else "fp32"
        outputs = batched_logits(self.model, self.encoder, prepared.tokens, batch_size, autocast_precision, progress)
        _check_finite(outputs, self.source)
        if self.task.level != "sequence":
            return outputs
        outputs = self.calibrated(outputs)
        confidence = self.task.confidence(outputs) if self.precision != "fp32" and self.refine_below > 0 else None
        if confidence is not None:
            unsure = np.flatnonzero(confidence < self.refine_below)
            if len(unsure):
                exact = batched_logits(self.fp32_model, self.encoder, prepared.tokens.subset(unsure), batch_size,
                                       "fp32")
                outputs[unsure] = self.calibrated(exact)
                self.refined += len(unsure)
        return outputs

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Classifier logits divided by the run's fitted temperature (see ``enctune.calibrate``), so
        that softmax gives calibrated probabilities; the arg-max is unchanged."""
        t = self.meta.get("temperature")
        if t and self.task.calibrates:
            return (logits / np.float32(t)).astype(np.float32)
        return logits

    @property
    def n_outputs(self) -> int:
        return len(self.labels) or int(self.meta.get("n_outputs", 1))

    def logits(self, texts, pairs=None, batch_size: int = 256, progress=None) -> np.ndarray:
        texts, pairs = self._check_pairs(texts, pairs)
        return self.outputs(self.task.prepare(self.encoder, self.task.inputs(texts, pairs)), batch_size, progress)

    def predict(self, texts, pairs=None, batch_size: int = 256, abstain_below: float | None = None) -> list[dict]:
        """One dict per input, in input order, shaped by the task: ``{"label", "probabilities"}`` for
        classify, ``{"labels", "probabilities"}`` for multilabel, ``{"value"}`` for regress, entity
        spans for tag, ``{"answer", "start", "end", "score"}`` for extract (texts = questions, pairs = contexts).

        ``abstain_below`` (classify): a top probability under it gives the label ``"unsure"``.
        """

        texts, pairs = self._check_pairs(texts, pairs)
        ex = self.task.inputs(texts, pairs)
        prepared = self.task.prepare(self.encoder, ex)
        return abstain(self.task.decode_outputs(self.outputs(prepared, batch_size), prepared, ex), abstain_below)

    def predict_proba(self, texts, pairs=None, batch_size: int = 256) -> np.ndarray:
        return softmax(self.logits(texts, pairs, batch_size))

    def evaluate(self, examples: Examples, batch_size: int = 256, progress=None) -> dict:
        prepared = self.task.prepare(self.encoder, examples)
        return self.task.evaluate_outputs(self.outputs(prepared, batch_size, progress), prepared, examples)

    def embed(self, texts, pairs=None, layer: int | None = None, pooling: str | None = None,
              batch_size: int = 256) -> np.ndarray:
        """Pooled sequence representations from this model's (trained) encoder, in fp32."""
        if pairs is None:
            texts, _ = check_inputs(texts, None, {})  # the texts alone, whatever the model was trained on
        else:
            texts, pairs = self._check_pairs(texts, pairs)
        return embed(self.encoder, texts, pairs, layer, pooling, batch_size)


def _check_finite(outputs, source: str | None) -> None:
    """UserError when the model answers NaN or infinity (weights that are finite but overflow float32 in the
    forward pass): a probability of NaN is no answer, and over HTTP it would read as null."""
    if isinstance(outputs, list):  # token level: one (T_i, C) array per input
        bad = sum(not np.isfinite(r).all() for r in outputs)
    else:  # (N, C)
        bad = int((~np.isfinite(outputs)).any(axis=-1).sum())
    if bad:
        raise UserError(f"{source or 'the model'}: gives non-finite outputs for {bad} input(s), its weights "
                        "overflow float32; the model folder is damaged or the run diverged. Train it again.")


def check_finite(model: nn.Module, where) -> None:
    """UserError naming the first floating-point weight of ``model`` that holds NaN or inf: a damaged weights
    file would otherwise answer NaN probabilities for every text (``all_finite``: ~6 ms for the default
    encoder)."""
    for name, p in model.named_parameters():
        if p.is_floating_point() and not all_finite(p.detach()):
            raise UserError(f"{where}: weight {name!r} holds NaN or infinite values; the model folder is damaged.")


def head_layout(task, hidden_size: int, dropout: float) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the head that enctune.json describes, from a head built on torch's meta device:
    shapes without memory, so a tampered label count costs nothing before the head's file is compared."""
    with torch.device("meta"):
        head = task.build_head(hidden_size, dropout)
    return {name: tuple(t.shape) for name, t in head.state_dict().items()}


def embed(encoder: Encoder, texts: list[str], pairs: list[str] | None = None, layer: int | None = None,
          pooling: str | None = None, batch_size: int = 256, precision: str = "fp32", progress=None) -> np.ndarray:

    layer = encoder.layer if layer is None else layer
    pooling = pooling or encoder.pooling
    if pooling not in POOLINGS:
        raise UserError(f"--pooling '{pooling}': unknown. Expected one of: {', '.join(POOLINGS)}.")
    if not -1 <= layer <= encoder.num_layers:
        raise UserError(f"--layer {layer}: this encoder has layers 0 (embeddings) to {encoder.num_layers}; "
                        "-1 means the last.")
    if not texts:
        return np.zeros((0, encoder.hidden_size), dtype=np.float32)
    tokens = encoder.tokenize(texts, pairs)
    out = encoder.encode(tokens, layers=[layer], poolings=[pooling], batch_size=batch_size, precision=precision,
                         progress=progress)
    return out[(layer, pooling)]
