"""BarStore: column storage, live bar, bounds, per-pixel merge (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from widgets.chart.sample import random_walk_bars
from widgets.chart.store import BLOCK, BarStore, validate_bars


def bars(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    return random_walk_bars(n, seed=seed)


def test_load_keeps_newest_row_as_live_bar() -> None:
    s = BarStore()
    d = bars(100)
    s.load(d)
    assert s.n_history == 99 and len(s) == 100
    assert s.live is not None and s.live.t == d["t"][-1] and s.live.c == d["c"][-1]
    np.testing.assert_array_equal(s.c, d["c"][:-1])
    np.testing.assert_array_equal(s.column("c"), d["c"])


def test_update_same_time_replaces_new_time_promotes() -> None:
    s = BarStore()
    d = bars(10)
    s.load(d)
    v0 = s.version
    live = s.live
    assert live is not None
    assert s.update_last(live.t, live.o, live.h + 1, live.l, live.c, live.v + 5) is False
    assert s.version == v0  # history untouched by a tick
    assert s.n_history == 9 and s.live is not None and s.live.h == live.h + 1
    assert s.update_last(live.t + 60 * 10**9, 1.0, 2.0, 0.5, 1.5, 3.0) is True
    assert s.n_history == 10 and s.h[-1] == live.h + 1 and s.live.c == 1.5
    assert s.version > v0


def test_rejects_bad_input_and_keeps_contents() -> None:
    s = BarStore()
    d = bars(10)
    s.load(d)
    live = s.live
    assert live is not None
    with pytest.raises(ValueError, match="older"):
        s.update_last(live.t - 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="inconsistent"):
        s.update_last(live.t, 10.0, 9.0, 8.0, 9.5, 1.0)  # high below open
    with pytest.raises(ValueError, match="finite"):
        s.update_last(live.t, float("nan"), 1, 1, 1, 1)
    bad = dict(d)
    bad["t"] = d["t"][::-1].copy()
    with pytest.raises(ValueError, match="strictly increasing"):
        s.load(bad)
    with pytest.raises(ValueError, match="missing"):
        s.load({"t": d["t"]})
    assert s.live == live and s.n_history == 9


def test_append_amortised_growth_and_bounds_incremental() -> None:
    s = BarStore(capacity=16)
    d = bars(5000)
    s.load({k: v[:1] for k, v in d.items()})
    caps = set()
    for i in range(1, 5000):
        s.append({k: v[i : i + 1] for k, v in d.items()})
        caps.add(s.capacity)
    assert len(s) == 5000 and s.n_history == 4999
    assert len(caps) <= 10  # doubling, not per-append reallocation
    np.testing.assert_array_equal(s.column("h"), d["h"])
    assert s.history_bounds() == (d["l"][:-1].min(), d["h"][:-1].max())


def test_append_batch_replacing_live_bar() -> None:
    s = BarStore()
    d = bars(20)
    s.load({k: v[:10] for k, v in d.items()})
    # Batch starts with the live bar's timestamp (corrected values), then new bars.
    joined = s.append({k: v[9:20] for k, v in d.items()})
    assert joined == 10
    np.testing.assert_array_equal(s.column("t"), d["t"])


@pytest.mark.parametrize(("i0", "i1"), [(0, 5000), (3, 7), (BLOCK - 1, BLOCK + 2), (100, 4321), (4000, 5000)])
def test_range_stats_match_brute_force(i0: int, i1: int) -> None:
    s = BarStore()
    d = bars(5000, seed=9)
    s.load(d)
    lo, hi, vmax = s.range_stats(i0, i1)  # type: ignore[misc]
    assert lo == d["l"][i0:i1].min()
    assert hi == d["h"][i0:i1].max()
    assert vmax == d["v"][i0:i1].max()


def test_buckets_equal_reference_aggregation() -> None:
    s = BarStore()
    d = bars(10_001, seed=4)
    s.load(d)
    k, i0, i1 = 64, 1000, 9000
    b = s.buckets(i0, i1, k)
    start = (i0 // k) * k
    for j in (0, 1, 17, len(b.x) - 1):
        a = start + j * k
        e = min(a + k, i1)
        assert b.o[j] == d["o"][a]
        assert b.c[j] == d["c"][e - 1]
        assert b.h[j] == d["h"][a:e].max()
        assert b.l[j] == d["l"][a:e].min()
        assert b.v[j] == pytest.approx(d["v"][a:e].sum())
        assert b.x[j] == (a + e - 1) / 2
    # Alignment: panning by less than a bucket keeps the same bucket edges.
    assert s.buckets(i0 + 5, i1, k).x[0] == b.x[0]


def test_validate_bars_accepts_datetime64_and_rejects_naive_types() -> None:
    d = bars(3)
    out = validate_bars({**d, "t": d["t"].astype("datetime64[ns]")})
    np.testing.assert_array_equal(out["t"], d["t"])
    with pytest.raises(ValueError, match="int64"):
        validate_bars({**d, "t": d["t"].astype(np.float64)})


def test_buckets_stay_exact_while_history_grows_and_the_view_moves() -> None:
    """The per-k bucket cache is extended by appends; every answer equals a fresh merge."""
    d = bars(6_000, seed=9)
    s, fresh = BarStore(), BarStore()
    s.load({k: v[:4_000] for k, v in d.items()})
    views = [(0, 3_999, 16), (1_000, 3_999, 16), (2_500, 3_999, 4), (0, 3_999, 16)]
    for i in range(4_000, 6_000, 250):
        s.append({k: v[i : i + 250] for k, v in d.items()})
        fresh.load({k: v[: i + 250] for k, v in d.items()})
        n = s.n_history
        views += [(n - 1_000, n, 16), (0, n, 64)]
        for i0, i1, k in views[-4:]:
            got, want = s.buckets(i0, i1, k), fresh.buckets(i0, i1, k)
            for col in ("x", "o", "h", "l", "c", "v"):
                np.testing.assert_allclose(getattr(got, col), getattr(want, col), rtol=1e-12)
    # a reload (not an append) drops the cache: buckets follow the new data
    s.load(bars(3_000, seed=10))
    fresh.load(bars(3_000, seed=10))
    np.testing.assert_array_equal(s.buckets(0, 2_999, 16).h, fresh.buckets(0, 2_999, 16).h)
