"""The strategy registry: name -> strategy class. Strategies register themselves with ``@register``
when their module is imported; ``strategies/__init__`` imports every module of the package."""

from __future__ import annotations

from .base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def ladder(applicable: list[str]) -> list[str]:
    """The ``--budget`` ladder's rungs among ``applicable`` strategies, cheapest first."""
    rungs = [STRATEGIES[n] for n in applicable if STRATEGIES[n].ladder_rank is not None]
    return [s.name for s in sorted(rungs, key=lambda s: s.ladder_rank)]
