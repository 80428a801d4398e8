"""``lora``: low-rank adapters (LoRA, through PEFT) on the encoder's projections; only they and the head train.

Each adapted projection W (d_out x d_in) keeps its pre-trained weights frozen and gains a
low-rank update:

    h = W x + (alpha / r) * B A x        A: (r, d_in), B: (d_out, r), r << min(d_in, d_out)

A starts random (Kaiming-uniform) and B at zero, so training starts exactly at the
pre-trained encoder and the update grows only as far as the task asks. What trains: every
A and B (r * (d_in + d_out) numbers per projection) and the task head; every other encoder
parameter (embeddings, norms, W and its bias, the pooler) stays bit-identical to the source,
so the model folder links the source's weights and stores only the adapters (see
``model_folder``). ``enctune export --merge`` folds B A into W for a plain encoder.

Targets (``--lora-targets``, comma-separated module names; default every one): the
``nn.Linear`` (and GPT-2 ``Conv1D``) projections inside the transformer blocks, attention
and feed-forward alike, found by walking the network, so that any architecture works:
BERT query,key,value,dense; GPT-2 c_attn,c_proj,c_fc; Llama q_proj,k_proj,v_proj,o_proj,
gate_proj,up_proj,down_proj. Anything named pooler is left out (it is never used for the
task). A name that matches no projection is a ``UserError`` that lists the names there are.

Cost per token: forward 2 N FLOPs, backward about 2 N more (gradients flow through the frozen
weights to reach lower adapters, but no weight gradient is formed for them), for N
non-embedding parameters; the optimizer holds state for the adapters only. Options:
``--lora-r`` (8), ``--lora-alpha`` (16), ``--lora-dropout`` (0.1, on the adapter's input).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

from pydantic import Field

from ..errors import UserError
from .base import START_SECONDS, CostFacts, Estimate, RunContext, StrategyOptions, link_encoder_files
from .full import FullStrategy, layer_depth, non_embedding_params
from .registry import register

ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_PREFIX = "lora_"  # PEFT's name for every LoRA parameter (lora_A, lora_B, lora_embedding_A, ...)

# A LoRA step costs this share of a full step per token: the backward pass skips the frozen weights' gradients
# but not the activations' (1,300 against 1,565 tokens/s for the default encoder, BENCHMARKS.md "estimates").
LORA_COST = 0.85


def projections(model, n_layers: int) -> dict:
    """Full module name -> module, for every linear projection LoRA can adapt in the transformer blocks
    (the pooler excluded); every linear module of the network when no blocks are recognised."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    linear = {name: m for name, m in model.named_modules()
              if isinstance(m, (nn.Linear, Conv1D)) and "pooler" not in name}
    # layer_depth: 1..n_layers inside block 0..n_layers-1, 0 for embeddings, n_layers + 1 above the blocks
    in_blocks = {name: m for name, m in linear.items() if 1 <= layer_depth("." + name, n_layers) <= n_layers}
    return in_blocks or linear


def target_modules(model, n_layers: int, targets: str | None) -> list[str]:
    """Full names of the modules to adapt: every projection, or those named by ``targets`` (leaf names
    like ``query``, or dotted suffixes like ``attention.self.query``), in the network's order."""
    found = projections(model, n_layers)
    if not found:
        raise UserError("--strategy lora: this encoder has no linear layers to adapt; use full or probe.")
    if targets is None:
        return list(found)
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    available = ", ".join(dict.fromkeys(name.rsplit(".", 1)[-1] for name in found))
    if not wanted:
        raise UserError(f"--lora-targets '{targets}': no module names given; available: {available}.")
    chosen: set[str] = set()
    for t in wanted:
        hits = {name for name in found if name == t or name.endswith("." + t)}
        if not hits:
            raise UserError(f"--lora-targets: '{t}' names no linear layer in this encoder's blocks; "
                            f"available: {available}.")
        chosen |= hits
    return [name for name in found if name in chosen]


class LoraOptions(StrategyOptions):
    lora_r: int = Field(8, ge=1, le=1024, description="lora: adapter rank")
    lora_alpha: float = Field(16.0, gt=0, description="lora: scaling alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="lora: adapter dropout")
    lora_targets: str | None = Field(None, description="lora: comma-separated module names [every linear layer "
                                                       "of the encoder blocks]")


@register
class LoraStrategy(FullStrategy):
    name = "lora"
    summary = "low-rank adapters on the attention and feed-forward projections, and the head"
    Options = LoraOptions
    lr = 5e-4  # adapters start at zero and are few: they need a larger step than full fine-tuning
    description = "LoRA fine-tuning"
    ladder_rank = 40
    auto_rank = None  # the advisor picks full, partial or probe; lora is chosen by the user or the ladder

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        """The forward pass and an activation-only backward pass (LORA_COST of full's cost per token), and full's
        evaluations; optimizer state for the adapters alone."""
        r = getattr(facts.options, "lora_r", 8) or 8
        adapters = cls.trainable_params(facts) or int(max(facts.layers, 1) * 6 * 2 * r * facts.hidden)
        epochs = cls.epochs_for(facts)
        return Estimate(cls.name, epochs * facts.train_tokens * LORA_COST / facts.rate() + facts.eval_seconds(2 * epochs)
                        + START_SECONDS, facts.weights_mb + facts.activations_mb, adapters, f"rank-{r} adapters")

    def wrap_encoder(self, ctx: RunContext) -> None:
        """Replace the encoder's network with a PEFT model that adds the adapters (base weights shared)."""
        from peft import LoraConfig, get_peft_model
        from transformers.pytorch_utils import Conv1D

        cfg, enc = ctx.cfg, ctx.encoder
        names = target_modules(enc.model, enc.num_layers, cfg.lora_targets)
        modules = dict(enc.model.named_modules())
        # GPT-2's Conv1D stores W transposed, (d_in, d_out): PEFT must know to transpose B A to match
        fan_in_fan_out = all(isinstance(modules[n], Conv1D) for n in names)
        config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                            target_modules=names, fan_in_fan_out=fan_in_fan_out, bias="none")
        # PEFT forwards input_ids, attention_mask, output_hidden_states... unchanged to the base model, which
        # returns its usual output (last_hidden_state, hidden_states): Encoder.hidden works through it as is.
        with warnings.catch_warnings():
            # PEFT asks the model for a deprecated transformers attribute; nothing the user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            enc.model = get_peft_model(enc.model, config)

    @classmethod
    def select_trainable(cls, cfg, network, n_layers):
        """The adapters train; every pre-trained encoder weight stays frozen (the head is set by ``run``)."""
        for name, p in network.named_parameters():
            p.requires_grad_(ADAPTER_PREFIX in name)

    @classmethod
    def trainable_params(cls, facts):
        """Rank-r factors B (d_out x r) and A (r x d_in) on each module ``target_modules`` picks (the run's own
        choice), no biases: r (d_in + d_out) each; plus the head."""
        if facts.network is None:
            return None
        modules = dict(facts.network.named_modules())
        names = target_modules(facts.network, facts.layers, facts.options.lora_targets)
        return sum(facts.options.lora_r * sum(modules[n].weight.shape) for n in names) + facts.head_params

    def costs(self, ctx: RunContext, model, tokens: int) -> dict:
        costs = super().costs(ctx, model, tokens)
        costs["train_flops_estimate"] = 4 * non_embedding_params(ctx.encoder) * tokens
        return costs

    # ---- the model folder: the base weights linked from the source, the adapters beside them --------------
    @classmethod
    def write_encoder(cls, encoder, folder: Path, trained: bool) -> dict:
        """The frozen base (the source's files, linked; or saved without the adapters when the source has no
        safetensors) in ``folder``, and the adapters alone in ``adapter/`` beside it."""
        if not is_adapted(encoder.model):  # merged already (export --merge): a plain encoder
            return super().write_encoder(encoder, folder, trained)
        if not link_encoder_files(encoder.source, folder):
            _save_base(encoder.model, folder)
        _save_adapter(encoder.model, folder.parent / ADAPTER_DIR)
        return {"adapter": ADAPTER_DIR}

    @classmethod
    def read_encoder(cls, encoder, model_folder: Path, meta: dict, precision: str) -> None:
        """Put the adapters back on the base weights (int8 replaces every linear layer, the adapters' too:
        then fold B A into W first)."""
        adapter = adapter_folder(model_folder, meta)
        if adapter is None:
            return
        encoder.model = load_adapter(encoder.model, adapter)
        if precision == "int8":
            encoder.model = encoder.model.merge_and_unload()

    @classmethod
    def plain_encoder(cls, encoder) -> bool:
        """Fold the adapters into the weights, in place: W <- W + (alpha / r) B A for each adapted layer, which
        leaves the plain transformers network computing the same function. False without adapters."""
        if not is_adapted(encoder.model):
            return False
        encoder.model = encoder.model.merge_and_unload()
        return True


def is_adapted(model) -> bool:
    """Whether ``model`` is a PEFT ``PeftModel`` (a base network with adapters); peft is not imported here:
    when nothing has imported it, no model can be one."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def _save_base(model, dst: Path) -> None:
    """The base network under a PeftModel, saved without its adapters: PEFT wraps each adapted layer, so
    its weights appear as ``<layer>.base_layer.weight`` beside ``<layer>.lora_A...``; keep the former under
    the layer's own name and drop the latter."""
    base = model.get_base_model()
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ADAPTER_PREFIX not in k}
    base.save_pretrained(dst, state_dict=state, safe_serialization=True)


def _save_adapter(model, dst: Path) -> None:
    """The adapters alone: adapter_config.json and adapter_model.safetensors (PEFT's model card is dropped)."""
    model.save_pretrained(dst, safe_serialization=True)
    for f in dst.iterdir():
        if f.is_dir():
            shutil.rmtree(f)
        elif f.name not in ADAPTER_FILES:
            f.unlink()


def adapter_folder(folder: Path, meta: dict) -> Path | None:
    """The model folder's adapter folder (a LoRA run's), or None; UserError when it is named but unusable."""
    name = meta.get("adapter")
    if name is None:
        if not (folder / ADAPTER_DIR).is_dir():
            return None
        name = ADAPTER_DIR
    if not isinstance(name, str) or Path(name).name != name or name in (".", ".."):
        raise UserError(f"{folder / 'enctune.json'}: 'adapter' must name a folder inside the model folder, "
                        f"not {name!r}.")
    d = folder / name
    if not (d / "adapter_config.json").is_file():
        raise UserError(f"{d / 'adapter_config.json'}: missing; the model folder is damaged.")
    if not (d / "adapter_model.safetensors").is_file():
        pickles = sorted(d.glob("*.bin")) + sorted(d.glob("*.pt"))
        if pickles:
            raise UserError(f"{pickles[0]}: adapter weights in a pickle file are not read (only "
                            "adapter_model.safetensors is); convert them to safetensors.")
        raise UserError(f"{d / 'adapter_model.safetensors'}: missing; the model folder is damaged.")
    return d


def load_adapter(model, adapter: Path):
    """``model`` with the adapters in ``adapter`` put on top (a PEFT PeftModel, inference mode)."""
    from peft import PeftModel

    from ..encoders.encoder import hf_quiet  # lazy: the encoder module imports torch (~2 s)

    try:
        with hf_quiet(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            adapted = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except Exception as e:
        raise UserError(f"{adapter}: the adapters do not load onto the encoder ({type(e).__name__}: {e}).") from None
    # PEFT only warns when the file lacks weights for some adapted layer (they would stay at B = 0): refuse
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    if missing:
        raise UserError(f"{adapter / 'adapter_model.safetensors'}: does not fit adapter_config.json ({missing[0]}).")
    return adapted
