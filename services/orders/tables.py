"""Tables of the orders, risk and reconciliation services, and their migration line ``orders``.

The journal is append-only; ``order_intents`` indexes the journal by client_order_id so start-up can
find in-flight intents without replaying it; ``orders`` and ``order_fills`` hold the order history
that no longer fits in memory. Money and quantities are exact (DecimalText), times aware UTC.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Connection, Integer, MetaData, String, Table, Text

from services.storage import DecimalText, Migration, Schema, UTCDateTime

metadata = MetaData()


def _journal(m: MetaData) -> Table:
    return Table(
        "order_journal",
        m,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("ts", UTCDateTime(), nullable=False),
        Column("kind", String(32), nullable=False, index=True),
        Column("client_order_id", String(64), nullable=True, index=True),
        Column("source", String(64), nullable=False),
        Column("payload", Text, nullable=False),
    )


def _intents(m: MetaData) -> Table:
    return Table(
        "order_intents",
        m,
        Column("client_order_id", String(64), primary_key=True),
        Column("logical_id", String(64), nullable=False, index=True),
        Column("source", String(64), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("request", Text, nullable=False),
        Column("status", String(16), nullable=False, index=True),
        Column("broker_order_id", String(64), nullable=True),
        Column("post_deadline", UTCDateTime(), nullable=False),
        Column("not_found_count", Integer, nullable=False, default=0),
        Column("last_not_found_at", UTCDateTime(), nullable=True),
    )


def _orders(m: MetaData) -> Table:
    return Table(
        "orders",
        m,
        Column("client_order_id", String(64), primary_key=True),
        Column("current_client_order_id", String(64), nullable=False),
        Column("broker_order_id", String(64), nullable=True, index=True),
        Column("parent_client_order_id", String(64), nullable=True),
        Column("symbol", String(32), nullable=False),
        Column("side", String(8), nullable=False),
        Column("qty", DecimalText(), nullable=True),
        Column("filled_qty", DecimalText(), nullable=False),
        Column("avg_fill_price", DecimalText(), nullable=True),
        Column("overfill_qty", DecimalText(), nullable=False),
        Column("state", String(24), nullable=False, index=True),
        Column("previous_state", String(24), nullable=False),
        Column("broker_status", String(32), nullable=False),
        Column("source", String(64), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("legs", Text, nullable=False),  # JSON: broker order id -> progress
    )


def _fills(m: MetaData) -> Table:
    return Table(
        "order_fills",
        m,
        Column("order_id", String(64), primary_key=True),
        Column("execution_id", String(128), primary_key=True),
        Column("client_order_id", String(64), nullable=False, index=True),
        Column("logical_id", String(64), nullable=False),
        Column("symbol", String(32), nullable=False, index=True),
        Column("side", String(8), nullable=False),
        Column("qty", DecimalText(), nullable=False),
        Column("price", DecimalText(), nullable=False),
        Column("ts", UTCDateTime(), nullable=False),
        Column("inferred", Boolean, nullable=False),
    )


def _anomalies(m: MetaData) -> Table:
    return Table(
        "order_anomalies",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("ts", UTCDateTime(), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("client_order_id", String(64), nullable=False),
        Column("detail", Text, nullable=False),
    )


def _incidents(m: MetaData) -> Table:
    return Table(
        "recon_incidents",
        m,
        Column("id", String(64), primary_key=True),
        Column("kind", String(40), nullable=False),
        Column("severity", String(16), nullable=False),
        Column("subject", String(64), nullable=False),
        Column("local_value", Text, nullable=False),
        Column("broker_value", Text, nullable=False),
        Column("detail", Text, nullable=False),
        Column("opened_at", UTCDateTime(), nullable=False),
        Column("acknowledged_at", UTCDateTime(), nullable=True),
        Column("acknowledged_by", String(64), nullable=True),
        Column("resolution", String(32), nullable=True),
    )


def _trading_state(m: MetaData) -> Table:
    return Table(
        "trading_state_log",
        m,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("ts", UTCDateTime(), nullable=False),
        Column("state", String(16), nullable=False),
        Column("reason", Text, nullable=False),
        Column("source", String(64), nullable=False),
    )


_BUILDERS = (_journal, _intents, _orders, _fills, _anomalies, _incidents, _trading_state)
(
    journal_table,
    intents_table,
    orders_table,
    fills_table,
    anomalies_table,
    incidents_table,
    trading_state_table,
) = (b(metadata) for b in _BUILDERS)


def _v1_create(conn: Connection) -> None:
    # Frozen copy of version 1: the builders above must not change; later versions add migrations.
    m = MetaData()
    for build in _BUILDERS:
        build(m)
    m.create_all(conn)


ORDERS_SCHEMA = Schema(
    "orders",
    (Migration(1, "order journal, intents, orders, fills, anomalies, incidents, trading state", _v1_create),),
    metadata=metadata,
)
