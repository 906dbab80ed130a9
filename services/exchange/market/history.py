"""Deterministic minute history, generated on demand, joined to what the live simulator really sent.

Nothing is stored: a symbol's day-level price path is a mean-reverting log walk computed once per
symbol (vectorised over ~25 years), and each day's one-minute bars come from a numpy Generator keyed
by ``(seed, symbol, day)``, as a Brownian bridge from that day's level to the next day's level, so any
range can be produced without generating what lies before it. Stocks get every minute from 04:00 to
20:00 New York time on trading days (pre-market, regular session and after-hours, as Alpaca's iex and
sip minute bars include extended-hours trades), with a fraction of the session's volume outside the
regular hours; crypto every minute. Each day's volume varies around the symbol's typical volume. A
stock's day is the New York calendar day; a crypto day is the UTC calendar day (Alpaca aligns crypto
daily bars to midnight UTC).

:class:`BarSource` serves history: generated minutes before the simulator started, then the minute
bars the live stream actually produced (the simulator starts each symbol at the close of the last
completed generated minute, so the join has no jump). Coarser timeframes aggregate the minutes.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from services.domain.calendar import NEW_YORK, MarketCalendar
from services.exchange.contracts import Instrument
from services.exchange.market.bars import F64, I64, Bars, aggregate

NS = 1_000_000_000
MINUTE_NS = 60 * NS
EPOCH = date(2015, 1, 1)  # day index 0 of the day-level walk
_SPAN_DAYS = 366 * 25
_PHI = 0.998  # daily mean reversion of the log level towards the instrument's base price


class PeriodUnit(StrEnum):
    MINUTE = "Min"
    HOUR = "Hour"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"


@dataclass(frozen=True, slots=True)
class BarPeriod:
    """The timeframe of a bar request: ``amount`` units (``BarPeriod(5, PeriodUnit.MINUTE)`` is 5Min)."""

    amount: int
    unit: PeriodUnit

    def __str__(self) -> str:
        return f"{self.amount}{self.unit.value}"

    @property
    def intraday(self) -> bool:
        return self.unit in (PeriodUnit.MINUTE, PeriodUnit.HOUR)

    @property
    def step_ns(self) -> int:
        return self.amount * (MINUTE_NS if self.unit is PeriodUnit.MINUTE else 60 * MINUTE_NS)


_TF = re.compile(r"^(\d{1,3})(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
_ALLOWED = {"Min": range(1, 60), "Hour": range(1, 24), "Day": (1,), "Week": (1,), "Month": (1, 2, 3, 6, 12)}


def parse_timeframe(text: str) -> BarPeriod:
    """``"5Min"`` → BarPeriod(5, MINUTE). Raises ValueError with Alpaca's wording on anything else."""
    m = _TF.match(text.strip())
    if not m:
        raise ValueError(f"invalid timeframe: {text!r}")
    amount, unit = int(m.group(1)), _UNIT.get(m.group(2), m.group(2))
    if amount not in _ALLOWED[unit]:
        raise ValueError(f"invalid timeframe: {text!r} ({unit} amount must be in {list(_ALLOWED[unit])})")
    return BarPeriod(amount, PeriodUnit(unit))


# ---------------------------------------------------------------------------------------------
# Generation


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:4], "big")


def ny_midnight_ns(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=NEW_YORK).timestamp()) * NS


def ny_date(ns: int) -> date:
    return datetime.fromtimestamp(ns / NS, UTC).astimezone(NEW_YORK).date()


def utc_midnight_ns(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp()) * NS


def utc_date(ns: int) -> date:
    return datetime.fromtimestamp(ns / NS, UTC).date()


def day_start_ns(crypto: bool, day: date) -> int:
    """Start of ``day`` for an asset class: UTC midnight for crypto, New York midnight for stocks."""
    return utc_midnight_ns(day) if crypto else ny_midnight_ns(day)


def day_of(crypto: bool, ns: int) -> date:
    """The trading day holding ``ns`` for an asset class (UTC date for crypto, New York date for stocks)."""
    return utc_date(ns) if crypto else ny_date(ns)


EXTENDED_VOLUME_SHARE = 0.04  # an extended-hours minute trades this share of an average session minute
EXTENDED_VOL_SHARE = 0.4  # and moves this much relative to a session minute


class HistoryGenerator:
    """Generated one-minute bars for any day of any symbol; pure function of (seed, symbol, day).

    Thread: the exchange's event loop (not thread-safe: it keeps an LRU cache of recent days).
    """

    def __init__(
        self,
        universe: Mapping[str, Instrument],
        calendar: MarketCalendar,
        seed: int = 0,
        *,
        cache_days: int = 512,
    ) -> None:
        self.universe = universe
        self.calendar = calendar
        self.seed = int(seed)
        self._levels: dict[str, F64] = {}
        self._cache: OrderedDict[tuple[str, date], Bars] = OrderedDict()
        self._cache_days = cache_days

    # day-level log price path --------------------------------------------------------------
    def _level(self, symbol: str) -> F64:
        lv = self._levels.get(symbol)
        if lv is None:
            inst = self.universe[symbol]
            rng = np.random.default_rng([self.seed, _symbol_key(symbol), 0xDA11])
            sigma = 0.03 if inst.is_crypto else 0.017
            eps = rng.standard_normal(_SPAN_DAYS) * sigma
            k = np.arange(_SPAN_DAYS, dtype=np.float64)
            # x_d = sum_{j<=d} phi^(d-j) eps_j, vectorised as phi^d * cumsum(eps_j * phi^-j).
            x = np.power(_PHI, k) * np.cumsum(eps * np.power(_PHI, -k))
            lv = np.log(float(inst.base_price)) + x
            self._levels[symbol] = lv
        return lv

    def is_crypto(self, symbol: str) -> bool:
        return self.universe[symbol].is_crypto

    def day_start(self, symbol: str, day: date) -> int:
        """Start (ns) of the symbol's ``day``: UTC midnight for crypto, New York midnight for stocks."""
        return day_start_ns(self.universe[symbol].is_crypto, day)

    def day_of(self, symbol: str, ns: int) -> date:
        """The symbol's trading day holding ``ns``."""
        return day_of(self.universe[symbol].is_crypto, ns)

    def minutes_of_day(self, symbol: str, day: date) -> I64:
        """Start times (ns) of the day's trading minutes for this symbol (empty on a closed day).

        Stocks trade from the pre-market open to the after-hours close (04:00 to 20:00 New York time,
        17:00 on early-close days); crypto trades every minute of the UTC day."""
        inst = self.universe[symbol]
        if inst.is_crypto:
            lo, hi = utc_midnight_ns(day), utc_midnight_ns(day + timedelta(days=1))
        else:
            s = self.calendar.session(day)
            if s is None:
                return np.empty(0, dtype=np.int64)
            lo, hi = int(s.extended_open.timestamp()) * NS, int(s.extended_close.timestamp()) * NS
        return np.arange(lo, hi, MINUTE_NS, dtype=np.int64)

    def _regular(self, symbol: str, day: date, t: I64) -> npt.NDArray[np.bool_]:
        """Which of the day's minutes lie in the regular session (all of them for crypto)."""
        if self.universe[symbol].is_crypto:
            return np.ones(len(t), dtype=bool)
        s = self.calendar.session(day)
        if s is None:
            return np.zeros(len(t), dtype=bool)
        return (t >= int(s.open.timestamp()) * NS) & (t < int(s.close.timestamp()) * NS)

    def day(self, symbol: str, day: date) -> Bars:
        """All generated one-minute bars of ``day`` (cached)."""
        key = (symbol, day)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        bars = self._generate_day(symbol, day)
        self._cache[key] = bars
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return bars

    def _generate_day(self, symbol: str, day: date) -> Bars:
        t = self.minutes_of_day(symbol, day)
        m = len(t)
        if m == 0:
            return Bars.empty()
        inst = self.universe[symbol]
        idx = (day - EPOCH).days
        lv = self._level(symbol)
        if not 0 <= idx < len(lv) - 1:
            return Bars.empty()
        l0, l1 = float(lv[idx]), float(lv[idx + 1])
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), idx, 1])
        crypto = inst.is_crypto
        day_sigma = (0.025 if crypto else 0.014) * float(np.exp(0.3 * rng.standard_normal()))
        # How busy the day is: a symbol's daily volume varies from day to day.
        day_activity = float(rng.lognormal(0.0, 0.35))
        regular = self._regular(symbol, day, t)
        # Position of each minute within the regular session (0 at the open, 1 at the close).
        reg_idx = np.cumsum(regular) - 1
        n_reg = max(int(regular.sum()), 1)
        x = np.clip(reg_idx, 0, None) / max(n_reg - 1, 1)
        profile = 1.0 + (0.3 if crypto else 2.0) * (2 * x - 1) ** 2  # U-shape through the session
        profile = np.where(regular, profile, EXTENDED_VOL_SHARE)
        sig = profile / np.sqrt(np.sum(profile**2)) * day_sigma
        inc = rng.standard_normal(m) * sig
        path = np.cumsum(inc)
        weight = np.cumsum(sig**2) / np.sum(sig**2)
        path = path - weight * (path[-1] - (l1 - l0))  # bridge: end the day at the next day's level
        tick = float(inst.tick)
        close = np.maximum(np.round(np.exp(l0 + path) / tick) * tick, tick)
        open_ = np.empty(m)
        open_[0] = max(round(float(np.exp(l0)) / tick) * tick, tick)
        open_[1:] = close[:-1]
        up = np.abs(rng.standard_normal(m)) * sig * 0.7
        dn = np.abs(rng.standard_normal(m)) * sig * 0.7
        high = np.ceil(np.maximum(open_, close) * np.exp(up) / tick - 1e-9) * tick
        low = np.maximum(np.floor(np.minimum(open_, close) * np.exp(-dn) / tick + 1e-9) * tick, tick)
        dec = max(0, -int(inst.tick.as_tuple().exponent))
        open_, high, low, close = (np.round(a, dec) for a in (open_, high, low, close))
        vol = np.round(
            self.expected_volume(symbol, day, t) * day_activity * rng.lognormal(-0.125, 0.5, m),
            6 if crypto else 0,
        )
        if crypto:
            avg_trade = self._daily_units(symbol) / 20_000
        else:
            vol = np.maximum(vol, 1)
            avg_trade = 120.0
        n = np.maximum(np.round(vol / avg_trade), 1).astype(np.int64)
        vw = np.round(np.clip((high + low + 2 * close) / 4, low, high), 4)
        return Bars(t, open_, high, low, close, vol.astype(np.float64), n, vw)

    def _daily_units(self, symbol: str) -> float:
        """The symbol's typical daily volume (shares, or coins for crypto)."""
        key = _symbol_key(symbol)
        if self.universe[symbol].is_crypto:
            return (2_000 if symbol.startswith("BTC") else 30_000) * (0.5 + (key % 100) / 100)
        return 2e6 + (key % 5000) * 1e4

    def expected_volume(self, symbol: str, day: date, t: I64) -> F64:
        """Typical volume of each minute ``t`` of ``day`` (before the day's activity and the noise):
        a U-shaped session for stocks with a trickle in the extended hours, a smooth day for crypto."""
        m = len(t)
        if m == 0:
            return np.empty(0, dtype=np.float64)
        regular = self._regular(symbol, day, t)
        reg_idx = np.cumsum(regular) - 1
        n_reg = max(int(regular.sum()), 1)
        x = np.clip(reg_idx, 0, None) / max(n_reg - 1, 1)
        units = self._daily_units(symbol)
        if self.universe[symbol].is_crypto:
            shape = 1.0 + 0.5 * np.sin(np.pi * np.arange(m) / max(m - 1, 1)) ** 2
            return np.asarray(units * shape / shape.sum(), dtype=np.float64)
        shape = 1.0 + 4.0 * (2 * x - 1) ** 4
        per_regular = units * shape / shape[regular].sum() if regular.any() else units * shape / shape.sum()
        avg = units / n_reg
        return np.asarray(np.where(regular, per_regular, avg * EXTENDED_VOLUME_SHARE), dtype=np.float64)

    def minute(self, symbol: str, ns: int) -> tuple[float, float] | None:
        """(close, volume) of the generated minute starting at ``ns`` (None outside trading minutes)."""
        bars = self.day(symbol, self.day_of(symbol, ns))
        k = int(np.searchsorted(bars.t, ns))
        if k < len(bars) and int(bars.t[k]) == ns:
            return float(bars.c[k]), float(bars.v[k])
        return None

    def range(self, symbol: str, lo_ns: int, hi_ns: int) -> Iterator[tuple[date, Bars]]:
        """Per-day generated minutes with ``lo_ns <= t < hi_ns``, oldest day first."""
        d = self.day_of(symbol, lo_ns)
        last = self.day_of(symbol, max(lo_ns, hi_ns - 1))
        while d <= last:
            bars = self.day(symbol, d)
            if len(bars):
                sel = (bars.t >= lo_ns) & (bars.t < hi_ns)
                if sel.all():
                    yield d, bars
                elif sel.any():
                    yield d, bars.take(sel)
            d += timedelta(days=1)

    def last_minute_before(self, symbol: str, ns: int) -> tuple[int, float] | None:
        """(start ns, close) of the last generated minute that completed at or before ``ns``."""
        d = self.day_of(symbol, ns)
        for _ in range(20):
            bars = self.day(symbol, d)
            if len(bars):
                done = np.flatnonzero(bars.t + MINUTE_NS <= ns)
                if len(done):
                    i = int(done[-1])
                    return int(bars.t[i]), float(bars.c[i])
            d -= timedelta(days=1)
        return None


# ---------------------------------------------------------------------------------------------
# Joining history with the live stream


class LiveMinutes(Protocol):
    """What the live simulator really sent, as minute bars (implemented by MarketSimulator)."""

    def live_since_ns(self, symbol: str) -> int | None:
        """Start of the first minute served from live data (None: no live data for this symbol)."""
        ...

    def live_bars(self, symbol: str, lo_ns: int, hi_ns: int) -> Bars:
        """Completed live minute bars with ``lo_ns <= t < hi_ns``."""
        ...

    def now_ns(self) -> int:
        """The simulator's clock."""
        ...


class BarSource:
    """History as a client sees it: generated minutes, then the live minutes, at any timeframe."""

    def __init__(self, generator: HistoryGenerator, live: LiveMinutes | None = None) -> None:
        self.gen = generator
        self.live = live

    def _now(self) -> int:
        return self.live.now_ns() if self.live is not None else int(datetime.now(UTC).timestamp() * NS)

    def minutes(self, symbol: str, lo_ns: int, hi_ns: int) -> Iterator[tuple[date, Bars]]:
        """Completed minute bars in ``[lo_ns, hi_ns)``, one chunk per trading day, oldest first.

        The day the live stream began holds generated minutes before it and live minutes after:
        they come as that day's one chunk, so its daily bar is one bar."""
        pending: tuple[date, Bars] | None = None
        for day, chunk in self._minute_parts(symbol, lo_ns, hi_ns):
            if pending is not None and pending[0] == day:
                pending = (day, Bars.concat([pending[1], chunk]))
                continue
            if pending is not None:
                yield pending
            pending = (day, chunk)
        if pending is not None:
            yield pending

    def _minute_parts(self, symbol: str, lo_ns: int, hi_ns: int) -> Iterator[tuple[date, Bars]]:
        """The generated minutes per day, then the live minutes per day (a day may come twice)."""
        now = self._now()
        done_hi = min(hi_ns, now - now % MINUTE_NS)  # the running minute is not history yet
        since = self.live.live_since_ns(symbol) if self.live is not None else None
        gen_hi = done_hi if since is None else min(done_hi, since)
        yield from self.gen.range(symbol, lo_ns, gen_hi)
        if since is not None and self.live is not None and done_hi > max(lo_ns, since):
            live = self.live.live_bars(symbol, max(lo_ns, since), done_hi)
            if len(live):
                crypto = self.gen.is_crypto(symbol)
                first, last = day_of(crypto, int(live.t[0])), day_of(crypto, int(live.t[-1]))
                if first == last:
                    yield first, live
                else:
                    day_keys = np.array(
                        [day_start_ns(crypto, day_of(crypto, int(t))) for t in live.t], dtype=np.int64
                    )
                    for k in np.unique(day_keys):
                        yield day_of(crypto, int(k)), live.take(day_keys == k)

    def bars(self, symbol: str, tf: BarPeriod, lo_ns: int, hi_ns: int) -> Iterator[Bars]:
        """Bars of ``tf`` whose start lies in ``[lo_ns, hi_ns]``, in chunks, oldest first.

        Intraday buckets are aligned to the UTC epoch (5Min at :00, :05 ...; hourly bars on the hour,
        extended hours included, as Alpaca's: alpaca-py #580); stock daily bars start at New York
        midnight, crypto daily bars at UTC midnight; weeks on Monday; months on the 1st.
        """
        if tf.intraday:
            step = tf.step_ns
            first = lo_ns - lo_ns % step
            carry: Bars | None = None
            # Whole buckets: a bar starting at or before hi_ns holds all its minutes.
            for _, chunk in self.minutes(symbol, first, hi_ns - hi_ns % step + step):
                agg = aggregate(chunk, chunk.t - chunk.t % step)
                if carry is not None:
                    if len(agg) and agg.t[0] == carry.t[0]:
                        agg = Bars.concat(
                            [
                                aggregate(
                                    Bars.concat([carry, agg.take(slice(0, 1))]),
                                    np.zeros(2, dtype=np.int64) + carry.t[0],
                                ),
                                agg.take(slice(1, None)),
                            ]
                        )
                    else:
                        agg = Bars.concat([carry, agg])
                if len(agg) == 0:
                    continue
                carry = agg.take(slice(len(agg) - 1, None))
                body = agg.take(slice(0, len(agg) - 1))
                body = body.take((body.t >= lo_ns) & (body.t <= hi_ns))
                if len(body):
                    yield body
            if carry is not None:
                carry = carry.take((carry.t >= lo_ns) & (carry.t <= hi_ns))
                if len(carry):
                    yield carry
            return
        # Day / Week / Month: one daily bar per day (the running day included), then group.
        crypto = self.gen.is_crypto(symbol)
        lo_day, hi_day = day_of(crypto, lo_ns), day_of(crypto, hi_ns)
        if tf.unit is PeriodUnit.WEEK:
            lo_day -= timedelta(days=lo_day.weekday())
        elif tf.unit is PeriodUnit.MONTH:
            lo_day = lo_day.replace(day=1)
        daily = self._daily(symbol, lo_day, hi_day)
        if tf.unit is PeriodUnit.WEEK:
            keys = np.array(
                [day_start_ns(crypto, _monday(day_of(crypto, int(t)))) for t in daily.t], dtype=np.int64
            )
            daily = aggregate(daily, keys)
        elif tf.unit is PeriodUnit.MONTH:
            keys = np.array(
                [_month_key(day_of(crypto, int(t)), tf.amount, crypto) for t in daily.t], dtype=np.int64
            )
            daily = aggregate(daily, keys)
        floor = lo_ns if tf.unit is PeriodUnit.DAY else day_start_ns(crypto, lo_day)
        daily = daily.take((daily.t >= floor) & (daily.t <= hi_ns))
        if len(daily):
            yield daily

    def _daily(self, symbol: str, lo_day: date, hi_day: date) -> Bars:
        rows = []
        crypto = self.gen.is_crypto(symbol)
        lo = day_start_ns(crypto, lo_day)
        hi = day_start_ns(crypto, hi_day + timedelta(days=1))
        for d, chunk in self.minutes(symbol, lo, hi):
            day_bar = aggregate(chunk, np.zeros(len(chunk), dtype=np.int64) + day_start_ns(crypto, d))
            rows.append(day_bar)
        return Bars.concat(rows)

    def daily_bar(self, symbol: str, day: date) -> Bars:
        """The single daily bar of ``day`` (empty if nothing traded)."""
        return self._daily(symbol, day, day)


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _month_key(d: date, months: int, crypto: bool = False) -> int:
    m0 = (d.month - 1) // months * months + 1
    return day_start_ns(crypto, date(d.year, m0, 1))


# ---------------------------------------------------------------------------------------------
# Synthetic trades and quotes inside minute bars


@dataclass(frozen=True, slots=True)
class Ticks:
    """Column arrays of trades (p, s) or quotes (bp, bs, ap, as) from minute bars."""

    t: I64
    a: F64  # trade price | bid price
    b: F64  # trade size  | bid size
    c: F64  # unused      | ask price
    d: F64  # unused      | ask size

    def __len__(self) -> int:
        return len(self.t)


def ticks_from_bars(bars: Bars, *, seed: int, symbol: str, tick: float, quotes: bool, crypto: bool) -> Ticks:
    """Deterministic trades (or quotes) consistent with the bars: within [l, h], first at o, last at c."""
    if len(bars) == 0:
        e = np.empty(0)
        return Ticks(np.empty(0, dtype=np.int64), e, e, e, e)
    rng = np.random.default_rng([seed, _symbol_key(symbol), int(bars.t[0] // MINUTE_NS), 2 + quotes])
    k = np.clip(bars.n, 1, 6)
    total = int(k.sum())
    owner = np.repeat(np.arange(len(bars)), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    pos = np.arange(total) - np.repeat(first, k)
    frac = np.where(k[owner] > 1, pos / np.maximum(k[owner] - 1, 1), 1.0)
    base = bars.o[owner] + (bars.c[owner] - bars.o[owner]) * frac
    noise = rng.standard_normal(total) * (bars.h[owner] - bars.l[owner]) * 0.25
    inner = (pos > 0) & (pos < k[owner] - 1)
    price = np.clip(np.where(inner, base + noise, base), bars.l[owner], bars.h[owner])
    dec = max(0, round(-np.log10(tick)))
    price = np.round(np.round(price / tick) * tick, dec)
    # Offsets ordered within each minute (at most 6 ticks per minute).
    offs = (pos * (MINUTE_NS // 7) + rng.integers(0, MINUTE_NS // 7, total)).astype(np.int64)
    t = bars.t[owner] + offs
    size_unit = bars.v[owner] / k[owner]
    if crypto:
        size = np.round(np.maximum(size_unit * rng.uniform(0.5, 1.5, total), 1e-6), 6)
    else:
        size = np.maximum(np.round(size_unit * rng.uniform(0.5, 1.5, total)), 1)
    if not quotes:
        z = np.zeros(total)
        return Ticks(t, price.astype(np.float64), size.astype(np.float64), z, z)
    half = np.maximum(np.round(rng.integers(1, 4, total) * 0.5), 1) * tick
    bid = np.round(np.maximum(price - half, tick), dec)
    ask = np.round(bid + np.maximum(np.round(2 * half / tick), 1) * tick, dec)
    bsz = np.round(rng.integers(1, 20, total) * (0.01 if crypto else 100.0), 6)
    asz = np.round(rng.integers(1, 20, total) * (0.01 if crypto else 100.0), 6)
    return Ticks(
        t,
        bid.astype(np.float64),
        np.asarray(bsz, dtype=np.float64),
        ask.astype(np.float64),
        np.asarray(asz, dtype=np.float64),
    )
