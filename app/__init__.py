"""Heron's composition root: builds every service, wires them, owns startup and shutdown.

Importing this package is cheap on purpose (main.py imports it before anything heavy); the real
work lives in :mod:`app.bootstrap`, imported only when :func:`run` is called.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.launch import Launch


def run(args: argparse.Namespace, launch: Launch | None = None) -> int:
    """Run Heron with parsed command-line arguments (and what main.py started before the imports);
    returns the process exit code."""
    from app.bootstrap import run as _run

    return _run(args, launch)


__all__ = ["run"]
