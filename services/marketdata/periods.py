"""The forming bar of a coarser timeframe (5Min, 15Min, 1Hour, 1Day) built from one-minute bars.

Why: the stream carries trades and one-minute bars only, so a chart showing 5-minute or daily bars
would otherwise freeze at the bar the history request returned. :class:`PeriodBarBuilder` keeps
the one-minute bars of the period in progress (those the history request returned for it, then the
stream's partial and closed minute bars) and merges them into the period's bar on every update.

Period rules, as Alpaca labels its bars (sources in docs/alpaca-rules.md, "Market data"):

- intraday periods are aligned to the clock in UTC: 5Min at :00, :05 ...; hourly bars on the hour
  (New York's offset from UTC is a whole number of hours, so these are also New York's clock
  boundaries), extended hours included;
- a stock's daily bar is the New York trading day, labelled New York midnight (its minutes from
  the pre-market to the after-hours close, as the history Heron charts for past days);
- a crypto daily bar is the UTC day, labelled UTC midnight.

A bar is labelled with its period's start. Its open is the first minute's open, its high and low
the extremes of its minutes, its close the newest minute's close and its volume their sum. One
minute reported twice counts once: a newer report of a minute replaces the older one, except that
the stream's own minute can start mid-minute (Heron subscribed after the minute began), so where
the history request already held that minute the merge keeps its open and never lowers its volume.

Thread: whichever single thread feeds it (the event loop for the chart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.domain.calendar import NEW_YORK
from services.domain.enums import Timeframe


@dataclass(frozen=True, slots=True)
class PeriodBar:
    """OHLCV of one period as floats (what a chart draws), labelled with the period's start."""

    ts: datetime
    o: float
    h: float
    l: float  # noqa: E741 - OHLC spelling
    c: float
    v: float

    def merged(self, later: PeriodBar) -> PeriodBar:
        """This bar followed by ``later`` (first open, extremes, last close, summed volume)."""
        return PeriodBar(
            self.ts, self.o, max(self.h, later.h), min(self.l, later.l), later.c, self.v + later.v
        )


def period_start(timeframe: Timeframe, ts: datetime, *, crypto: bool) -> datetime:
    """Start of the ``timeframe`` period holding ``ts`` (UTC-aware in, UTC out)."""
    if ts.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
    if timeframe is Timeframe.DAY_1:
        if crypto:
            return ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        ny = ts.astimezone(NEW_YORK)
        return datetime(ny.year, ny.month, ny.day, tzinfo=NEW_YORK).astimezone(UTC)
    step = timeframe.seconds
    seconds = int((ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1))
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


class PeriodBarBuilder:
    """The forming bar of one symbol's ``timeframe`` period, fed one-minute bars.

    :meth:`seed` takes the minutes a history request returned for the period in progress;
    :meth:`add` each minute bar from the stream (partial or closed). Both return the period's bar
    as it now stands, or None when the minute belongs to an older period than the one in progress
    (a late report the chart has already moved past).
    """

    def __init__(self, timeframe: Timeframe, *, crypto: bool) -> None:
        self.timeframe = timeframe
        self.crypto = crypto
        self._start: datetime | None = None
        self._minutes: dict[datetime, PeriodBar] = {}  # this period's minutes, by minute start
        self._seeded: set[datetime] = set()  # minutes that came from the history request
        self._newest: datetime | None = None
        self._before: PeriodBar | None = None  # the minutes before ``_newest`` merged

    @property
    def start(self) -> datetime | None:
        """Start of the period in progress (None before the first minute)."""
        return self._start

    def seed(self, minutes: list[PeriodBar]) -> PeriodBar | None:
        """Start over from the history request's minutes of the newest period (oldest first)."""
        self._start, self._newest, self._before = None, None, None
        self._minutes.clear()
        self._seeded.clear()
        bar = None
        for minute in minutes:
            bar = self._put(minute, seeded=True)
        return bar

    def add(self, minute: PeriodBar) -> PeriodBar | None:
        """One minute bar from the stream; the period's bar after it, or None if it is too old."""
        return self._put(minute, seeded=False)

    def _put(self, minute: PeriodBar, *, seeded: bool) -> PeriodBar | None:
        start = period_start(self.timeframe, minute.ts, crypto=self.crypto)
        if self._start is not None and start < self._start:
            return None
        if start != self._start:  # a new period: the previous one is complete
            self._start, self._newest, self._before = start, None, None
            self._minutes.clear()
            self._seeded.clear()
        key = minute.ts
        old = self._minutes.get(key)
        if old is not None and key in self._seeded and not seeded:
            # The stream's minute may have begun after the minute did: keep what history counted.
            minute = PeriodBar(key, old.o, max(old.h, minute.h), min(old.l, minute.l), minute.c,
                               max(old.v, minute.v))  # fmt: skip
        elif seeded:
            self._seeded.add(key)
        self._minutes[key] = minute
        newest = self._newest
        if newest is None or key > newest:
            if newest is not None:
                prev = self._minutes[newest]
                self._before = prev if self._before is None else self._before.merged(prev)
            self._newest = key
        elif key < newest:  # an older minute changed (a late close or a correction): merge again
            self._before = None
            for ts in sorted(self._minutes):
                if ts != newest:
                    bar = self._minutes[ts]
                    self._before = bar if self._before is None else self._before.merged(bar)
        return self.bar()

    def bar(self) -> PeriodBar | None:
        """The period's bar as it now stands (labelled with the period's start)."""
        if self._newest is None or self._start is None:
            return None
        last = self._minutes[self._newest]
        merged = last if self._before is None else self._before.merged(last)
        return PeriodBar(self._start, merged.o, merged.h, merged.l, merged.c, merged.v)
