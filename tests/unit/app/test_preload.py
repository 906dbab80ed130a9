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


def test_pyside_import_hook_keeps_no_module_sources_in_memory() -> None:
    """PySide6 checks every imported module's source for "PySide6" with inspect.getsource, which
    keeps each whole file in linecache (tens of MB, varying with the import lanes' race). After the
    window's imports, the sources of numpy, pandas and the rest are not held, and the check still
    tells a module that uses PySide6 from one that does not. A fresh interpreter: this one may have
    imported PySide6 already."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import json, linecache, sys\n"
        "from app.preload import import_window_modules\n"
        "failed = import_window_modules()\n"
        "import numpy, pandas, sqlalchemy, pyqtgraph\n"
        "marks = sys.modules['shibokensupport.feature'].pyside_feature_dict\n"
        "files = sorted(k for k in linecache.cache if k.endswith('.py'))\n"
        "print(json.dumps({'failed': failed, 'cached': files,\n"
        "                  'uses': [marks.get(m) for m in ('widgets.theme', 'numpy', 'pandas')]}))\n"
    )
    repo = Path(__file__).resolve().parents[3]
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=repo, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["failed"] == {}
    # source files held (SQLAlchemy's generated functions have entries too: not files, a few lines)
    assert len(out["cached"]) <= 5, out["cached"]  # shiboken6's own first imports at most
    assert out["uses"] == [0, -1, -1]  # 0: uses PySide6 (features apply); -1: ignored
