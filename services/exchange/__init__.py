"""Heron's local Alpaca-compatible paper exchange; a separate program: ``python -m services.exchange``.

Where things are:

- ``http/``: everything that speaks HTTP or websockets. ``server.py`` builds the aiohttp app and its
  middlewares (errors, identity, auth, rate limit, admin faults); ``trading_api.py`` (/v2 trading
  routes), ``clock_api.py`` (clock and calendars), ``marketdata_api.py`` (bars, trades, quotes),
  ``admin.py``; ``order_requests.py`` turns order bodies into typed requests (``requests.py``);
  ``trading_stream.py`` (/stream trade_updates) and ``datastream.py`` (market-data websockets).
- The venue, without HTTP or JSON: ``venue.py`` (composes the engine, the ledger and the store;
  persists, then publishes), ``matching.py`` (order entry: submit, replace, cancel, close),
  ``fills.py`` (matching against the NBBO, stop elections, fills), ``book.py`` (the order book and
  reservations), ``order_checks.py`` and ``rules.py`` (pre-trade checks and account rules),
  ``orders.py`` (``VenueOrder``), ``ledger.py`` (cash, positions, where a fill changes a position:
  ``Ledger.apply_fill``), ``store.py`` (SQLite).
- ``market/``: the simulated market: ``simulator.py`` (NBBO, trades, quotes), ``minutes.py`` (bars,
  corrections), ``encoding.py`` (msgpack frames), ``history.py`` (generated history), ``universe.py``.
- The NYSE calendar is shared with the terminal: ``services/domain/calendar.py``.

How faithfully it imitates Alpaca, rule by rule with the Alpaca source and the test of each, and
what it deliberately does not imitate: the "Fidelity to Alpaca" table in README.md (section
"Local exchange").
"""
