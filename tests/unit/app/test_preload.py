from __future__ import annotations

import sys

from app.preload import SERVICE_MODULES, WINDOW_MODULES, ServiceImports, import_window_modules


def test_service_imports_run_on_a_worker_and_collect_failures() -> None:
    sys.modules.pop("json.tool", None)
    lanes = ServiceImports(("json.tool", "no_such_module_for_heron")).start()
    assert lanes.wait(30)
    assert "json.tool" in sys.modules
    assert set(lanes.failed) == {"no_such_module_for_heron"}
    assert "ModuleNotFoundError" in lanes.failed["no_such_module_for_heron"]
    assert lanes.seconds is not None and lanes.seconds >= 0


def test_window_module_failures_are_returned_not_raised() -> None:
    failed = import_window_modules(("colorsys", "no_such_widget_for_heron"))
    assert list(failed) == ["no_such_widget_for_heron"]


def test_the_lanes_do_not_overlap_and_the_service_lane_stays_qt_free() -> None:
    assert not set(SERVICE_MODULES) & set(WINDOW_MODULES)
    assert all(not m.startswith(("PySide6", "widgets", "qasync", "pyqtgraph")) for m in SERVICE_MODULES)
