"""Tie a panel's event-bus subscriptions to the panel's life.

A panel subscribes its handlers to the :class:`~services.domain.bus.EventBus` when it is built. The
bus holds those handlers (bound methods and lambdas over the panel), so without a cancel an event
published after the panel was destroyed would still reach it, and touch Qt objects that are gone.
:func:`cancel_on_destroy` cancels the subscriptions when the widget's Qt object is destroyed.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from services.domain.bus import Subscription


def cancel_subscriptions(subs: list[Subscription]) -> None:
    """Cancel every subscription in ``subs`` and empty the list (idempotent)."""
    for sub in subs:
        sub.cancel()
    subs.clear()


def cancel_on_destroy(widget: QObject, subs: list[Subscription]) -> None:
    """Cancel ``subs`` (the list as it is then) when ``widget`` is destroyed.

    The slot closes over the list only, never over ``widget``: it runs while Qt destroys the
    widget, when its Python wrapper may no longer reach the C++ object.
    """
    widget.destroyed.connect(lambda *_: cancel_subscriptions(subs))
