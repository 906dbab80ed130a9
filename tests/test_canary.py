"""Guard against PySide6 6.12.0 on CPython 3.11, which corrupts the refcounts of None and True and
aborts the interpreter within a second of real work."""

from __future__ import annotations

import sys


def test_pyside_refcount_canary() -> None:
    from PySide6 import QtCore

    class Emitter(QtCore.QObject):
        sig = QtCore.Signal(int)

    obj = Emitter()
    obj.sig.connect(lambda v: None)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(100):
        obj.setObjectName("x")
        obj.sig.emit(1)
    assert sys.getrefcount(None) - none_before > -50 and sys.getrefcount(True) - true_before > -50, (
        "PySide6 drops None/True references: pin PySide6-Essentials<6.12 on Python 3.11"
    )
