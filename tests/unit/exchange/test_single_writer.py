"""One writer per venue database: a stale exchange never writes back state it did not just change.

The attack: an exchange orphaned by a killed terminal kept running beside a newer exchange on the
same database; its periodic write of its stale in-memory cash put the cash back to 100,000 while
the newer exchange's position stayed, inventing the position's worth in equity. These tests run both
venues in one process with a fake clock (no timing): the orphan's sweep and trades must leave the
newer venue's account exactly as it was.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from services.exchange.errors import ApiError
from services.exchange.http.order_requests import submit_json
from services.exchange.store import StaleStateError, VenueStore
from tests.support.clock import ManualClock

from .test_venue_fakes import T0, FakeMarket, Rig, make_rig

BUY_179 = {"symbol": "AAPL", "qty": 179, "side": "buy", "type": "market", "time_in_force": "day"}


def _buy(rig: Rig, order: dict[str, object]) -> None:
    rig.venue.run(lambda: submit_json(rig.venue.engine, dict(order)))
    rig.venue.match_pending()


def _orphan_and_newer(tmp_path: Path) -> tuple[Rig, Rig, ManualClock, FakeMarket]:
    clock = ManualClock(T0)
    market = FakeMarket(clock)
    orphan = make_rig(tmp_path, clock=clock, market=market)  # the exchange the terminal left behind
    newer = make_rig(tmp_path, clock=clock, market=market)  # the next session's exchange, same file
    newer.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
    _buy(newer, BUY_179)
    assert newer.venue.ledger.positions["AAPL"].qty == 179
    return orphan, newer, clock, market


def _reopen(tmp_path: Path, clock: ManualClock, market: FakeMarket) -> Rig:
    return make_rig(tmp_path, clock=clock, market=market)


@pytest.mark.expected_log(r"^services\.exchange\.venue: venue state is stale: \S+ was opened")
def test_the_orphans_periodic_write_does_not_restore_its_stale_cash(tmp_path: Path) -> None:
    """The +17,909 regression: cash 82,098 with 179 AAPL must not become 100,000 with 179 AAPL."""
    orphan, newer, clock, market = _orphan_and_newer(tmp_path)
    cash, equity = newer.venue.ledger.cash, newer.venue.equity()
    assert cash < Decimal(100_000) - Decimal(17_000)
    for _ in range(3):  # the orphan's sweeps, equity samples included, over a few minutes
        clock.advance(seconds=61)
        orphan.venue.sweep()
    newer.venue.store.close()
    orphan.venue.store.close()
    again = _reopen(tmp_path, clock, market)
    try:
        assert again.venue.ledger.cash == cash
        assert again.venue.ledger.positions["AAPL"].qty == 179
        assert again.venue.equity() == equity
    finally:
        again.venue.store.close()


@pytest.mark.expected_log(r"^services\.exchange\.venue: venue state is stale: \S+ was opened")
def test_an_orphan_that_trades_writes_nothing_and_says_it_is_stale(tmp_path: Path) -> None:
    orphan, newer, clock, market = _orphan_and_newer(tmp_path)
    cash = newer.venue.ledger.cash
    reasons: list[str] = []
    orphan.venue.on_stale = reasons.append
    with pytest.raises(ApiError, match="opened by another exchange") as refused:
        _buy(orphan, {**BUY_179, "qty": 5})
    assert refused.value.status == 503
    assert orphan.venue.stale is not None and len(reasons) == 1
    assert "venue.sqlite3" in reasons[0] and "stops" in reasons[0]
    orphan.venue.sweep()  # a stale venue's sweep does nothing, and says nothing more
    assert len(reasons) == 1
    newer.venue.store.close()
    orphan.venue.store.close()
    again = _reopen(tmp_path, clock, market)
    try:
        assert again.venue.ledger.cash == cash
        assert again.venue.ledger.positions["AAPL"].qty == 179
        assert len(again.venue.engine.orders) == 1  # the orphan's order was never written
    finally:
        again.venue.store.close()


@pytest.mark.expected_log(r"^services\.exchange\.venue: venue state is stale: account key 'cash'")
def test_a_row_changed_under_the_store_is_not_overwritten(tmp_path: Path) -> None:
    """Even within its own claim, an update only replaces the value the store last saw."""
    rig = make_rig(tmp_path)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
    with sqlite3.connect(tmp_path / "venue.sqlite3") as db:
        db.execute("UPDATE kv SET value = '55555' WHERE key = 'cash'")
    db.close()
    _buy(rig, {**BUY_179, "qty": 1})  # accepted; its fill would write the cash: refused
    assert rig.venue.stale is not None and "account key 'cash'" in rig.venue.stale
    with pytest.raises(ApiError, match="account key 'cash'"):  # and so is every later operation
        _buy(rig, {**BUY_179, "qty": 1})
    rig.venue.store.close()
    with sqlite3.connect(tmp_path / "venue.sqlite3") as db:
        assert db.execute("SELECT value FROM kv WHERE key = 'cash'").fetchone()[0] == "55555"
        assert db.execute("SELECT count(*) FROM positions").fetchone()[0] == 0
    db.close()


def test_unchanged_values_are_not_written_back(tmp_path: Path) -> None:
    """A batch carrying the cash the store last wrote does not write it again over a newer value."""
    store = VenueStore(tmp_path)
    store.write(kv={"cash": "100"})
    with sqlite3.connect(tmp_path / "venue.sqlite3") as db:
        db.execute("UPDATE kv SET value = '200' WHERE key = 'cash'")
        db.execute("INSERT INTO kv(key, value) VALUES ('last_equity', '7')")
    db.close()
    store.write(kv={"cash": "100"}, equity=[(1, Decimal(100))])  # its cash did not change: not written
    with pytest.raises(StaleStateError, match="account key 'last_equity'"):
        store.write(kv={"last_equity": "100"})  # created by someone else since this store looked
    store.close()
    with sqlite3.connect(tmp_path / "venue.sqlite3") as db:
        rows = dict(db.execute("SELECT key, value FROM kv").fetchall())
        assert rows["cash"] == "200" and rows["last_equity"] == "7"
        assert db.execute("SELECT count(*) FROM equity WHERE ts = 1").fetchone()[0] == 1
    db.close()


def test_the_lock_is_held_even_when_its_pid_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: writing the holder's pid failed and the exchange refused to start (exit 2) even
    though the kernel lock itself was free; the lock is what keeps one writer per venue."""
    import errno
    import os

    from services.exchange import lock

    def full(*_a: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock.os, "pwrite", full)
    held = lock.acquire(tmp_path)
    monkeypatch.undo()
    try:
        with pytest.raises(lock.DataDirLocked, match="pid is not yet written"):
            lock.acquire(tmp_path)
    finally:
        held.release()
    assert os.path.exists(tmp_path / lock.LOCK_NAME)


def test_a_store_opened_on_a_full_disk_says_disk_full_not_cannot_rollback(tmp_path: Path) -> None:
    """The writer claim failed on a full disk and its ROLLBACK (SQLite had already rolled back)
    raised "cannot rollback - no transaction is active", hiding the cause."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        VenueStore(mnt).close()  # the file exists, as after an earlier session
        with (mnt / "filler").open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        with pytest.raises(sqlite3.OperationalError) as raised:  # SQLite says "full" or "disk I/O"
            VenueStore(mnt)
        assert "cannot rollback" not in str(raised.value)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
