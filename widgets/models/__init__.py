"""Qt item models that adapt service stores (QuoteBook, OrderStore) for the trading panels.

Models hold formatted rows only; every number comes from a service object. Updates are staged and
applied once per frame: mutate rows, then emit ``dataChanged`` once per flush.
"""
