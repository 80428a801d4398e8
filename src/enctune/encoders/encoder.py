"""The Encoder: tokenizer + base model (no pre-training head) + pooling.

``Encoder.forward`` maps a padded batch to pooled vectors (B, H) for training;
``Encoder.encode`` runs the frozen encoder over many texts in length-sorted batches and
returns NumPy features, for probing, caching and ``enctune embed``.

``template`` (None by default) wraps every first text before tokenisation, e.g. the cloze
prompt ``"{} It was [MASK]."`` of ``zeroshot --zeroshot-mode cloze``; a model folder records it
so prediction wraps texts the same way. A text too long for ``max_length`` is cut inside the
template, never the template itself, so its mask token survives. ``mask`` pooling (the hidden
state at the mask token) reads the token ids: ``forward`` and ``encode`` hand it the mask
token's positions instead of the attention mask (``pooling.mask_positions``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..precision import autocast
from ..speed import allocator
from ..speed.bf16 import BF16_COPY_MIN_ROWS, bf16_copy
from ..speed.lazy import LazyNetwork
from ..speed.pooler import without_pooler
from ..speed.tokenizer import backend_ids
from .pooling import NEEDS_TOKEN_IDS, POOLINGS, mask_positions
from .resolve import (
    check_weights,
    default_pooling,
    fingerprint,
    is_causal,
    refuse_custom_code,
    resolve_encoder,
    safetensors_param_count,
)
from .template import apply_template, uncut_ids
from .tokens import Tokenized, inference_tokens, token_budget_batches


@contextlib.contextmanager
def hf_quiet():
    """Silence transformers' own progress bars and info logs while it loads or saves for us."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(level)


def usable_max_length(config, tokenizer, wanted: int | None, default: int = 256) -> int:
    """``wanted`` (or ``default``) capped at what the model's positions and tokenizer allow."""
    limit = min(x for x in (getattr(config, "max_position_embeddings", None), tokenizer.model_max_length, 8192)
                if isinstance(x, int) and x > 0)
    return min(wanted or default, limit)


class Encoder(LazyNetwork):
    def __init__(self, model: nn.Module | None, tokenizer, pooling: str, source: str, max_length: int,
                 layer: int = -1, template: str | None = None, config=None, build=None):
        """``model`` is the network; or None with ``build`` (a function returning it) and ``config``: the
        network is then built on first use (see ``load(lazy=True)``)."""
        super().__init__()
        allocator.tune()  # activations reuse heap memory instead of fresh mmaps on every pass (speed.allocator)
        if pooling not in POOLINGS:
            raise UserError(f"--pooling '{pooling}': unknown. Expected one of: {', '.join(POOLINGS)}.")
        self.template = template  # "...{}...": wraps every first text in tokenize (None: texts as they are)
        self.count_truncated = True  # tokenize counts the texts max_length cut (a second, uncut pass over them)
        self.config = config if config is not None else model.config
        self.defer(build, model)  # the network now, or on first use (speed.lazy)
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.source = source
        self._check_mask_token(pooling)
        self.max_length = max_length
        n_layers = self.num_layers
        if not -1 <= layer <= n_layers:
            raise UserError(f"--layer {layer}: this encoder has layers 0 (embeddings) to {n_layers}; "
                            "-1 means the last.")
        self.layer = layer

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, name: str = "default", pooling: str | None = None, max_length: int | None = None,
             layer: int = -1, trust_remote_code: bool = False, allow_pickle: bool = False,
             lazy: bool = False) -> Encoder:
        """``trust_remote_code`` and ``allow_pickle`` stay off unless the user turns them on.

        Without ``trust_remote_code`` a folder that would run its own code (``resolve.custom_code``) is refused
        before transformers reads it, and transformers is told False, never left to ask on the terminal. A
        folder's files may be damaged: whatever transformers raises while reading them is a UserError.

        With ``lazy`` only the config and tokenizer load now; the network (its modeling code and weights,
        most of the load time) loads on first use. A probe whose features are all in the cache never
        uses it."""
        from transformers import AutoConfig, AutoTokenizer

        trust_remote_code = trust_remote_code is True  # None would let transformers prompt
        source = resolve_encoder(name)
        check_weights(source, allow_pickle)
        if not trust_remote_code:
            refuse_custom_code(source, "pass --trust-remote-code to train (trust_remote_code=True) if you trust "
                                       "this code.")
        try:
            with hf_quiet():
                config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
                tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        except Exception as e:  # damaged files raise anything from OSError to the tokenizers library's own errors
            raise UserError(f"{source}: could not load the encoder ({type(e).__name__}: {e}).") from None

        def build() -> nn.Module:
            from transformers import AutoModel

            try:
                with hf_quiet():
                    # AutoModel is the base network: the MLM / LM pre-training head is never loaded.
                    return without_pooler(AutoModel.from_pretrained(
                        source, config=config, trust_remote_code=trust_remote_code,
                        use_safetensors=None if allow_pickle else True))
            except Exception as e:  # as above: a weights file that does not fit its config, among others
                raise UserError(f"{source}: could not load the encoder ({type(e).__name__}: {e}).") from None

        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            if tokenizer.pad_token is None:
                raise UserError(f"{source}: the tokenizer has no pad, eos or unk token to pad batches with.")
        return cls(None if lazy else build(), tokenizer, pooling or default_pooling(source, config), source,
                   usable_max_length(config, tokenizer, max_length), layer, config=config,
                   build=build if lazy else None)

    def num_params(self) -> int:
        """The network's parameter count; read from the weight files' headers while it is not built."""
        if not self.loaded:
            n = safetensors_param_count(self.source)
            if n is not None:
                return n
        return sum(p.numel() for p in self.parameters())

    def skeleton(self) -> nn.Module | None:
        """The network's modules and parameter shapes without its weights (built from the config on the meta
        device: no memory, no file read), for counting what a strategy would train; None where the config
        cannot build one (a network with code of its own)."""
        from transformers import AutoModel

        try:
            with torch.device("meta"), hf_quiet():
                return without_pooler(AutoModel.from_config(self.config))
        except Exception:  # anything transformers raises for a config it cannot build: the estimate goes without
            return None

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(getattr(self.config, "num_hidden_layers", 0) or 0)

    @property
    def causal(self) -> bool:
        return is_causal(self.config)

    def fingerprint(self) -> str:
        return fingerprint(self.source)

    # ---- tokenisation and batching ------------------------------------------------------
    def tokenize(self, texts: list[str], pairs: list[str] | None = None, apart: bool = False,
                 templated: bool = True) -> Tokenized:
        """Token ids per text; a pair is one input (``text [SEP] pair``) or, with ``apart``, two inputs.
        The ``template``, when set, wraps the first texts (not the pairs) unless ``templated`` is False."""
        if apart and pairs is not None:
            first, second = self.tokenize(texts, templated=templated), self.tokenize(pairs, templated=False)
            return Tokenized(first.input_ids, first.token_type_ids, first.truncated + second.truncated, second)
        cut = 0
        if templated and self.template is not None:
            texts, cut = apply_template(self.tokenizer, self.template, list(texts), pairs, self.max_length)
        tok = self.tokenizer
        ids, tt = backend_ids(tok, texts, pairs, self.max_length)
        if ids is None:
            enc = tok(*((texts, pairs) if pairs is not None else (texts,)), add_special_tokens=True, truncation=True,
                      max_length=self.max_length)
            ids, tt = enc["input_ids"], enc.get("token_type_ids")
        # Only rows that reach max_length can have been cut: tokenize just those again, uncut, to count.
        full_rows = [i for i, row in enumerate(ids) if len(row) >= self.max_length] if self.count_truncated else []
        truncated = 0
        if full_rows:
            again = ([texts[i] for i in full_rows],) + (([pairs[i] for i in full_rows],) if pairs is not None else ())
            truncated = sum(len(x) > self.max_length for x in uncut_ids(tok, *again))
        tt = tt if "token_type_ids" in tok.model_input_names else None
        return Tokenized(ids, tt, truncated + cut)

    def _check_mask_token(self, pooling: str) -> None:
        if pooling in NEEDS_TOKEN_IDS and self.tokenizer.mask_token_id is None:
            raise UserError(f"{self.source}: '{pooling}' pooling reads the mask token, and this tokenizer has none.")

    def collate(self, tokens: Tokenized, idx) -> dict[str, torch.Tensor]:
        """Pad the examples ``idx`` to the longest among them; pads on the tokenizer's side."""
        seqs = [tokens.input_ids[i] for i in idx]
        width = max(len(s) for s in seqs)
        left = self.tokenizer.padding_side == "left"
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        tt = torch.zeros((len(seqs), width), dtype=torch.long) if tokens.token_type_ids is not None else None
        for r, (i, s) in enumerate(zip(idx, seqs, strict=False)):
            sl = slice(width - len(s), width) if left else slice(0, len(s))
            ids[r, sl] = torch.tensor(s)
            mask[r, sl] = 1
            if tt is not None:
                tt[r, sl] = torch.tensor(tokens.token_type_ids[i])
        batch = {"input_ids": ids, "attention_mask": mask}
        if tt is not None:
            batch["token_type_ids"] = tt
        for suffix, other in (("_b", tokens.second), ("_c", tokens.third)):  # texts encoded apart
            if other is not None:
                batch.update({k + suffix: v for k, v in self.collate(other, idx).items()})
        return batch

    # ---- forward --------------------------------------------------------------------------
    def hidden(self, input_ids, attention_mask, token_type_ids=None, layers: list[int] | None = None):
        """Hidden states (B, T, H) of each requested layer (-1: last)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.causal and self.tokenizer.padding_side == "left":
            # left padding shifts every token's position: count positions from the first real token
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        layers = layers if layers is not None else [self.layer]
        need_all = any(ly != -1 for ly in layers)
        out = self.model(**kwargs, output_hidden_states=need_all)
        return [out.last_hidden_state if ly == -1 else out.hidden_states[ly] for ly in layers]

    def pool(self, h: torch.Tensor, input_ids, attention_mask, pooling: str | None = None) -> torch.Tensor:
        """(B, T, H) -> (B, H) by ``pooling`` (default: this encoder's); ``mask`` pooling gets the mask token's
        positions instead of the attention mask."""
        pooling = pooling or self.pooling
        m = attention_mask
        if pooling in NEEDS_TOKEN_IDS:
            self._check_mask_token(pooling)
            m = mask_positions(input_ids, attention_mask, self.tokenizer.mask_token_id)
        return POOLINGS[pooling](h, m)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        (h,) = self.hidden(input_ids, attention_mask, token_type_ids)
        return self.pool(h, input_ids, attention_mask)  # (B, H)

    @torch.inference_mode()
    def encode(self, tokens: Tokenized, layers: list[int] | None = None, poolings: list[str] | None = None,
               batch_size: int = 256, precision: str = "fp32", progress=None,
               max_tokens: int | None = None) -> dict[tuple[int, str], np.ndarray]:
        """Pooled features for every example, per (layer, pooling), in input order (float32).

        Batches are sorted by length and hold at most ``max_tokens`` padded tokens (and at most
        ``batch_size`` rows; by default the device's ``inference_tokens``): short texts travel in large
        batches, long ones in small batches.
        """

        layers = layers if layers is not None else [self.layer]
        poolings = poolings or [self.pooling]
        was_training = self.training
        if was_training:  # switching walks every module (~6 ms a call for MiniLM): only when needed
            self.eval()
        device = next(self.model.parameters()).device
        max_tokens = max_tokens or inference_tokens(device.type)
        out = {(ly, p): np.zeros((len(tokens), self.hidden_size), dtype=np.float32)
               for ly in layers for p in poolings}
        network = self.model
        if precision == "bf16" and device.type == "cpu" and len(tokens) >= BF16_COPY_MIN_ROWS:
            self.model = bf16_copy(network)
        try:
            # longest first: peak memory shows at once
            for idx in token_budget_batches(tokens.lengths(), max_tokens, batch_size):
                batch = {k: v.to(device) for k, v in self.collate(tokens, idx).items()}
                with autocast(device.type, precision):
                    hs = self.hidden(**batch, layers=layers)
                for ly, h in zip(layers, hs, strict=False):
                    for p in poolings:
                        out[(ly, p)][idx] = self.pool(h.float(), batch["input_ids"], batch["attention_mask"],
                                                      p).cpu().numpy()
                if progress is not None:
                    progress(len(idx))
        finally:
            self.model = network
        if was_training:
            self.train(True)
        return out
