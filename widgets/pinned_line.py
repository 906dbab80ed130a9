"""A one-line label whose text changes often, held at the size its layout gives it."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets


class PinnedLine(QtWidgets.QWidget):
    """A one-line label held at the size its layout gives this box.

    ``QLabel.setText`` asks for a new layout every time (``updateGeometry``), and the request climbs
    to the main window, whose layout pass walks every dock: the chart's readout changing on each
    tick of the live bar was ten whole-window layouts a second at idle, and a panel's "last run 5 s
    ago" one more each second. A widget whose minimum and maximum sizes are equal asks nothing, so
    the label gets this box's size, set again when the box is resized. A text longer than the box is
    cut at its edge (or elided, for a :class:`~widgets.message_label.MessageLabel`), never widening
    the window. ``chars`` is the width the box asks for, in average characters.
    """

    def __init__(
        self, label: QtWidgets.QLabel, parent: QtWidgets.QWidget | None = None, *, chars: int = 60
    ) -> None:
        super().__init__(parent)
        self.label, self.chars = label, chars
        label.setParent(self)
        height = max(label.sizeHint().height(), label.fontMetrics().height())
        self.setFixedHeight(height)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        label.setFixedSize(0, height)
        # Opaque: a repaint of the line paints the line, not the chart panel and window beneath it.
        label.setAutoFillBackground(True)

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self.label.fontMetrics().averageCharWidth() * self.chars, self.height())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self.label.setFixedSize(event.size())
