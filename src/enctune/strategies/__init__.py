"""Strategies: which parameters move and how. ``STRATEGIES`` maps names to classes."""

from .advisor import choose_strategy, estimates
from .base import STRATEGIES, RunContext, Strategy, StrategyResult, split_outputs
from .fewshot import FewshotStrategy
from .full import FullStrategy
from .lora import LoraStrategy
from .partial import PartialStrategy
from .probe import ProbeStrategy
from .zeroshot import ZeroshotStrategy  # noqa: F401 (registers "zeroshot")

__all__ = ["STRATEGIES", "FewshotStrategy", "FullStrategy", "LoraStrategy", "PartialStrategy", "ProbeStrategy",
           "RunContext", "Strategy", "StrategyResult", "choose_strategy", "estimates", "split_outputs"]
