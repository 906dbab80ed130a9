"""A one-line label whose text changes often, held at the size its layout gives it."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

#: the widest a held field grows for a long text (it is cut with "…" beyond, if it elides)
HOLD_MAX_PX = 320


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


def hold_width(label: QtWidgets.QLabel, sample: str) -> None:
    """A fixed size for a field whose value changes every second (a latency, a message rate, a
    clock): wide enough for ``sample`` or for what it says now if that is longer (at most
    :data:`HOLD_MAX_PX`), back to the sample's width when the text is short again. A new value of
    the usual length then repaints the field alone; a field of free size asked the whole window for
    a layout pass (every dock measured again) each time its width changed by a digit."""
    label.ensurePolished()  # the style sheet's padding and font are part of the size
    metrics = label.fontMetrics()
    # frame and padding (a style sheet's padding is the contents margins), never the size it has now
    frame = label.width() - label.contentsRect().width() + 2 * label.margin() + 4
    text = max(metrics.horizontalAdvance(label.text()), metrics.horizontalAdvance(sample))
    width = min(text + frame, HOLD_MAX_PX)
    height = max(label.sizeHint().height(), metrics.height())
    if (label.minimumWidth(), label.maximumWidth(), label.maximumHeight()) != (width, width, height):
        label.setFixedSize(width, height)
