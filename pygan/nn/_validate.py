"""Constructor-argument checks for the layers: each raises TypeError or ValueError naming the
argument and what was expected. The number checks are the ops layer's own (pygan.ops._checks)."""

from __future__ import annotations

from ..ops import _checks


def positive_int(name: str, value: object) -> int:
    return _checks.integer(name, value, low=1)


def non_negative_int(name: str, value: object) -> int:
    return _checks.integer(name, value, low=0)


def real(name: str, value: object, *, low: float | None = None, low_open: bool = False,
         high: float | None = None) -> float:
    """A finite Python number within [low, high] (or (low, high] with ``low_open``)."""
    return _checks.number(name, value, low=low, high=high, low_open=low_open)


def choice(name: str, value: object, options: tuple) -> object:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
