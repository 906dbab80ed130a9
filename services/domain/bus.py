"""A typed, in-process publish/subscribe bus.

Handlers are called synchronously, in subscription order, on the thread that publishes (in Heron:
the event-loop thread). A handler that raises is logged and counted; the bus and every other
handler carry on. This is the opposite of an event thread that dies on its first exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.domain.events import Event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], None]


@dataclass(eq=False)
class Subscription:
    """Returned by :meth:`EventBus.subscribe`; call :meth:`cancel` to stop receiving events."""

    bus: EventBus
    event_type: type[Event]
    handler: Handler
    active: bool = True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self.bus._remove(self)


@dataclass
class EventBus:
    """Dispatch events to handlers registered for their class or any base class."""

    _handlers: dict[type[Event], list[Subscription]] = field(default_factory=dict)
    _dispatch_cache: dict[type[Event], tuple[Subscription, ...]] = field(default_factory=dict)
    handler_errors: int = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Subscription:
        """Call ``handler(event)`` for every published instance of ``event_type`` (or a subclass)."""
        sub = Subscription(self, event_type, handler)
        self._handlers.setdefault(event_type, []).append(sub)
        self._dispatch_cache.clear()
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._handlers.get(sub.event_type, [])
        if sub in subs:
            subs.remove(sub)
        self._dispatch_cache.clear()

    def _targets(self, event_type: type[Event]) -> tuple[Subscription, ...]:
        cached = self._dispatch_cache.get(event_type)
        if cached is None:
            targets: list[Subscription] = []
            for klass in event_type.__mro__:
                targets.extend(self._handlers.get(klass, ()))
            cached = tuple(targets)
            self._dispatch_cache[event_type] = cached
        return cached

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching handler; never raises because of a handler."""
        for sub in self._targets(type(event)):
            if not sub.active:
                continue
            try:
                sub.handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception(
                    "event handler %r failed on %s; the bus continues",
                    getattr(sub.handler, "__qualname__", sub.handler),
                    type(event).__name__,
                )
