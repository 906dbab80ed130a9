"""A damaged database stops a headless start with one line naming the file and the problem, and a
non-zero exit; a journal rolled back by a lost write-ahead log is named as the cause of its drift;
``--headless`` exits non-zero when trading never went ACTIVE or the state report was not written.

One real session (a headless terminal against a separately started exchange, placing orders) makes
the database that each case copies and damages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.crash.harness import REPO, run_terminal
from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for

SCRIPT = [
    {"symbol": "AAPL", "side": "buy", "qty": "5", "type": "market"},
    {"symbol": "MSFT", "side": "buy", "qty": "3", "type": "market", "delay": 0.2},
    {
        "symbol": "SPY",
        "side": "buy",
        "qty": "2",
        "type": "limit",
        "limit_price": {"offset_pct": -5},
        "time_in_force": "gtc",
        "delay": 0.2,
    },
]


def _db(data: Path) -> Path:
    return data / "profiles" / "default" / "heron.db"


@pytest.fixture(scope="module")
def exchange() -> Iterator[ExchangeProcess]:
    with ExchangeProcess.start(seed=21) as ex:
        yield ex


@pytest.fixture(scope="module")
def session(exchange: ExchangeProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of one real session that placed orders and quit cleanly."""
    data = tmp_path_factory.mktemp("session") / "heron"
    run = run_terminal(exchange, data, quit_after=6, script=SCRIPT)
    assert run.returncode == 0, run.stderr[-2000:]
    with closing(sqlite3.connect(_db(data))) as conn:
        assert conn.execute("SELECT count(*) FROM order_fills").fetchone()[0] >= 2
    return data


def _copy(session: Path, tmp_path: Path) -> Path:
    data = tmp_path / "heron"
    shutil.copytree(session, data)
    (data / "report.json").unlink(missing_ok=True)
    return data


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line]


def _assert_stopped_with_one_line(stderr: str, db: Path, *words: str) -> None:
    lines = _error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "start-up stopped" in lines[0] and str(db) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def _overwrite_page(db: Path, table: str) -> None:
    with closing(sqlite3.connect(db)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size + 8)
        fh.write(b"\xa5" * 200)


def _truncate(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.truncate(size // 2)


def _not_sqlite(db: Path) -> None:
    db.write_text("this is a shopping list, not a database\n" * 200)


def _sql(*statements: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        with closing(sqlite3.connect(db)) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.commit()

    return damage


DAMAGE: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "bad-page": (lambda db: _overwrite_page(db, "order_fills"), ("damaged", "quick_check")),
    "truncated": (_truncate, ("damaged",)),
    "not-sqlite": (_not_sqlite, ("not a SQLite database",)),
    "order-json": (_sql("UPDATE orders SET legs = '{not json'"), ("orders row", "unreadable")),
    "order-missing-field": (_sql("""UPDATE orders SET legs = '{"legs": {}}'"""), ("orders row",)),
    "fill-absurd-qty": (_sql("UPDATE order_fills SET qty = '-5'"), ("order_fills row", "qty")),
    "fill-not-a-number": (_sql("UPDATE order_fills SET price = 'lots'"), ("order_fills row",)),
    "intent-missing-field": (
        _sql("""UPDATE order_intents SET status = 'in_flight', request = '{"symbol": "AAPL"}'"""),
        ("order_intents row", "side"),
    ),
    "halt-record-not-json": (
        _sql(
            "INSERT INTO order_journal (ts, kind, client_order_id, source, payload) "
            "VALUES (1, 'kill_switch', NULL, 'manual', '[not json')"
        ),
        ("order_journal row",),
    ),
    "foreign-table": (
        _sql("DROP TABLE orders", "CREATE TABLE orders (id INTEGER PRIMARY KEY, title TEXT)"),
        ("table orders", "another shape"),
    ),
    "older-table-shape": (_sql("ALTER TABLE orders DROP COLUMN legs"), ("table orders", "legs")),
    "newer-schema": (
        _sql("INSERT INTO schema_version VALUES ('orders', 7, 'from the future', 1)"),
        ("newer Heron",),
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_database_stops_start_up_with_one_line(
    exchange: ExchangeProcess, session: Path, tmp_path: Path, case: str
) -> None:
    data = _copy(session, tmp_path)
    damage, words = DAMAGE[case]
    damage(_db(data))
    run = run_terminal(exchange, data, quit_after=20, timeout=60)
    assert run.returncode == 1, run.stderr[-3000:]
    _assert_stopped_with_one_line(run.stderr, _db(data), *words)


def test_a_foreign_database_is_refused_untouched(exchange: ExchangeProcess, tmp_path: Path) -> None:
    data = tmp_path / "heron"
    db = _db(data)
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("INSERT INTO orders (title) VALUES ('groceries')")
        conn.commit()
    run = run_terminal(exchange, data, quit_after=20, timeout=60)
    assert run.returncode == 1, run.stderr[-3000:]
    _assert_stopped_with_one_line(run.stderr, db, "table orders", "another application")
    with closing(sqlite3.connect(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = conn.execute("SELECT * FROM orders").fetchall()
    assert tables == {"orders"}, tables
    assert rows == [(1, "groceries")]


def _mark(db: Path) -> int:
    try:
        return int(json.loads(db.with_name(db.name + "-mark").read_text())["journal_seq"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_journal_rolled_back_by_a_lost_wal_is_named_as_the_cause_of_the_drift(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    data.mkdir()
    db = _db(data)
    script = data / "script.json"
    script.write_text(json.dumps(SCRIPT[:1]))
    with ExchangeProcess.start(seed=22) as ex:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data),
             "--exchange-url", ex.url, "--exchange-keys", str(ex.keys_file), "--quit-after", "60",
             "--script", str(script)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
        )  # fmt: skip
        try:

            def filled() -> bool:
                if not db.exists():
                    return False
                try:
                    with closing(sqlite3.connect(db)) as conn:
                        fills = conn.execute("SELECT count(*) FROM order_fills").fetchone()[0]
                        seq = conn.execute("SELECT max(seq) FROM order_journal").fetchone()[0] or 0
                except sqlite3.Error:
                    return False
                return fills >= 1 and _mark(db) >= seq > 0

            wait_for("a booked fill covered by the journal mark", filled, 30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        marked = _mark(db)
        wal = db.with_name(db.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0
        wal.unlink()
        db.with_name(db.name + "-shm").unlink(missing_ok=True)
        run = run_terminal(ex, data, quit_after=8)
    assert run.returncode == 1, run.stderr[-3000:]
    rolled = [line for line in run.stderr.splitlines() if "journal rolled back" in line]
    assert len(rolled) == 1, run.stderr[-3000:]
    assert str(db) in rolled[0] and "write-ahead log damaged or lost" in rolled[0]
    with closing(sqlite3.connect(db)) as conn:
        seq = conn.execute("SELECT max(seq) FROM order_journal").fetchone()[0] or 0
        details = [r[0] for r in conn.execute("SELECT detail FROM recon_incidents WHERE subject = 'AAPL'")]
    assert seq < marked
    assert details and all("cause: " in d and "journal rolled back" in d for d in details), details
    assert "trading was never enabled" in run.stderr


@pytest.mark.slow
def test_headless_exits_non_zero_when_the_state_report_cannot_be_written(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    data.mkdir()
    report = data / "report-folder"
    report.mkdir()  # a folder where the report file should go: the write fails, even for root
    with ExchangeProcess.start(seed=23) as exchange:
        proc = subprocess.run(
            [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data),
             "--exchange-url", exchange.url, "--exchange-keys", str(exchange.keys_file), "--quit-after", "6",
             "--state-report", str(report)],
            cwd=REPO, capture_output=True, text=True, timeout=60, env=dict(os.environ),
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and "state report could not be written" in lines[0], proc.stderr[-3000:]
    assert str(report) in lines[0]


def test_headless_exits_non_zero_when_trading_never_went_active(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    data.mkdir()
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"key_id": "PKTEST", "secret": "not-a-secret"}))
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data),
         "--exchange-url", "http://127.0.0.1:9", "--exchange-keys", str(keys), "--quit-after", "2",
         "--state-report", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert any("trading was never enabled" in line for line in _error_lines(proc.stderr)), proc.stderr
    assert report.exists()


def _headless(data: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A headless run against no exchange at all: enough for what start-up decides before connecting."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"key_id": "PKTEST", "secret": "not-a-secret"}))
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data),
         "--exchange-url", "http://127.0.0.1:9", "--exchange-keys", str(keys), "--quit-after", "2",
         *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip


def _write_mark(db: Path, seq: int) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    db.with_name(db.name + "-mark").write_text(json.dumps({"journal_seq": seq}) + "\n")


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_a_lost_database_with_a_journal_mark_stops_start_up_untouched(tmp_path: Path, state: str) -> None:
    data = tmp_path / "heron"
    db = _db(data)
    _write_mark(db, 18)
    if state == "empty":
        db.write_bytes(b"")
    run = _headless(data, tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]
    _assert_stopped_with_one_line(run.stderr, db, "reached 18", "--accept-journal-rollback")
    assert "journal rolled back" not in run.stderr
    if state == "empty":
        assert db.exists() and db.stat().st_size == 0
    else:
        assert not db.exists()
    assert sorted(p.name for p in db.parent.glob("heron.db*")) == (
        ["heron.db", "heron.db-mark"] if state == "empty" else ["heron.db-mark"]
    )
    assert json.loads(db.with_name("heron.db-mark").read_text()) == {"journal_seq": 18}
    run = _headless(data, tmp_path, "--accept-journal-rollback", "lost; checked at the broker")
    assert "start-up stopped" not in run.stderr, run.stderr[-3000:]
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT payload FROM order_journal WHERE kind = 'journal_rollback_accepted'"
        ).fetchall()
    assert len(rows) == 1 and json.loads(rows[0][0])["missing"] == 18
    assert "journal rolled back" not in _headless(data, tmp_path).stderr


def test_an_empty_database_without_evidence_is_created_as_new(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    db = _db(data)
    db.parent.mkdir(parents=True)
    db.write_bytes(b"")
    run = _headless(data, tmp_path)
    assert "start-up stopped" not in run.stderr, run.stderr[-3000:]
    with closing(sqlite3.connect(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "order_journal" in tables


def test_a_rollback_is_named_at_every_start_until_an_operator_accepts_it(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    db = _db(data)
    assert _headless(data, tmp_path).returncode == 1  # makes the database (no exchange: never ACTIVE)
    with closing(sqlite3.connect(db)) as conn:
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM order_journal").fetchone()[0]
    _write_mark(db, seq + 13)
    for _ in range(2):
        run = _headless(data, tmp_path)
        rolled = [line for line in run.stderr.splitlines() if "journal rolled back" in line]
        assert len(rolled) == 1 and "13 record(s) missing" in rolled[0], run.stderr[-3000:]
        assert _mark(db) == seq + 13  # never moved backwards by itself
    run = _headless(data, tmp_path, "--accept-journal-rollback", "restored from the broker's records")
    accepted = [line for line in run.stderr.splitlines() if "accepted" in line and "rolled back" in line]
    assert len(accepted) == 1 and "restored from the broker's records" in accepted[0], run.stderr[-3000:]
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT payload FROM order_journal WHERE kind = 'journal_rollback_accepted'"
        ).fetchall()
    assert len(rows) == 1 and json.loads(rows[0][0])["missing"] == 13
    run = _headless(data, tmp_path)
    assert "journal rolled back" not in run.stderr, run.stderr[-3000:]


def test_a_refused_script_and_a_newer_settings_file_are_errors_in_the_log(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", "qty": "-1"}]))
    run = _headless(data, tmp_path, "--script", str(script))
    assert run.returncode == 1
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1, run.stderr
    log_text = (data / "profiles" / "default" / "logs" / "heron.log").read_text()
    assert [ln for ln in log_text.splitlines() if "--script refused" in ln and " ERROR " in ln], log_text
    settings = data / "profiles" / "default" / "settings.json"
    settings.write_text(json.dumps({"schema_version": 999}))
    run = _headless(data, tmp_path)
    assert run.returncode == 1
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1, run.stderr
    log_text = (data / "profiles" / "default" / "logs" / "heron.log").read_text()
    assert [line for line in log_text.splitlines() if "newer Heron" in line and " ERROR " in line], log_text
