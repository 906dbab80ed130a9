"""Shadow mode: ML models predict, the predictions are logged and scored, and nothing is ever sent.

This package has no reference to any order sink, broker or execution engine, by construction: it
imports nothing from ``services.orders``, ``services.broker``, ``services.exchange`` or the strategy
runner (a test checks the imports and runs the pipeline next to an order sink that fails on use).
"""
