"""The simulator's minutes: each finished minute's bar (``b``), now and then a late print with the
updated bar (``u``) or a trade correction or cancel (``c``, ``x``) on stocks, the running daily bar
(``d``), and the finished minutes kept for the history join (``LiveMinutes``).

:class:`MinuteBars` is the part of :class:`~services.exchange.market.simulator.MarketSimulator` that
works on them; the simulator owns the state (set up in ``_init_minute_state``).
"""

from __future__ import annotations

import bisect
from typing import Any

import msgpack
import numpy as np

from services.exchange.market.bars import Bars
from services.exchange.market.encoding import Message, Out
from services.exchange.market.history import MINUTE_NS, HistoryGenerator, day_of, day_start_ns

LIVE_MINUTES_KEPT = 10_000  # per symbol; older live minutes are forgotten
BarRow = tuple[int, float, float, float, float, float, int, float]


def ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


class MinuteBars:
    """Finished minutes, corrections, the running day. Mixed into the simulator, which sets these."""

    symbols: list[str]
    index: dict[str, int]
    history: HistoryGenerator
    stats: dict[str, int]
    correction_rate: float
    _rng: np.random.Generator
    _minute: int
    _trade_id: int
    _crypto: Any
    _tick: Any
    _dec: list[int]
    _tape: list[str]
    _prev_close: Any
    _day_key: Any
    _day: list[list[float] | None]
    _live_since: list[int]
    _live_t: list[list[int]]
    _live_rows: list[list[BarRow]]
    _last_size: Any
    _last_tid: Any
    _cand_id: Any
    _cand_p: Any
    _cand_s: Any
    _cand_t: Any
    _m_o: Any
    _m_h: Any
    _m_l: Any
    _m_c: Any
    _m_v: Any
    _m_pv: Any
    _m_n: Any

    def live_since_ns(self, symbol: str) -> int | None:
        i = self.index.get(symbol)
        return None if i is None else self._live_since[i]

    def live_bars(self, symbol: str, lo_ns: int, hi_ns: int) -> Bars:
        i = self.index[symbol]
        ts = self._live_t[i]
        a, b = bisect.bisect_left(ts, lo_ns), bisect.bisect_left(ts, hi_ns)
        return Bars.from_rows(self._live_rows[i][a:b])

    def running_day(self, symbol: str) -> BarRow | None:
        """Today's daily bar so far (t = New York midnight), running minute included."""
        i = self.index[symbol]
        d = self._day[i]
        rows: list[BarRow] = []
        if d is not None:
            rows.append(self._day_row(d))
        if self._m_n[i] > 0:
            o, h, low, c, v, pv, n = (
                float(self._m_o[i]),
                float(self._m_h[i]),
                float(self._m_l[i]),
                float(self._m_c[i]),
                float(self._m_v[i]),
                float(self._m_pv[i]),
                int(self._m_n[i]),
            )
            if d is None:
                return (int(self._day_key[i]), o, h, low, c, v, n, round(pv / v, 4) if v else c)
            t0, o0, h0, l0, _, v0, n0, vw0 = rows[0]
            vt = v0 + v
            return (
                t0,
                o0,
                max(h0, h),
                min(l0, low),
                c,
                vt,
                n0 + n,
                round((vw0 * v0 + pv) / vt, 4) if vt else c,
            )
        return rows[0] if rows else None

    def _close_minute(self, out: Out) -> None:
        minute = self._minute
        done = np.flatnonzero(self._m_n > 0)
        if len(done) == 0:
            self._cand_id[:] = -1
            return
        keys = np.where(
            self._crypto, day_start_ns(True, day_of(True, minute)), day_start_ns(False, day_of(False, minute))
        )
        for i in np.flatnonzero(keys != self._day_key).tolist():
            self._day_key[i] = keys[i]
            if self._day[i] is not None:
                self._prev_close[i] = self._day[i][4]  # type: ignore[index]
            self._day[i] = None
        stamp = ts(minute)
        late: list[Message] = []  # messages of symbol i
        rng = self._rng
        fix_draw = rng.random(len(done))
        for j, i in enumerate(done.tolist()):
            v = float(self._m_v[i])
            row = (
                minute,
                float(self._m_o[i]),
                float(self._m_h[i]),
                float(self._m_l[i]),
                float(self._m_c[i]),
                v,
                int(self._m_n[i]),
                round(float(self._m_pv[i]) / v, 4) if v else float(self._m_c[i]),
            )
            out.add(self._bar_msg("b", self.symbols[i], row, stamp), i)
            self.stats["bars"] += 1
            # Now and then a late print for the minute that just closed, and the updated bar.
            if rng.random() < 0.02:
                row = self._late_print(i, row, late, stamp)
            elif fix_draw[j] < self.correction_rate and not self._crypto[i]:
                row = self._correct_or_cancel(i, row, late, stamp)
            self._store_live(i, row)
            self._add_to_day(i, row)
            for m in late:
                out.add(m, i)
            late.clear()
            day = self._day_row(self._day[i])  # type: ignore[arg-type]
            out.add(self._bar_msg("d", self.symbols[i], day, ts(day[0])), i)
        self._m_n[:] = 0
        self._m_v[:] = 0
        self._m_pv[:] = 0
        self._cand_id[:] = -1

    def _late_print(self, i: int, row: BarRow, late: list[Message], stamp: msgpack.Timestamp) -> BarRow:
        """A late print for the minute that just closed, and the updated bar (``u``)."""
        minute, v, rng = row[0], row[5], self._rng
        p = float(self._m_c[i])
        q = float(self._last_size[i])
        tid = self._trade_id = self._trade_id + 1
        t_late = minute + MINUTE_NS - 1_000_000 * int(rng.integers(1, 900))
        sym = self.symbols[i]
        if self._crypto[i]:
            late.append({"T": "t", "S": sym, "p": p, "s": q, "t": ts(t_late), "i": tid, "tks": "B"})
        else:
            late.append(
                {
                    "T": "t",
                    "S": sym,
                    "i": tid,
                    "x": "V",
                    "p": p,
                    "s": int(q),
                    "c": ["@", "Z"],
                    "z": self._tape[i],
                    "t": ts(t_late),
                }
            )
        v2 = v + q
        row = (
            minute,
            row[1],
            row[2],
            row[3],
            row[4],
            v2,
            row[6] + 1,
            round((float(self._m_pv[i]) + p * q) / v2, 4),
        )
        late.append(self._bar_msg("u", sym, row, stamp))
        self.stats["updated_bars"] += 1
        self.stats["trades"] += 1
        return row

    def _correct_or_cancel(
        self,
        i: int,
        row: BarRow,
        late: list[Message],
        stamp: msgpack.Timestamp,
    ) -> BarRow:
        """Now and then a trade of the minute that just closed is canceled (``T: "x"``) or corrected
        (``T: "c"``), as on Alpaca's stock stream, followed by the updated bar (``u``) without it; the
        corrected bar is what the exchange serves from then on. Only a trade that is neither the first
        nor the last of its minute, priced strictly inside the minute's range, is chosen, so the bar's
        open, high, low and close stand and only volume, trade count and VWAP change."""
        minute, o, h, low, c, v, n, _ = row
        oid, op, os_, ot = (
            int(self._cand_id[i]),
            float(self._cand_p[i]),
            float(self._cand_s[i]),
            int(self._cand_t[i]),
        )
        if oid < 0 or oid == int(self._last_tid[i]) or not (low < op < h) or n < 3:
            return row
        sym, tape, rng = self.symbols[i], self._tape[i], self._rng
        pv = float(self._m_pv[i]) - op * os_
        if rng.random() < 0.5:
            late.append(
                {
                    "T": "x",
                    "S": sym,
                    "i": oid,
                    "x": "V",
                    "p": op,
                    "s": int(os_),
                    "a": "C",
                    "z": tape,
                    "t": ts(ot),
                }
            )
            v2, n2 = v - os_, n - 1
            self.stats["cancels"] += 1
        else:
            tick, d = float(self._tick[i]), self._dec[i]
            cp = round(op + tick * float(rng.integers(-1, 2)), d)
            cs = float(max(1, round(os_ * float(rng.uniform(0.5, 1.5)))))
            if cs == os_:
                cs += 1
            self._trade_id += 1
            late.append(
                {
                    "T": "c",
                    "S": sym,
                    "x": "V",
                    "oi": oid,
                    "op": op,
                    "os": int(os_),
                    "oc": ["@"],
                    "ci": self._trade_id,
                    "cp": cp,
                    "cs": int(cs),
                    "cc": ["@"],
                    "z": tape,
                    "t": ts(ot),
                }
            )
            v2, n2 = v - os_ + cs, n
            pv += cp * cs
            self.stats["corrections"] += 1
        fixed = (minute, o, h, low, c, v2, n2, round(pv / v2, 4) if v2 else c)
        late.append(self._bar_msg("u", sym, fixed, stamp))
        self.stats["updated_bars"] += 1
        return fixed

    @staticmethod
    def _bar_msg(kind: str, sym: str, row: BarRow, stamp: msgpack.Timestamp) -> Message:
        _, o, h, low, c, v, n, vw = row
        return {"T": kind, "S": sym, "o": o, "h": h, "l": low, "c": c, "v": v, "t": stamp, "n": n, "vw": vw}

    def _store_live(self, i: int, row: BarRow) -> None:
        ts, rows = self._live_t[i], self._live_rows[i]
        ts.append(row[0])
        rows.append(row)
        if len(ts) > LIVE_MINUTES_KEPT:
            drop = len(ts) - LIVE_MINUTES_KEPT // 2
            del ts[:drop]
            del rows[:drop]

    def _day_from_history(self, symbol: str, i: int) -> list[float] | None:
        lo = int(self._day_key[i])
        hi = self._live_since[i]
        parts = [b for _, b in self.history.range(symbol, lo, hi)] if hi > lo else []
        bars = Bars.concat(parts)
        if len(bars) == 0:
            return None
        v = float(bars.v.sum())
        return [
            float(lo),
            float(bars.o[0]),
            float(bars.h.max()),
            float(bars.l.min()),
            float(bars.c[-1]),
            v,
            float(bars.n.sum()),
            float((bars.vw * bars.v).sum()),
        ]

    def _add_to_day(self, i: int, row: BarRow) -> None:
        _, o, h, low, c, v, n, vw = row
        d = self._day[i]
        if d is None:
            self._day[i] = [float(self._day_key[i]), o, h, low, c, v, float(n), vw * v]
            return
        d[2] = max(d[2], h)
        d[3] = min(d[3], low)
        d[4] = c
        d[5] += v
        d[6] += n
        d[7] += vw * v

    @staticmethod
    def _day_row(d: list[float]) -> BarRow:
        v = d[5]
        return (int(d[0]), d[1], d[2], d[3], d[4], v, int(d[6]), round(d[7] / v, 4) if v else d[4])
