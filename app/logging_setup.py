"""Logging for Heron: a rotating file in the data directory, an in-app :class:`LogHub`, and a
redaction filter that masks every registered secret before any handler sees a record.

The redactor works on the fully formatted message, the exception text and the stack text, so a
secret inside a log argument, an exception message or a traceback line is masked too. It is
attached to every handler Heron installs (filters on a logger would miss child loggers).
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.storage.errors import describe_os_error

MASK = "********"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"

# Header and field spellings that always carry a secret, whatever its value.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(APCA-API-SECRET-KEY['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"),
    re.compile(r"(?i)([\"']?(?:secret|secret_key|api_secret)[\"']?\s*[:=]\s*['\"]?)([^\s'\",}]+)"),
)
_MIN_SECRET_LEN = 4  # masking shorter strings would shred ordinary words


class SecretRedactor:
    """Masks registered secrets and secret-looking header values. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, secret: str) -> None:
        """Mask ``secret`` from now on, in every log line on every thread."""
        if not secret or len(secret) < _MIN_SECRET_LEN:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first so a secret containing another is masked whole.
                self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites the record in place so no handler or formatter can see an unredacted secret."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_heron_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r} (formatting failed: {exc})"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
            # Keep exc_info out of reach of formatters that would re-render the raw traceback.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        record._heron_redacted = True
        return True


#: Third-party stream loggers that log every reconnect attempt with a full traceback.
STREAM_LOGGERS = ("alpaca.trading.stream", "alpaca.data.live.websocket")


def _expected_connection_error(exc: BaseException) -> bool:
    """The broker refused, closed or dropped the connection: expected while it is down or restarts."""
    if isinstance(exc, (ConnectionError, TimeoutError, EOFError)):
        return True
    if isinstance(exc, OSError) and exc.errno is not None:
        return True  # e.g. network unreachable, host down
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionClosed", "InvalidHandshake", "InvalidStatus", "InvalidMessage"})


class ConnectionNoiseFilter(logging.Filter):
    """An expected connection error logged with a traceback by a stream library becomes one
    warning line naming the error; an unexpected error keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if info and info[1] is not None and _expected_connection_error(info[1]):
            exc = info[1]
            record.exc_info = None
            record.exc_text = None
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            message = record.getMessage()
            record.msg = message if detail in message else f"{message} ({detail})"
            record.args = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def quiet_stream_reconnects(names: Iterable[str] = STREAM_LOGGERS) -> None:
    """Install :class:`ConnectionNoiseFilter` on the stream libraries' loggers (once each)."""
    for name in names:
        target = logging.getLogger(name)
        if not any(isinstance(f, ConnectionNoiseFilter) for f in target.filters):
            target.addFilter(ConnectionNoiseFilter())


@dataclass(frozen=True, slots=True)
class LogEntry:
    ts: datetime
    level: str
    levelno: int
    logger: str
    message: str
    exc_text: str | None = None


LogListener = Callable[[LogEntry], None]


class LogHub:
    """The last ``capacity`` log entries plus listeners, for the in-app log panel. No Qt.

    Thread-safety: entries may arrive from any thread. Listeners are called on the thread that
    logged, outside the hub's lock; a Qt adapter must marshal to the GUI thread itself. A listener
    that raises is dropped from nothing and never breaks logging.
    """

    def __init__(self, capacity: int = 5000) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._listeners: list[LogListener] = []
        self._lock = threading.Lock()
        self.total = 0

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def add_listener(self, listener: LogListener) -> Callable[[], None]:
        """Subscribe; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            self.total += 1
            listeners = tuple(self._listeners)
        for listener in listeners:
            try:
                listener(entry)
            except Exception as exc:  # never log from here: that would recurse into the hub
                print(f"heron: log listener {listener!r} failed: {exc!r}", file=sys.stderr)

    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)


class LogHubHandler(logging.Handler):
    def __init__(self, hub: LogHub, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.hub.append(
                LogEntry(
                    ts=datetime.fromtimestamp(record.created, UTC),
                    level=record.levelname,
                    levelno=record.levelno,
                    logger=record.name,
                    message=record.getMessage(),
                    exc_text=record.exc_text or None,
                )
            )
        except Exception:
            self.handleError(record)


class OwnerOnlyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file (the first and each one opened after a rollover) is created
    owner-only (0600), whatever the process umask: logs hold account and order details."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # also a file an older Heron created under a wider umask
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class ResilientFileHandler(OwnerOnlyRotatingFileHandler):
    """The log file, which may stop taking writes (a full disk) without stopping anything else.

    A record the file cannot take is not raised and not printed as a traceback: the first failure of
    an outage is said once on stderr (naming the file and "disk full" when that is the cause), the
    file is reopened at the next record (so writing resumes as soon as it can), and when it does a
    warning says how many records the file missed. Other handlers (the window's log, stderr) keep
    every record meanwhile.
    """

    def __init__(self, filename: Path, **kw: object) -> None:
        super().__init__(filename, **kw)  # type: ignore[arg-type]
        self.failing: str | None = None
        self.missed = 0

    def emit(self, record: logging.LogRecord) -> None:
        failed_before = self.failing
        super().emit(record)  # a failure goes to handleError
        if failed_before is not None and self.failing is not None and self.stream is not None:
            # the record went through: the file takes writes again
            missed, why = self.missed, self.failing
            self.failing, self.missed = None, 0
            note = logging.LogRecord(
                "app.logging_setup", logging.WARNING, __file__, 0,
                "the log file %s takes writes again; %d record(s) could not be written to it (%s)",
                (self.baseFilename, missed, why), None,
            )  # fmt: skip
            super().emit(note)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        self.missed += 1
        if self.stream is not None:
            # drop what could not be written and reopen at the next record: keep trying
            stream, self.stream = self.stream, None
            with contextlib.suppress(Exception):
                stream.close()
        if self.failing is None:
            self.failing = describe_os_error(error, self.baseFilename) if error else "unknown error"
            with contextlib.suppress(Exception):
                print(f"heron: the log file cannot be written: {self.failing}; logging goes on to the "
                      "window and stderr, and the file is tried again with every record",
                      file=sys.stderr, flush=True)  # fmt: skip
        # self.stream is None while failing: FileHandler.emit reopens it at the next record


@dataclass
class LoggingHandle:
    """What :func:`setup_logging` installed; :meth:`close` removes it again."""

    logger: logging.Logger
    handlers: list[logging.Handler]
    log_file: Path | None
    previous_level: int

    def close(self) -> None:
        for handler in self.handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self.logger.setLevel(self.previous_level)


def setup_logging(
    *,
    redactor: SecretRedactor,
    hub: LogHub,
    log_dir: Path | None,
    level: int = logging.INFO,
    console_level: int | None = logging.WARNING,
    logger: logging.Logger | None = None,
    max_bytes: int = 5_000_000,
    backup_count: int = 5,
) -> LoggingHandle:
    """Install the redacting handlers on ``logger`` (default: the root logger)."""
    target = logger if logger is not None else logging.getLogger()
    if logger is None:
        quiet_stream_reconnects()
    redacting = RedactingFilter(redactor)
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = []
    log_file = None
    if log_dir is not None:
        log_file = log_dir / "heron.log"
        file_handler = ResilientFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
        file_handler.setLevel(level)
        handlers.append(file_handler)
    hub_handler = LogHubHandler(hub, level)
    handlers.append(hub_handler)
    if console_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(console_level)
        handlers.append(console)
    for handler in handlers:
        handler.addFilter(redacting)
        handler.setFormatter(formatter)
        target.addHandler(handler)
    previous = target.level
    target.setLevel(min(level, console_level if console_level is not None else level))
    return LoggingHandle(logger=target, handlers=handlers, log_file=log_file, previous_level=previous)


def register_secrets(redactor: SecretRedactor, secrets: Iterable[str]) -> None:
    for secret in secrets:
        redactor.register(secret)
