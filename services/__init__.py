"""Heron service layer: everything that is not a widget. Qt-free, asyncio-based."""
