"""The panels' one table-model package. Models hold formatted rows only; every number comes from a
service object.

- :mod:`~widgets.models.table`: :class:`RowTableModel`, keyed, bounded and frame-coalesced, for
  panels that services push events to (blotter, fills, positions, watchlist); with its roles
  (``SORT_ROLE``, ``FILTER_ROLE``, ``PAYLOAD_ROLE``) and :mod:`~widgets.models.row_view`'s painter.
- :mod:`~widgets.models.columns`: column-declared models for panels that poll a service snapshot
  (strategies, shadow, backtest trades, reconciliation, log), diffed into minimal notifications.
- :mod:`~widgets.models.common`: number formatting, status colours, confirmations, ``named``.
"""
