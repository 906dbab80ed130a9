"""Heron's composition root: builds every service, wires them, owns startup and shutdown.

Importing this package is cheap on purpose (main.py imports it before anything heavy); the real
work lives in :mod:`app.bootstrap`, imported only when :func:`run` is called.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Run Heron with parsed command-line arguments; returns the process exit code."""
    from app.bootstrap import run as _run

    return _run(args)


__all__ = ["run"]
