"""Strategies: which parameters move and how. ``STRATEGIES`` maps names to classes.

Every module of this package is imported here, and each registers its strategy: adding a strategy
is adding its module (and its test). None imports torch at import time (see ``base``).
"""

import pkgutil
from importlib import import_module

from .base import CostFacts, Estimate, RunContext, Strategy, StrategyOptions, StrategyResult
from .registry import STRATEGIES, ladder, register

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")
# listed cheapest first (help, messages), whatever order the modules were found in
for _name, _cls in sorted(STRATEGIES.items(), key=lambda kv: (kv[1].ladder_rank or 1000, kv[0])):
    STRATEGIES[_name] = STRATEGIES.pop(_name)

__all__ = ["STRATEGIES", "CostFacts", "Estimate", "RunContext", "Strategy", "StrategyOptions", "StrategyResult",
           "ladder", "register"]
