"""A label for messages of any length: a broker's refusal, a keyring error, a validation problem.

A plain :class:`QLabel` asks its layout for the width of its whole text (or of its longest word when
it wraps), so one long message made the main window thousands of pixels wide and pushed a dialog's
Save button off the screen. :class:`MessageLabel` never asks for more than :data:`MAX_WIDTH`:

- ``wrap`` (the default): wrapped lines, long unbroken runs (URLs, ids) broken too, at most
  ``max_chars`` characters shown;
- ``elide``: one line cut with "…" at the width it is given (status bars, banners).

Either way the whole text is the tooltip, and a message cut short is written to the log in full, once:
a label that shows the same message again (a message cleared and set again, or the ticket's pre-check
re-run every second with the figures moved by the quotes) does not write it again; a message is the
same when only its numbers differ. The echo is at DEBUG by default: it is the window repeating itself, and
the events a trader must read in the Log panel (a broker's refusal, a rejection, the kill switch) are
logged at WARNING or ERROR where they happen. An owner whose message is logged nowhere else passes
``log_level``.
"""

from __future__ import annotations

import html
import logging
import re
from collections import OrderedDict

from PySide6 import QtGui
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget

log = logging.getLogger("heron.widgets.messages")

#: The most width a message label asks of its layout (it may be given more).
MAX_WIDTH = 480
#: The least it asks for (a layout may squeeze it to this and wrap or elide the rest).
MIN_WIDTH = 60
#: Characters shown of a wrapped message; the rest is in the tooltip and the log.
MAX_CHARS = 300
#: A tooltip holds at most this much (the log has everything).
MAX_TIP_CHARS = 4000
#: How many distinct long messages a label remembers having logged (one coming back is not logged again).
LOGGED_MEMORY = 32
_LONG_RUN = re.compile(r"\S{40,}")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_BREAK = "\u200b"  # zero-width space: a place a line may break
#: Qt's own test of whether a label shows ``text`` as rich text (Qt::mightBeRichText).
_rich = QtGui.Qt.mightBeRichText


def breakable(text: str, run: int = 40) -> str:
    """``text`` with a line-break opportunity every ``run`` characters inside long unbroken runs."""
    return _LONG_RUN.sub(lambda m: _BREAK.join(m[0][i : i + run] for i in range(0, len(m[0]), run)), text)


def tooltip_text(text: str) -> str:
    """The whole message as a tooltip that wraps (rich text wraps in a Qt tooltip)."""
    shown = text if len(text) <= MAX_TIP_CHARS else text[: MAX_TIP_CHARS - 1] + "…"
    return f"<p style='white-space:pre-wrap'>{html.escape(breakable(shown))}</p>"


class MessageLabel(QLabel):
    """See the module docstring. ``text()`` is the whole message; what is painted may be shorter."""

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        *,
        elide: bool = False,
        max_chars: int = MAX_CHARS,
        max_width: int = MAX_WIDTH,
        log_level: int = logging.DEBUG,
    ) -> None:
        super().__init__(parent)
        self.elide = elide
        self.max_chars = max_chars
        self.max_width = max_width
        self._full = ""
        self._own_tip = ""
        self._cut = False
        self.log_level = log_level
        self._logged: OrderedDict[str, None] = OrderedDict()
        self.setWordWrap(not elide)
        self.setText(text)

    # -- text ---------------------------------------------------------------------------------------
    def text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:
        text = str(text)
        if text != self._full and len(text) > self.max_chars and not _rich(text):
            self._log_whole(text)
        self._full = text
        self._show()

    def _log_whole(self, text: str) -> None:
        """Write ``text`` to the log unless this label already did (recently: the memory is bounded)."""
        key = _NUMBER.sub("#", text)  # the same message with other live figures is not news
        if key in self._logged:
            self._logged.move_to_end(key)
            return
        self._logged[key] = None
        if len(self._logged) > LOGGED_MEMORY:
            self._logged.popitem(last=False)
        name = self.objectName() or "message"
        log.log(self.log_level, "%s (shown cut short; the whole message): %s", name, text)

    def setStyleSheet(self, sheet: str) -> None:
        """Qt re-polishes a label for every style sheet set, the same one too, and this label then
        measures itself again and asks for a layout: a status field re-coloured every second laid
        the whole window out every second. Only a change is applied."""
        if sheet != self.styleSheet():
            super().setStyleSheet(sheet)

    def setToolTip(self, tip: str) -> None:
        """The owner's tooltip; while the message is cut short, the whole message comes first."""
        self._own_tip = tip
        self._apply_tip()

    @property
    def cut(self) -> bool:
        """Whether what is painted is less than the whole message."""
        return self._cut

    def _apply_tip(self) -> None:
        if not self._cut:
            super().setToolTip(self._own_tip)
            return
        tip = tooltip_text(self._full)
        if self._own_tip:
            tip += f"<p>{html.escape(self._own_tip)}</p>"
        super().setToolTip(tip)

    def _show(self) -> None:
        text = self._full
        if _rich(text):
            shown = text
        elif self.elide:
            # a message of several lines becomes one; a one-line text keeps its spacing (the chart
            # readout's fields are set apart by two spaces)
            one_line = text if text.isprintable() else " ".join(text.split())
            width = max(self.contentsRect().width(), MIN_WIDTH)
            shown = self.fontMetrics().elidedText(one_line, Qt.TextElideMode.ElideRight, width)
            cut = shown != one_line
        else:
            cut = len(text) > self.max_chars
            shown = breakable(text[: self.max_chars - 1] + "…" if cut else text)
        self._cut = cut if not _rich(text) else False
        super().setText(shown)
        self._apply_tip()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.elide and event.oldSize().width() != event.size().width():
            self._show()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # a style sheet that makes the text bold arrives after the text: measure again
        if self.elide and event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._show()
            self.updateGeometry()

    # -- size ---------------------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        if self.elide:  # the whole line, plus the label's own margins around what it paints now
            metrics = self.fontMetrics()
            frame = hint.width() - metrics.horizontalAdvance(super().text())
            hint.setWidth(metrics.horizontalAdvance(" ".join(self._full.split())) + max(frame, 0) + 1)
        hint.setWidth(min(hint.width(), self.max_width))
        return hint

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        hint.setWidth(min(hint.width(), MIN_WIDTH))
        return hint

    def heightForWidth(self, width: int) -> int:
        return super().heightForWidth(width) if not self.elide else -1
