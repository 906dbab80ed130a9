"""Storage: the database (migrations at open), the candle cache and the journal's high-water mark
(a journal behind its mark was rolled back: said at start, and accepted only on purpose)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, now, spawn, startup_failed
from services.orders import startup
from services.orders.tables import ORDERS_SCHEMA
from services.shadow.registry import SHADOW_MODELS_SCHEMA
from services.storage import Database, StorageError
from services.storage.candles import CANDLES_SCHEMA, CandleStore
from services.storage.watermark import JournalMark, lost_database_problem

log = logging.getLogger("heron.app")


def open_storage(ctx: AppContext, services: Services) -> None:
    # Migrations are quick (a few CREATE TABLEs at most); opening synchronously keeps the journal's
    # durability guarantees simple (the same engine on the loop thread).
    db_file = _sqlite_file(ctx.args.db, ctx.paths.profile_dir)
    existed = db_file is not None and db_file.exists()
    lost = lost_database_problem(db_file) if db_file is not None else None
    if lost is not None and getattr(ctx.args, "accept_journal_rollback", None) is None:
        startup_failed(ctx, services, lost)  # a new, empty database would hide what was lost
        return
    try:
        services.db = Database.open(
            ctx.args.db, ctx.paths.profile_dir, (ORDERS_SCHEMA, CANDLES_SCHEMA, SHADOW_MODELS_SCHEMA)
        )
    except StorageError as exc:
        startup_failed(ctx, services, f"the database could not be opened: {exc}")
        return
    services.candles = CandleStore(services.db)
    db = services.db
    if db_file is not None:
        _check_journal_mark(ctx, services, JournalMark(db_file), fresh=not existed and lost is None)
    ctx.lifecycle.add_step(stages.FLUSH_STORAGE, "database", db.dispose)


def _sqlite_file(url: str | None, profile_dir: Path) -> Path | None:
    """The SQLite file of the database URL (None for other databases and in-memory SQLite)."""
    if url is None:
        return profile_dir / "heron.db"
    from sqlalchemy import make_url

    try:
        sa_url = make_url(url)
    except Exception:
        return None
    if sa_url.get_backend_name() != "sqlite" or sa_url.database in (None, "", ":memory:"):
        return None
    return Path(sa_url.database or "")


def _journal_seq(db: Database) -> int:
    from sqlalchemy import func, select

    from services.orders.tables import journal_table

    with db.connect() as conn:
        return int(conn.execute(select(func.max(journal_table.c.seq))).scalar_one_or_none() or 0)


def _check_journal_mark(ctx: AppContext, services: Services, mark: JournalMark, *, fresh: bool) -> None:
    """A journal behind its high-water mark was rolled back (a lost write-ahead log): say so now, and
    name it as the cause of the drift reconciliation will find. Then keep the mark up to date."""
    db = services.db
    assert db is not None
    if fresh:
        mark.forget()
    try:
        current = _journal_seq(db)
    except Exception as exc:
        log.warning("journal mark: the journal's last sequence cannot be read (%s)", exc)
        return
    try:
        problem = mark.check(current)
    except OSError as exc:
        log.warning("the journal mark %s could not be written: %s", mark.path, exc)
        problem = None
    if problem is not None:
        services.journal_rollback = f"database {db.display_url}: {problem}"
        reason = getattr(ctx.args, "accept_journal_rollback", None)
        if reason is None:
            log.error("%s", services.journal_rollback)
            ctx.notify("error", "storage", services.journal_rollback)
        else:
            _accept_rollback(ctx, services, mark, reason)
    elif getattr(ctx.args, "accept_journal_rollback", None) is not None:
        log.info("--accept-journal-rollback: no journal rollback is recorded; nothing accepted")
    services.journal_mark = mark
    _write_mark(services)

    async def keep() -> None:
        while True:
            await asyncio.sleep(JOURNAL_MARK_EVERY_S)
            await asyncio.to_thread(_write_mark, services)

    spawn(services, "journal mark", keep())

    async def last() -> None:
        await cancel_tasks(services, "journal mark")
        _write_mark(services)

    ctx.lifecycle.add_step(stages.FLUSH_STORAGE, "journal mark", last)


def _accept_rollback(ctx: AppContext, services: Services, mark: JournalMark, reason: str) -> None:
    """``--accept-journal-rollback REASON``: the operator accepts the journal as it is. Journaled
    (``journal_rollback_accepted``, with the operator and the reason) and said; the mark moves to the
    journal's end. Reconciliation still names the rollback as the cause of the drift it finds now."""
    from services.orders.journal import OrderJournal

    db, rollback = services.db, mark.rollback
    assert db is not None and rollback is not None
    operator = startup.operator()
    journal = OrderJournal(db, now)
    journal.append("journal_rollback_accepted", None, "manual", operator=operator, reason=reason,
                   missing=rollback.missing, marked=rollback.marked, found=rollback.found)  # fmt: skip
    journal.flush()
    mark.accept(_journal_seq(db))
    line = (
        f"journal rolled back by {rollback.missing} record(s) (database {db.display_url}): accepted by "
        f"{operator}: {reason}"
    )
    log.warning("%s", line)
    ctx.notify("warning", "storage", line)


#: How often the journal's high-water mark is brought up to date (and at quit).
JOURNAL_MARK_EVERY_S = 1.0


def _write_mark(services: Services) -> None:
    mark, db = services.journal_mark, services.db
    if mark is None or db is None:
        return
    try:
        mark.write(_journal_seq(db))
    except Exception as exc:  # a failed mark never stops trading
        log.warning("the journal mark %s could not be written: %s", mark.path, exc)
