"""A layout file too large to be a layout (or not a file) is moved aside unread with a message; the
window keeps its built-in layout. A saved layout is its owner's only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QTextEdit

from services.domain.enums import Mode
from widgets.main_window import MainWindow

A_LAYOUT = 64 * 1024  # a real saved layout is a few kilobytes


def _window(qtbot, layout: Path) -> MainWindow:  # type: ignore[no-untyped-def]
    win = MainWindow(Mode.LOCAL, layout_file=layout)
    qtbot.addWidget(win)
    win.add_panel(QTextEdit(), "blotterPanel", "Blotter", "right")
    win.capture_default_layout()
    return win


@pytest.mark.expected_log(r"^widgets\.main_window: the layout file \S+ was not read:")
def test_a_huge_layout_file_is_moved_aside_unread(qtbot, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    with layout.open("w") as fh:  # 8 MB of well-formed INI: QSettings would parse all of it
        fh.write("[layout]\n")
        for i in range(200_000):
            fh.write(f"k{i}={'x' * 30}\n")
    size = layout.stat().st_size
    assert size > 4 * 1024 * 1024
    win = _window(qtbot, layout)
    with caplog.at_level(logging.WARNING):
        assert win.restore_layout() is False
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("layout.ini.corrupt-")]
    assert len(aside) == 1 and aside[0].stat().st_size == size  # kept whole, for the person to see
    assert any(str(layout) in r.getMessage() and "limit" in r.getMessage() for r in caplog.records)
    assert win.save_layout() and layout.stat().st_size < A_LAYOUT  # a fresh one works


@pytest.mark.expected_log(r"^widgets\.main_window: the layout file \S+ was not read:")
def test_a_folder_at_the_layout_path_does_not_stop_the_window(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    layout.mkdir()
    win = _window(qtbot, layout)
    assert win.restore_layout() is False
    assert win.save_layout() and layout.is_file()


def test_a_saved_layout_is_owner_only_whatever_the_umask(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(0o022)
    try:
        win = _window(qtbot, tmp_path / "layout.ini")
        assert win.save_layout()
    finally:
        os.umask(old)
    assert (tmp_path / "layout.ini").stat().st_mode & 0o077 == 0


@pytest.mark.expected_log(r"^widgets\.main_window: the layout file \S+ was ignored: it")
def test_a_random_binary_layout_file_is_said_and_moved_aside(qtbot, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    junk = bytes(range(256)) * 8 + os.urandom(2048)
    layout.write_bytes(junk)
    win = _window(qtbot, layout)
    with caplog.at_level(logging.WARNING):
        assert win.restore_layout() is False
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("layout.ini.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == junk  # kept whole, for the person to see
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(layout) in m and "not a saved layout" in m for m in warned), warned
    assert win.save_layout() and win.restore_layout()  # a fresh one works


def test_a_layout_of_another_panel_set_is_ignored_quietly(qtbot, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    first = _window(qtbot, layout)
    first.add_panel(QTextEdit(), "ordersPanel", "Orders", "right")
    assert first.save_layout()
    win = _window(qtbot, layout)
    with caplog.at_level(logging.WARNING):
        assert win.restore_layout() is False
    assert layout.exists() and not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
