"""Heron's local Alpaca-compatible paper exchange; a separate program: ``python -m services.exchange``."""
