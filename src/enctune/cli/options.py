"""Command-line options made from ``TrainConfig``'s fields: one flag per field, with its help and its default.

A field's ``description`` is its help; ``json_schema_extra`` may give its flag spelling
(``"--calibrate/--no-calibrate"``) and how its default reads. Every option defaults to None on the
command line, which ``make_config`` reads as "not given" (the config file's value, or the field's
default, then applies); the help shows the field's real default. So a strategy's new option is a
new flag without an edit here.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable

import typer

from ..config import TrainConfig


def _cli_type(annotation) -> type:
    """The type Typer parses a field's flag as: bool, int, float or str (Literals, unions and paths are str)."""
    args = {a for a in typing.get_args(annotation) if a is not type(None)} or {annotation}
    if args == {bool}:
        return bool
    if args <= {int}:
        return int
    if args <= {float, int}:
        return float
    return str


def _default_text(name: str, info) -> str:
    extra = info.json_schema_extra or {}
    if extra.get("required"):
        return "required, here or in --config"
    if "default_text" in extra:
        return extra["default_text"]
    if info.default is None:
        return "none"
    if isinstance(info.default, bool):
        flag = extra.get("flag")
        if flag and "/" in flag:
            on, off = flag.split("/")
            return on if info.default else off
        return "on" if info.default else "off"
    return str(info.default)


def option(name: str) -> inspect.Parameter:
    """The Typer parameter of one ``TrainConfig`` field."""
    info = TrainConfig.model_fields[name]
    extra = info.json_schema_extra or {}
    flag = extra.get("flag") or "--" + name.replace("_", "-")
    help_text = f"{info.description} [default: {_default_text(name, info)}]"
    kind = _cli_type(info.annotation)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind | None,
                             default=typer.Option(None, flag, help=help_text, show_default=False))


def extra_option(name: str, kind: type, default, *flags: str, help: str) -> inspect.Parameter:
    """A command's own parameter beside the config's (--config, --quiet, --json)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                             default=typer.Option(default, *flags, help=help))


def command_with(fn: Callable, params: list[inspect.Parameter]) -> Callable:
    """``fn(**values)`` as a Typer command whose parameters are ``params``: Typer reads the signature."""
    def command(**values):
        return fn(**values)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__, command.__name__ = fn.__doc__, fn.__name__
    return command


def config_fields(only: typing.Iterable[str] | None = None) -> list[str]:
    """TrainConfig's fields in order (or those of ``only`` that exist)."""
    names = list(TrainConfig.model_fields)
    return names if only is None else [n for n in names if n in set(only)]


__all__ = ["command_with", "config_fields", "extra_option", "option"]
