"""The lab's parameter fields as a trader types them: one value (the parameter is fixed), a list
``2, 3, 5`` or a range ``2..20 step 2`` (both ends included; ``step`` defaults to 1). Each value is
typed and checked by the strategy's own :class:`~services.strategies.api.Param`, so the lab accepts
exactly what the backtest dialog and the command line accept. Qt-free: the dialog and its tests
use it alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from services.strategies.api import Param, ParamError

#: the most values one range may expand to (a typo such as ``1..1000000`` is refused, not built)
MAX_VALUES = 10_000
#: the most grid points the window expands before asking the engine (the product of the sizes)
MAX_GRID = 100_000

_RANGE = re.compile(
    r"^\s*(?P<lo>[^.\s][^\s]*?)\s*\.\.\s*(?P<hi>[^\s]+?)\s*(?:step\s+(?P<step>[^\s]+))?\s*$", re.I
)


class SpaceError(ValueError):
    """A parameter field that cannot be read; the message names the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class FieldValues:
    """One field read: its typed values (one value: a fixed parameter)."""

    name: str
    values: tuple[Any, ...]

    @property
    def swept(self) -> bool:
        return len(self.values) > 1


def _number(text: str, kind: type, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise SpaceError(name, f"{text!r} is not a number") from None
    if not value.is_finite():
        raise SpaceError(name, f"{text!r} is not a finite number")
    if kind is int and value != value.to_integral_value():
        raise SpaceError(name, f"{text!r} is not a whole number")
    return value


def _range(spec: Param, lo_text: str, hi_text: str, step_text: str | None) -> list[Any]:
    name = spec.name
    if spec.type not in (int, float, Decimal):
        raise SpaceError(name, "a range needs a numeric parameter; list the values instead")
    lo, hi = _number(lo_text, spec.type, name), _number(hi_text, spec.type, name)
    step = _number(step_text, spec.type, name) if step_text else Decimal(1)
    if step <= 0:
        raise SpaceError(name, f"the step must be positive, got {step_text}")
    if hi < lo:
        raise SpaceError(name, f"the range {lo_text}..{hi_text} runs backwards")
    count = int((hi - lo) / step) + 1
    if count > MAX_VALUES:
        raise SpaceError(
            name, f"{lo_text}..{hi_text} step {step} is {count:,} values (at most {MAX_VALUES:,})"
        )
    out: list[Any] = []
    for i in range(count):
        value = lo + step * i
        out.append(int(value) if spec.type is int else (float(value) if spec.type is float else value))
    return out


def parse_field(spec: Param, text: str) -> FieldValues:
    """The values of one parameter field: empty means the parameter's default. Raises
    :class:`SpaceError` naming the parameter."""
    stripped = text.strip()
    if not stripped:
        return FieldValues(spec.name, (spec.default,))
    match = _RANGE.match(stripped)
    raw: list[Any]
    if match is not None and spec.type in (int, float, Decimal):
        raw = _range(spec, match["lo"], match["hi"], match["step"])
    else:
        raw = [p.strip() for p in stripped.split(",")]
        if any(not p for p in raw):
            raise SpaceError(spec.name, f"an empty value in {stripped!r}")
    typed: list[Any] = []
    for value in raw:
        try:
            item = spec.coerce(value)
        except ParamError as exc:
            raise SpaceError(
                spec.name, str(exc).removeprefix(f"parameter {spec.name!r}").strip(" :")
            ) from None
        if isinstance(item, float) and not math.isfinite(item):
            raise SpaceError(spec.name, f"{value!r} is not a finite number")
        if item not in typed:
            typed.append(item)
    return FieldValues(spec.name, tuple(typed))


def json_value(value: Any) -> Any:
    """A typed parameter value as the sweep spec's JSON carries it (Decimal as exact text)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):
        return list(value)
    return value


def grid_size(fields: list[FieldValues]) -> int:
    """How many points the full grid over ``fields`` has."""
    return math.prod(len(f.values) for f in fields) if fields else 1
