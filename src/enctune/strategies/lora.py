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

import warnings

from torch import nn

from ..errors import UserError
from ..model import TaskModel
from ..model_folder import ADAPTER_PREFIX
from .base import RunContext, register
from .full import FullStrategy, layer_depth, non_embedding_params


def projections(model: nn.Module, n_layers: int) -> dict[str, nn.Module]:
    """Full module name -> module, for every linear projection LoRA can adapt in the transformer blocks
    (the pooler excluded); every linear module of the network when no blocks are recognised."""
    from transformers.pytorch_utils import Conv1D

    linear = {name: m for name, m in model.named_modules()
              if isinstance(m, (nn.Linear, Conv1D)) and "pooler" not in name}
    # layer_depth: 1..n_layers inside block 0..n_layers-1, 0 for embeddings, n_layers + 1 above the blocks
    in_blocks = {name: m for name, m in linear.items() if 1 <= layer_depth("." + name, n_layers) <= n_layers}
    return in_blocks or linear


def target_modules(model: nn.Module, n_layers: int, targets: str | None) -> list[str]:
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


@register
class LoraStrategy(FullStrategy):
    name = "lora"
    lr = 5e-4  # adapters start at zero and are few: they need a larger step than full fine-tuning
    description = "LoRA fine-tuning"

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

    def select_trainable(self, ctx: RunContext, model: TaskModel) -> None:
        """The adapters train; every pre-trained encoder weight stays frozen (the head is set by ``run``)."""
        for name, p in model.encoder.named_parameters():
            p.requires_grad_(ADAPTER_PREFIX in name)

    def costs(self, ctx: RunContext, model: TaskModel, tokens: int) -> dict:
        costs = super().costs(ctx, model, tokens)
        costs["train_flops_estimate"] = 4 * non_embedding_params(ctx.encoder) * tokens
        return costs
