"""The indicator library shared by the chart and the strategies.

- ``series``: whole-array numpy functions (SMA, EMA, Bollinger, RSI, VWAP) plus the helpers that
  extend a series by appended bars or give the value for one more live bar. The chart uses these.
- ``stream``: incremental classes updated one value at a time in O(1) (SMA, EMA, RSI, Bollinger,
  rolling VWAP, ATR, rolling extremes). The strategies and the shadow features use these.

Both work in ``float``: indicators drive decisions and drawing, not accounting, and float keeps the
per-bar cost low. Prices and quantities that reach orders stay ``Decimal``; callers convert a bar's
``Decimal`` prices with ``float()`` before feeding them in. The two forms follow the same definitions
and agree to within float rounding (``tests/unit/indicators/test_agreement.py``).
"""
