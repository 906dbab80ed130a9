"""Market-data REST in Alpaca's exact shapes (docs/alpaca-protocol.md §3).

Stocks: ``/v2/stocks/{bars,trades,quotes}`` (history, paginated with ``next_page_token``),
``/v2/stocks/{trades,quotes,bars}/latest`` and ``/v2/stocks/snapshots`` (the body *is*
``{SYM: snapshot}``); the single-symbol forms Alpaca's SDKs also call:
``/v2/stocks/{sym}/{bars,trades,quotes}`` (``{kind: [...], "symbol", "next_page_token"}``),
``/v2/stocks/{sym}/{trades,quotes,bars}/latest`` (``{"symbol", "trade" | "quote" | "bar"}``) and
``/v2/stocks/{sym}/snapshot`` (the snapshot with ``symbol``). Crypto:
``/v1beta3/crypto/us/{bars,trades,quotes}``, ``/latest/{trades,quotes,bars,orderbooks}`` and
``/snapshots`` (with the ``snapshots`` wrapper).

A syntactically invalid symbol, timeframe, time, limit, sort or page token is a 400 with a JSON
body naming the problem; a well-formed symbol the exchange does not list is simply absent from the
result (as on Alpaca); on the single-symbol history routes its list is empty, and its latest
values and snapshot are a 404. Bars always carry ``n`` and ``vw``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
from aiohttp import web

from services.domain.calendar import NEW_YORK
from services.domain.symbols import InvalidSymbolError, is_crypto, normalize_symbol
from services.exchange.contracts import Instrument
from services.exchange.errors import bad_request, not_found
from services.exchange.market.history import (
    MINUTE_NS,
    NS,
    BarPeriod,
    Bars,
    BarSource,
    PeriodUnit,
    ny_date,
    ny_midnight_ns,
    parse_timeframe,
    ticks_from_bars,
)
from services.exchange.market.simulator import MarketSimulator

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
_FEEDS = frozenset({"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
_ADJUSTMENTS = frozenset({"raw", "split", "dividend", "spin-off", "all"})
_WINDOW_NS = 7 * 24 * 60 * MINUTE_NS

Row = dict[str, Any]
Chunk = tuple[np.ndarray, Callable[[int, int], list[Row]]]


def rfc3339(ns: np.ndarray, unit: str) -> list[str]:
    """Nanosecond epoch array → RFC3339 strings with a ``Z``."""
    strings: Any = np.datetime_as_string(ns.astype("datetime64[ns]"), unit=unit)  # type: ignore[call-overload]
    return [s + "Z" for s in strings.tolist()]


def rfc3339_one(ns: int, unit: str = "ns") -> str:
    return rfc3339(np.array([ns], dtype=np.int64), unit)[0]


def parse_time(text: str, field: str) -> int:
    """RFC3339 (``Z`` or an offset) or ``YYYY-MM-DD`` → ns since the epoch (naive = UTC)."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            dt = datetime.combine(date.fromisoformat(raw), time(0), tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise bad_request(f"invalid {field}: {text!r} is not an RFC3339 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if not 1970 <= dt.year <= 2200:
        raise bad_request(f"invalid {field}: {text!r} is out of range")
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def _encode_token(symbol: str, ns: int) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{ns}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        sym, _, ns = raw.rpartition("|")
        if not sym:
            raise ValueError
        return sym, int(ns)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("invalid page_token") from None


class MarketDataApi:
    """The market-data REST routes over the simulator (latest values) and the bar source (history)."""

    def __init__(
        self, universe: Mapping[str, Instrument], market: MarketSimulator, source: BarSource, seed: int
    ) -> None:
        self.universe = universe
        self.market = market
        self.source = source
        self.seed = seed

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        for kind in ("bars", "trades", "quotes"):
            r.add_get(f"/v2/stocks/{kind}", self._history_handler(kind, crypto=False))
            r.add_get(f"/v2/stocks/{kind}/latest", self._latest_handler(kind, crypto=False))
            r.add_get(f"/v1beta3/crypto/{{loc}}/{kind}", self._history_handler(kind, crypto=True))
            r.add_get(f"/v1beta3/crypto/{{loc}}/latest/{kind}", self._latest_handler(kind, crypto=True))
        r.add_get("/v2/stocks/snapshots", self.stock_snapshots)
        for kind in ("bars", "trades", "quotes"):
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}", self._single_history_handler(kind))
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}/latest", self._single_latest_handler(kind))
        r.add_get("/v2/stocks/{symbol}/snapshot", self.stock_snapshot)
        r.add_get("/v1beta3/crypto/{loc}/snapshots", self.crypto_snapshots)
        r.add_get("/v1beta3/crypto/{loc}/latest/orderbooks", self.crypto_orderbooks)

    # ---------------------------------------------------------------------------------- params

    def _symbols(self, request: web.Request, *, crypto: bool, raw: str | None = None) -> list[str]:
        if crypto and request.match_info.get("loc", "us") != "us":
            raise not_found(f"unknown crypto location {request.match_info['loc']!r}; only 'us' is served")
        text = raw if raw is not None else request.query.get("symbols")
        if text is None or not text.strip():
            raise bad_request("missing symbols parameter")
        out: list[str] = []
        for part in text.split(","):
            if not part.strip():
                continue
            try:
                sym = normalize_symbol(part)
            except InvalidSymbolError:
                raise bad_request(f"invalid symbol: {part.strip()!r}") from None
            if is_crypto(sym) != crypto:
                raise bad_request(
                    f"invalid symbol: {sym!r} is {'not ' if crypto else ''}a crypto pair for this endpoint"
                )
            if sym not in out:
                out.append(sym)
        if not out:
            raise bad_request("missing symbols parameter")
        if len(out) > 2000:
            raise bad_request("too many symbols (at most 2000)")
        return out

    def _known(self, symbols: list[str]) -> list[str]:
        return [s for s in symbols if s in self.universe]

    @staticmethod
    def _params(request: web.Request) -> tuple[int | None, int | None, int, bool, str | None]:
        q = request.query
        start = parse_time(q["start"], "start") if q.get("start") else None
        end = parse_time(q["end"], "end") if q.get("end") else None
        if start is not None and end is not None and end < start:
            raise bad_request("end should not be before start")
        limit_text = q.get("limit")
        if limit_text in (None, ""):
            limit = DEFAULT_LIMIT
        else:
            try:
                limit = int(limit_text)
            except ValueError:
                raise bad_request(f"invalid limit: {limit_text!r} is not an integer") from None
            if not 1 <= limit <= MAX_LIMIT:
                raise bad_request(f"invalid limit: must be between 1 and {MAX_LIMIT}")
        sort = q.get("sort", "asc").lower()
        if sort not in ("asc", "desc"):
            raise bad_request(f"invalid sort: {q.get('sort')!r} (asc or desc)")
        feed = q.get("feed")
        if feed is not None and feed.lower() not in _FEEDS:
            raise bad_request(f"invalid feed: {feed!r}")
        adj = q.get("adjustment")
        if adj is not None and any(a.strip().lower() not in _ADJUSTMENTS for a in adj.split(",")):
            raise bad_request(f"invalid adjustment: {adj!r}")
        token = q.get("page_token") or None
        return start, end, limit, sort == "desc", token

    def _window(self, start: int | None, end: int | None) -> tuple[int, int]:
        now = self.market.now_ns()
        hi = end if end is not None else now
        if start is None:
            today = datetime.fromtimestamp(now / NS, UTC).astimezone(NEW_YORK).date()
            start = int(datetime.combine(today, time(0), tzinfo=NEW_YORK).timestamp()) * NS
        return start, hi

    # ---------------------------------------------------------------------------------- history

    def _bar_rows(self, bars: Bars, crypto: bool) -> list[Row]:
        ts = rfc3339(bars.t, "s")
        vols: list[Any] = bars.v.tolist() if crypto else bars.v.astype(np.int64).tolist()
        return [
            {"t": t, "o": o, "h": h, "l": low, "c": c, "v": v, "n": n, "vw": vw}
            for t, o, h, low, c, v, n, vw in zip(
                ts,
                bars.o.tolist(),
                bars.h.tolist(),
                bars.l.tolist(),
                bars.c.tolist(),
                vols,
                bars.n.tolist(),
                bars.vw.tolist(),
                strict=True,
            )
        ]

    def _bar_chunks(self, sym: str, tf: BarPeriod, lo: int, hi: int, desc: bool) -> Iterator[Chunk]:
        crypto = self.universe[sym].is_crypto

        def chunk(b: Bars) -> Chunk:
            return b.t, lambda a, z: self._bar_rows(b.take(slice(a, z)), crypto)

        if not desc:
            for b in self.source.bars(sym, tf, lo, hi):
                yield chunk(b)
            return
        if not tf.intraday:
            parts = list(self.source.bars(sym, tf, lo, hi))
            if parts:
                b = Bars.concat(parts)
                yield chunk(b.take(slice(None, None, -1)))
            return
        step = tf.step_ns
        width = (-(-_WINDOW_NS // step)) * step
        w_hi = hi - hi % step
        while w_hi >= lo - step:
            w_lo = max(w_hi - width + step, lo)
            parts = list(self.source.bars(sym, tf, w_lo, min(w_hi, hi)))
            if parts:
                b = Bars.concat(parts)
                b = b.take((b.t >= lo) & (b.t <= hi))
                if len(b):
                    yield chunk(b.take(slice(None, None, -1)))
            w_hi = w_lo - (w_lo % step or step)
            if w_lo <= lo:
                break

    def _tick_chunks(self, sym: str, kind: str, lo: int, hi: int, desc: bool) -> Iterator[Chunk]:
        inst = self.universe[sym]
        crypto = inst.is_crypto
        tick = float(inst.tick)
        quotes = kind == "quotes"

        def from_minutes(mlo: int, mhi: int) -> Iterator[tuple[np.ndarray, Any]]:
            # Ticks are generated from whole New York days, so a tick's time, values and id do not
            # depend on where a page (or a descending window) starts; then [mlo, mhi] is selected.
            a, z = max(lo, mlo), min(hi, mhi)
            for _, day in self.source.minutes(sym, ny_midnight_ns(ny_date(a)), z + 1):
                tk = ticks_from_bars(day, seed=self.seed, symbol=sym, tick=tick, quotes=quotes, crypto=crypto)
                if not len(tk.t):
                    continue
                ids = int(tk.t[0] // MINUTE_NS) * 1000 + np.arange(len(tk.t), dtype=np.int64)
                sel = (tk.t >= a) & (tk.t <= z)
                if sel.any():
                    yield tk.t[sel], (tk.a[sel], tk.b[sel], tk.c[sel], tk.d[sel], ids[sel])

        def render(t: np.ndarray, cols: Any) -> Callable[[int, int], list[Row]]:
            def rows(a: int, z: int) -> list[Row]:
                ts = rfc3339(t[a:z], "ns")
                c0, c1, c2, c3, c4 = (col[a:z].tolist() for col in cols)
                if quotes:
                    if crypto:
                        return [
                            {"t": x, "bp": bp, "bs": bs, "ap": ap, "as": as_}
                            for x, bp, bs, ap, as_ in zip(ts, c0, c1, c2, c3, strict=True)
                        ]
                    return [
                        {
                            "t": x,
                            "ax": "V",
                            "ap": ap,
                            "as": int(as_),
                            "bx": "V",
                            "bp": bp,
                            "bs": int(bs),
                            "c": ["R"],
                            "z": "C",
                        }
                        for x, bp, bs, ap, as_ in zip(ts, c0, c1, c2, c3, strict=True)
                    ]
                if crypto:
                    return [
                        {"t": x, "p": p, "s": s, "i": i, "tks": "B"}
                        for x, p, s, i in zip(ts, c0, c1, c4, strict=True)
                    ]
                return [
                    {"t": x, "x": "V", "p": p, "s": int(s), "c": ["@"], "i": i, "z": "C"}
                    for x, p, s, i in zip(ts, c0, c1, c4, strict=True)
                ]

            return rows

        if not desc:
            for t, cols in from_minutes(lo, hi):
                yield t, render(t, cols)
            return
        w_hi = hi
        while w_hi >= lo:
            w_lo = max(w_hi - 24 * 60 * MINUTE_NS, lo)
            for t, cols in reversed(list(from_minutes(w_lo, w_hi))):
                rev = tuple(c[::-1] for c in cols)
                yield t[::-1], render(t[::-1], rev)
            if w_lo <= lo:
                break
            w_hi = w_lo - 1

    def _history_handler(self, kind: str, *, crypto: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            symbols = self._symbols(request, crypto=crypto)
            tf = _timeframe(request) if kind == "bars" else None
            start, end, limit, desc, token = self._params(request)
            lo, hi = self._window(start, end)
            data, next_token = self._paginate(self._known(symbols), kind, tf, lo, hi, limit, desc, token)
            return web.json_response({kind: data, "next_page_token": next_token})

        return handler

    def _paginate(
        self,
        symbols: list[str],
        kind: str,
        tf: BarPeriod | None,
        lo: int,
        hi: int,
        limit: int,
        desc: bool,
        token: str | None,
    ) -> tuple[dict[str, list[Row]], str | None]:
        out: dict[str, list[Row]] = {}
        tok_sym, tok_t = _decode_token(token) if token else (None, 0)
        remaining = limit
        for sym in sorted(symbols):
            if tok_sym is not None and sym < tok_sym:
                continue
            s_lo, s_hi = lo, hi
            if sym == tok_sym:
                if desc:
                    s_hi = min(hi, tok_t)
                else:
                    s_lo = max(lo, tok_t)
            if s_lo > s_hi:
                continue
            chunks = (
                self._bar_chunks(sym, tf, s_lo, s_hi, desc)
                if tf is not None
                else self._tick_chunks(sym, kind, s_lo, s_hi, desc)
            )
            for t, render in chunks:
                off = 0
                if sym == tok_sym:  # coarse buckets may start before the token: skip what was sent
                    off = int(np.searchsorted(-t if desc else t, -tok_t if desc else tok_t, side="left"))
                n = len(t) - off
                if n <= 0:
                    continue
                take = min(n, remaining)
                out.setdefault(sym, []).extend(render(off, off + take))
                remaining -= take
                if remaining == 0:
                    if take < n:
                        return out, _encode_token(sym, int(t[off + take]))
                    # Exactly full: a further item may exist; let the next page find out.
                    nxt = int(t[off + take - 1]) + (-1 if desc else 1)
                    return out, _encode_token(sym, nxt)
        return out, None

    def _single_history_handler(self, kind: str) -> Callable[[web.Request], Any]:
        """``/v2/stocks/{symbol}/{kind}``: ``{kind: [...], "symbol", "next_page_token"}``."""

        async def handler(request: web.Request) -> web.Response:
            sym = self._symbols(request, crypto=False, raw=request.match_info["symbol"])[0]
            tf = _timeframe(request) if kind == "bars" else None
            start, end, limit, desc, token = self._params(request)
            lo, hi = self._window(start, end)
            data, nxt = self._paginate(self._known([sym]), kind, tf, lo, hi, limit, desc, token)
            return web.json_response({kind: data.get(sym, []), "symbol": sym, "next_page_token": nxt})

        return handler

    def _single_symbol(self, request: web.Request) -> str:
        """The listed stock named in the path; a well-formed symbol the exchange does not list is a 404."""
        sym = self._symbols(request, crypto=False, raw=request.match_info["symbol"])[0]
        if sym not in self.universe:
            raise not_found(f"no data for symbol {sym!r}")
        feed = request.query.get("feed")
        if feed is not None and feed.lower() not in _FEEDS:
            raise bad_request(f"invalid feed: {feed!r}")
        return sym

    # ---------------------------------------------------------------------------------- latest

    def _latest_trade(self, sym: str) -> Row:
        t, p, s, i = self.market.latest_trade(sym)
        if self.universe[sym].is_crypto:
            return {"t": rfc3339_one(t), "p": p, "s": s, "i": i, "tks": "B"}
        return {"t": rfc3339_one(t), "x": "V", "p": p, "s": int(s), "c": ["@"], "i": i, "z": "C"}

    def _latest_quote(self, sym: str) -> Row:
        t, bp, bs, ap, as_ = self.market.latest_quote(sym)
        if self.universe[sym].is_crypto:
            return {"t": rfc3339_one(t), "bp": bp, "bs": bs, "ap": ap, "as": as_}
        return {
            "t": rfc3339_one(t),
            "ax": "V",
            "ap": ap,
            "as": int(as_),
            "bx": "V",
            "bp": bp,
            "bs": int(bs),
            "c": ["R"],
            "z": "C",
        }

    def _latest_bar(self, sym: str) -> Row | None:
        now = self.market.now_ns()
        crypto = self.universe[sym].is_crypto
        for back in (2, 10, 40):
            parts = [b for _, b in self.source.minutes(sym, now - back * 24 * 60 * MINUTE_NS, now)]
            if parts:
                last = parts[-1]
                return self._bar_rows(last.take(slice(len(last) - 1, None)), crypto)[0]
        return None

    def _daily(self, sym: str) -> tuple[Row | None, Row | None]:
        now = self.market.now_ns()
        crypto = self.universe[sym].is_crypto
        tf = BarPeriod(1, PeriodUnit.DAY)
        bars = Bars.concat(list(self.source.bars(sym, tf, now - 12 * 24 * 60 * MINUTE_NS, now)))
        run = self.market.running_day(sym)
        if run is not None:
            today = Bars.from_rows([run])
            bars = Bars.concat([bars.take(bars.t < run[0]), today])
        rows = self._bar_rows(bars.take(slice(max(0, len(bars) - 2), None)), crypto)
        if not rows:
            return None, None
        return rows[-1], rows[-2] if len(rows) > 1 else None

    def _snapshot(self, sym: str) -> Row:
        daily, prev = self._daily(sym)
        return {
            "latestTrade": self._latest_trade(sym),
            "latestQuote": self._latest_quote(sym),
            "minuteBar": self._latest_bar(sym),
            "dailyBar": daily,
            "prevDailyBar": prev,
        }

    def _latest_handler(self, kind: str, *, crypto: bool) -> Callable[[web.Request], Any]:
        render = {"trades": self._latest_trade, "quotes": self._latest_quote, "bars": self._latest_bar}[kind]

        async def handler(request: web.Request) -> web.Response:
            symbols = self._known(self._symbols(request, crypto=crypto))
            feed = request.query.get("feed")
            if feed is not None and feed.lower() not in _FEEDS:
                raise bad_request(f"invalid feed: {feed!r}")
            data = {s: row for s in symbols if (row := render(s)) is not None}
            return web.json_response({kind: data})

        return handler

    def _single_latest_handler(self, kind: str) -> Callable[[web.Request], Any]:
        """``/v2/stocks/{symbol}/{kind}/latest``: ``{"symbol": ..., "trade" | "quote" | "bar": {...}}``."""
        render = {"trades": self._latest_trade, "quotes": self._latest_quote, "bars": self._latest_bar}[kind]
        key = kind[:-1]

        async def handler(request: web.Request) -> web.Response:
            sym = self._single_symbol(request)
            row = render(sym)
            if row is None:
                raise not_found(f"no {key} found for {sym!r}")
            return web.json_response({"symbol": sym, key: row})

        return handler

    async def stock_snapshot(self, request: web.Request) -> web.Response:
        """``/v2/stocks/{symbol}/snapshot``: the snapshot object itself, with ``symbol``."""
        sym = self._single_symbol(request)
        return web.json_response({"symbol": sym, **self._snapshot(sym)})

    async def stock_snapshots(self, request: web.Request) -> web.Response:
        symbols = self._known(self._symbols(request, crypto=False))
        return web.json_response({s: self._snapshot(s) for s in symbols})

    async def crypto_snapshots(self, request: web.Request) -> web.Response:
        symbols = self._known(self._symbols(request, crypto=True))
        return web.json_response({"snapshots": {s: self._snapshot(s) for s in symbols}})

    async def crypto_orderbooks(self, request: web.Request) -> web.Response:
        symbols = self._known(self._symbols(request, crypto=True))
        out: dict[str, Row] = {}
        for s in symbols:
            ob = self.market.orderbook(s)
            out[s] = {"t": rfc3339_one(ob["t"].to_unix_nano()), "b": ob["b"], "a": ob["a"]}
        return web.json_response({"orderbooks": out})


def _timeframe(request: web.Request) -> BarPeriod:
    """The ``timeframe`` query parameter of a bars request (400 when missing or unreadable)."""
    try:
        return parse_timeframe(request.query.get("timeframe", ""))
    except ValueError as exc:
        given = request.query.get("timeframe")
        raise bad_request(str(exc) if given else "missing timeframe") from None
