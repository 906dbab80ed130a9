"""Session-wide test setup. Runs before pytest-qt creates its QApplication."""

from __future__ import annotations

import os

# Tests never need a real display; without this Qt aborts the whole process when DISPLAY is unset.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Keep libdbus from auto-launching a session bus that outlives the tests (environment.md §0.7).
os.environ.setdefault("DBUS_SESSION_BUS_ADDRESS", "disabled:")
