"""A sweep's SPEC: parsed and checked before anything runs, then expanded into the points to compute.

The SPEC is a JSON object (the headless ``--sweep`` file, the Strategy lab's form); docs/sweeps.md
documents every field. :func:`parse_spec` refuses a bad one with :class:`SpecError`, whose ``field``
names the culprit (``space.fast``, ``walk_forward.folds``...): a sweep never starts on a half-valid
spec. Values of the space are typed by the strategy's own :class:`~services.strategies.api.Param`
(an ``int`` parameter gets ints, a ``Decimal`` one exact decimals).

:func:`expand` turns a spec into points: the whole grid (grid search and the candidate set of
Bayesian search) or a seeded sample of it (random search). Every point is checked by the strategy
(``resolve_params``: ranges, and cross-parameter rules such as fast < slow); the refused ones come
back with the reason and never reach a worker. Points are de-duplicated by :func:`point_key`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from services.domain.enums import Timeframe
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.lab.model import METRICS, FoldKind, SearchKind, SweepSpec, WalkForwardSpec, point_key
from services.strategies.api import Param, ParamError, Strategy

#: The most points one sweep may hold (the grid's size, or a random/Bayesian budget).
MAX_POINTS: Final = 100_000
#: The most values one parameter may take, and the most symbols one sweep may trade.
MAX_VALUES: Final = 10_000
MAX_SYMBOLS: Final = 100
MAX_DAYS: Final = 20 * 366
MAX_FOLDS: Final = 200
#: Random and Bayesian search without ``points``: this many, or the whole space when smaller.
DEFAULT_BUDGET: Final = 100

_FIELDS: Final = frozenset(
    {
        "strategy", "symbols", "days", "start", "end", "timeframe", "search", "space", "fixed",
        "metric", "points", "seed", "walk_forward", "initial_cash", "commission_per_share",
        "slippage_bps", "costs",
    }
)  # fmt: skip
_COSTS: Final = ("initial_cash", "commission_per_share", "slippage_bps")
_WF_FIELDS: Final = frozenset({"kind", "folds", "in_sample_days", "out_of_sample_days"})


class SpecError(ValueError):
    """A SPEC that cannot run; ``field`` names the part that is wrong (the message starts with it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_spec(
    data: Mapping[str, Any], registry: Mapping[str, type[Strategy]], *, now: datetime
) -> SweepSpec:
    """Check ``data`` and return the typed :class:`SweepSpec`; raise :class:`SpecError` naming the field."""
    if not isinstance(data, Mapping):
        raise SpecError("spec", "must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise SpecError(unknown[0], f"unknown field; known: {', '.join(sorted(_FIELDS))}")
    data = _with_costs(data)
    cls = _strategy(data, registry)
    specs = {p.name: p for p in cls.param_specs()}
    search = _choice(data.get("search", "grid"), SearchKind, "search")
    space = _space(data.get("space"), specs)
    fixed = _fixed(data.get("fixed", {}), specs, space)
    size = math.prod(len(v) for v in space.values())
    if size > MAX_POINTS:
        raise SpecError("space", f"the grid has {size:,} points; at most {MAX_POINTS:,} per sweep")
    timeframe = _choice(data.get("timeframe", "1Min"), Timeframe, "timeframe")
    start, end = _dates(data, _last_whole_bar(now, timeframe))
    metric = data.get("metric", "sharpe")
    if metric not in METRICS:
        raise SpecError("metric", f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    points = _points(data.get("points"), search)
    cash = _decimal(data.get("initial_cash", "100000"), "initial_cash", positive=True)
    return SweepSpec(
        strategy=cls.KEY,
        symbols=_symbols(data.get("symbols")),
        timeframe=timeframe,
        start=start,
        end=end,
        search=search,
        space=space,
        fixed=fixed,
        metric=metric,
        max_points=points,
        seed=_int(data.get("seed", 0), "seed", 0, 2**32 - 1),
        walk_forward=_walk_forward(data.get("walk_forward"), start, end),
        initial_cash=cash,
        commission_per_share=_decimal(data.get("commission_per_share", "0"), "commission_per_share"),
        slippage_bps=_decimal(data.get("slippage_bps", "0"), "slippage_bps"),
    )


# -- fields --------------------------------------------------------------------------------------


def _with_costs(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``costs: {initial_cash, commission_per_share, slippage_bps}`` read as the top-level fields."""
    costs = data.get("costs")
    if costs is None:
        return data
    if not isinstance(costs, Mapping):
        raise SpecError("costs", f"expected an object with {', '.join(_COSTS)}")
    merged = {k: v for k, v in data.items() if k != "costs"}
    for name, value in costs.items():
        if name not in _COSTS:
            raise SpecError(f"costs.{name}", f"unknown cost; known: {', '.join(_COSTS)}")
        if name in data:
            raise SpecError(f"costs.{name}", "given twice (in costs and at the top level)")
        merged[name] = value
    return merged


def _strategy(data: Mapping[str, Any], registry: Mapping[str, type[Strategy]]) -> type[Strategy]:
    name = data.get("strategy")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("strategy", "required: the key of a strategy, e.g. sma_crossover")
    cls = registry.get(name.strip())
    if cls is None:
        raise SpecError("strategy", f"unknown strategy {name!r}; available: {', '.join(sorted(registry))}")
    return cls


def _symbols(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise SpecError("symbols", 'required: a list of symbols, e.g. ["AAPL"]')
    if len(value) > MAX_SYMBOLS:
        raise SpecError("symbols", f"{len(value)} symbols; at most {MAX_SYMBOLS}")
    out: list[str] = []
    for item in value:
        try:
            out.append(normalize_symbol(str(item)))
        except (InvalidSymbolError, ValueError) as exc:
            raise SpecError("symbols", str(exc)) from None
    return tuple(dict.fromkeys(out))


def _choice(value: Any, enum: Any, field: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise SpecError(field, f"{value!r} is not one of {allowed}") from None


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise SpecError(field, f"must be between {low:,} and {high:,}, got {value:,}")
    return value


def _decimal(value: Any, field: str, *, positive: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise SpecError(field, f"expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise SpecError(field, f"expected a number, got {value!r}") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise SpecError(field, f"must be {'positive' if positive else 'zero or more'}, got {value!r}")
    return str(number)


def _when(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise SpecError(field, f"expected an ISO date such as 2026-01-02, got {value!r}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SpecError(field, f"expected an ISO date such as 2026-01-02, got {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _last_whole_bar(now: datetime, timeframe: Timeframe) -> datetime:
    """Where a range that ends "now" stops: the start of the bar still forming (ranges are half-open),
    so a sweep and the same point replayed later see the same bars, and no bar whose close can still
    move is measured."""
    utc = now.astimezone(UTC)
    if timeframe is Timeframe.DAY_1:
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = timeframe.seconds
    epoch = int(utc.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _dates(data: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime]:
    if "days" in data:
        if "start" in data:
            raise SpecError("start", "give either days or start/end, not both")
        days = _int(data["days"], "days", 1, MAX_DAYS)
        end = _when(data["end"], "end") if "end" in data else now.astimezone(UTC)
        return end - timedelta(days=days), end
    if "start" not in data:
        raise SpecError("days", "required: days of history, or start (and end) as ISO dates")
    start = _when(data["start"], "start")
    end = _when(data["end"], "end") if "end" in data else now.astimezone(UTC)
    if end <= start:
        raise SpecError("end", f"must be after start ({start.isoformat()})")
    if end - start > timedelta(days=MAX_DAYS):
        raise SpecError("start", f"the range spans more than {MAX_DAYS:,} days")
    return start, end


def _points(value: Any, search: SearchKind) -> int | None:
    if value is None:
        return None
    if search is SearchKind.GRID:
        raise SpecError("points", "a grid search runs the whole grid; points is for random and bayes")
    return _int(value, "points", 1, MAX_POINTS)


# -- the space -----------------------------------------------------------------------------------


def _space(value: Any, specs: Mapping[str, Param]) -> dict[str, tuple[Any, ...]]:
    if not isinstance(value, Mapping) or not value:
        raise SpecError("space", 'required: at least one parameter and its values, e.g. {"fast": [2, 5]}')
    space: dict[str, tuple[Any, ...]] = {}
    for name, raw in value.items():
        field = f"space.{name}"
        param = _param(name, specs, field)
        values = _range(raw, param, field) if isinstance(raw, Mapping) else raw
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise SpecError(field, f"expected a list of values or a range object, got {raw!r}")
        if not values:
            raise SpecError(field, "has no values")
        if len(values) > MAX_VALUES:
            raise SpecError(field, f"{len(values):,} values; at most {MAX_VALUES:,}")
        typed = [_coerce(param, v, field) for v in values]
        space[name] = tuple(dict.fromkeys(typed))
    return space


def _param(name: str, specs: Mapping[str, Param], field: str) -> Param:
    if name == "symbols":
        raise SpecError(field, "symbols are set by the spec's symbols field, not swept")
    param = specs.get(name)
    if param is None:
        sweepable = ", ".join(sorted(n for n in specs if n != "symbols"))
        raise SpecError(field, f"unknown parameter; this strategy's parameters are {sweepable}")
    return param


def _coerce(param: Param, value: Any, field: str) -> Any:
    try:
        return param.coerce(value)
    except ParamError as exc:
        raise SpecError(field, str(exc)) from None


def _range(raw: Mapping[str, Any], param: Param, field: str) -> list[Any]:
    """``{"from": 2, "to": 20, "step": 2}``: both ends included (when the steps land on ``to``)."""
    if set(raw) != {"from", "to", "step"}:
        raise SpecError(field, 'a range is {"from": A, "to": B, "step": S}')
    if param.type not in (int, float, Decimal):
        raise SpecError(field, f"a range needs a numeric parameter; this one is {param.type.__name__}")
    try:
        low, high, step = (Decimal(str(raw[k])) for k in ("from", "to", "step"))
    except InvalidOperation:
        raise SpecError(field, f"range bounds must be numbers, got {dict(raw)!r}") from None
    if not all(x.is_finite() for x in (low, high, step)) or step <= 0 or high < low:
        raise SpecError(field, "a range needs from <= to and a positive step")
    count = int((high - low) / step) + 1
    if count > MAX_VALUES:
        raise SpecError(field, f"the range has {count:,} values; at most {MAX_VALUES:,}")
    values = [low + step * i for i in range(count)]
    if param.type is int:
        if any(v != v.to_integral_value() for v in values):
            raise SpecError(field, "an integer parameter needs whole-number from and step")
        return [int(v) for v in values]
    return [float(v) if param.type is float else v for v in values]


def _fixed(value: Any, specs: Mapping[str, Param], space: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError("fixed", "expected an object of parameter values")
    fixed: dict[str, Any] = {}
    for name, raw in value.items():
        field = f"fixed.{name}"
        param = _param(name, specs, field)
        if name in space:
            raise SpecError(field, "is also in the space; a parameter is either swept or fixed")
        fixed[name] = _coerce(param, raw, field)
    return fixed


def _walk_forward(value: Any, start: datetime, end: datetime) -> WalkForwardSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(
            "walk_forward", "expected an object with kind, folds, in_sample_days, out_of_sample_days"
        )
    unknown = sorted(set(value) - _WF_FIELDS)
    if unknown:
        raise SpecError(f"walk_forward.{unknown[0]}", "unknown field")
    for name in sorted(_WF_FIELDS):
        if name not in value:
            raise SpecError(f"walk_forward.{name}", "required")
    wf = WalkForwardSpec(
        kind=_choice(value["kind"], FoldKind, "walk_forward.kind"),
        folds=_int(value["folds"], "walk_forward.folds", 1, MAX_FOLDS),
        in_sample_days=_int(value["in_sample_days"], "walk_forward.in_sample_days", 1, MAX_DAYS),
        out_of_sample_days=_int(value["out_of_sample_days"], "walk_forward.out_of_sample_days", 1, MAX_DAYS),
    )
    from services.lab.folds import FoldError, make_folds

    try:  # days are trading days (NYSE): the folds must fit the range's sessions
        make_folds(start, end, wf)
    except FoldError as exc:
        raise SpecError("walk_forward.folds", str(exc)) from None
    return wf


# -- JSON ----------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A parameter value as JSON: exact decimals as text, symbol tuples as lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def params_json(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in params.items()}


def spec_to_json(spec: SweepSpec) -> dict[str, Any]:
    """The spec as a JSON object :func:`parse_spec` reads back to the same spec (dates made absolute)."""
    out: dict[str, Any] = {
        "strategy": spec.strategy,
        "symbols": list(spec.symbols),
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "timeframe": spec.timeframe.value,
        "search": spec.search.value,
        "space": {k: [jsonable(v) for v in vs] for k, vs in spec.space.items()},
        "fixed": params_json(spec.fixed),
        "metric": spec.metric,
        "seed": spec.seed,
        "initial_cash": spec.initial_cash,
        "commission_per_share": spec.commission_per_share,
        "slippage_bps": spec.slippage_bps,
    }
    if spec.max_points is not None:
        out["points"] = spec.max_points
    if spec.walk_forward is not None:
        wf = spec.walk_forward
        out["walk_forward"] = {
            "kind": wf.kind.value,
            "folds": wf.folds,
            "in_sample_days": wf.in_sample_days,
            "out_of_sample_days": wf.out_of_sample_days,
        }
    return out


# -- expansion -----------------------------------------------------------------------------------


def check_point(
    spec: SweepSpec, cls: type[Strategy], point: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """``point`` merged with the spec's fixed parameters and symbols, and the strategy's refusal (or None)."""
    params = {**spec.fixed, **point, "symbols": spec.symbols}
    try:
        cls.resolve_params(params)
    except ParamError as exc:
        return params, str(exc)
    return params, None


def grid(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    names = list(spec.space)
    for combo in itertools.product(*(spec.space[n] for n in names)):
        yield dict(zip(names, combo, strict=True))


def budget(spec: SweepSpec, valid: int) -> int:
    """How many points a sweep computes out of ``valid`` candidates."""
    if spec.search is SearchKind.GRID:
        return valid
    return min(valid, spec.max_points or DEFAULT_BUDGET)


def expand(
    spec: SweepSpec, registry: Mapping[str, type[Strategy]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """(valid points, de-duplicated; refused points with the strategy's reason).

    Grid and Bayesian search: the whole valid grid (Bayesian search asks within it). Random search:
    a sample of ``max_points`` (default 100) drawn without repetition from the valid grid, seeded by
    ``seed`` (the same spec always gives the same sample).
    """
    cls = registry.get(spec.strategy)
    if cls is None:
        raise SpecError("strategy", f"unknown strategy {spec.strategy!r}")
    valid: list[dict[str, Any]] = []
    refused: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()
    for point in grid(spec):
        key = point_key(point)
        if key in seen:
            continue
        seen.add(key)
        _params, reason = check_point(spec, cls, point)
        if reason is None:
            valid.append(point)
        else:
            refused.append((point, reason))
    if spec.search is SearchKind.RANDOM:
        valid = random.Random(spec.seed).sample(valid, budget(spec, len(valid)))
    return valid, refused
