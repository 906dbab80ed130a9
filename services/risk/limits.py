"""RiskLimits: the numbers the pre-trade gate enforces, with sane defaults, loadable from strings.

The settings file keeps limits per profile as strings; :meth:`RiskLimits.from_strings` parses them
and refuses unknown keys and bad values with a :class:`RiskLimitsError` naming the key. A max
notional per order always exists (there is no "unlimited").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from services.domain.money import InvalidNumberError, to_decimal, to_int


class RiskLimitsError(ValueError):
    """A limit in the settings is unknown or not a valid value."""


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_qty: Decimal = Decimal(10_000)
    max_order_notional: Decimal = Decimal(50_000)
    price_band_pct: Decimal = Decimal(5)  # a limit more than this % through the far side is a fat finger
    max_position_qty: Decimal = Decimal(20_000)
    max_position_notional: Decimal = Decimal(100_000)
    max_gross_exposure: Decimal = Decimal(250_000)
    max_net_exposure: Decimal = Decimal(200_000)
    max_daily_loss: Decimal = Decimal(5_000)
    max_drawdown_pct: Decimal = Decimal(10)
    loss_breach_state: str = "HALTED"  # HALTED or REDUCING
    max_open_orders: int = 50
    max_orders_per_minute: int = 30
    duplicate_window_s: Decimal = Decimal(2)
    allow_symbols: frozenset[str] = field(default_factory=frozenset)  # empty = every symbol
    deny_symbols: frozenset[str] = field(default_factory=frozenset)
    allow_short: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Decimal | int) and not isinstance(v, bool) and v < 0:
                raise RiskLimitsError(f"risk limit {f.name} must not be negative, got {v}")
        if self.max_order_notional <= 0:
            raise RiskLimitsError("risk limit max_order_notional must be positive (it is always enforced)")
        if self.loss_breach_state not in ("HALTED", "REDUCING"):
            raise RiskLimitsError(
                f"risk limit loss_breach_state must be HALTED or REDUCING, got {self.loss_breach_state!r}"
            )

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> RiskLimits:
        """Parse ``{"max_order_qty": "500", "deny_symbols": "GME, AMC", ...}``."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise RiskLimitsError(f"unknown risk limit {key!r}; known: {', '.join(sorted(known))}")
            default = getattr(cls(), key)
            text = str(raw).strip()
            try:
                if isinstance(default, bool):
                    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(text)
                    kwargs[key] = text.lower() in ("true", "1", "yes")
                elif isinstance(default, int):
                    kwargs[key] = to_int(text, field=key)
                elif isinstance(default, Decimal):
                    kwargs[key] = to_decimal(text, field=key)
                elif isinstance(default, frozenset):
                    kwargs[key] = frozenset(s.strip().upper() for s in text.split(",") if s.strip())
                else:
                    kwargs[key] = text.upper()
            except InvalidNumberError as exc:
                raise RiskLimitsError(f"risk limit {key} = {str(raw)[:40]!r}: {exc}") from None
            except ValueError:
                raise RiskLimitsError(
                    f"risk limit {key} = {str(raw)[:40]!r} is not a valid {type(default).__name__}"
                ) from None
        return cls(**kwargs)
