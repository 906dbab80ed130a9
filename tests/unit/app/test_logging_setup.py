from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.logging_setup import MASK, LogHub, SecretRedactor, setup_logging

SECRET = "sk-9f8e7d6c5b4a-KNOWN-SECRET"


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[logging.Logger, LogHub, Path, SecretRedactor]]:
    redactor = SecretRedactor()
    redactor.register(SECRET)
    hub = LogHub(capacity=100)
    logger = logging.getLogger("heron.test.redaction")
    logger.propagate = False
    handle = setup_logging(redactor=redactor, hub=hub, log_dir=tmp_path, console_level=None, logger=logger)
    yield logger, hub, tmp_path / "heron.log", redactor
    handle.close()
    logger.propagate = True


def _everything(hub: LogHub, log_file: Path) -> str:
    hub_text = "\n".join(f"{e.message}\n{e.exc_text or ''}" for e in hub.entries())
    return log_file.read_text() + "\n" + hub_text


def test_a_known_secret_never_reaches_file_or_hub(logged) -> None:  # type: ignore[no-untyped-def]
    logger, hub, log_file, _ = logged
    child = logging.getLogger("heron.test.redaction.child")  # records from child loggers too
    logger.info("plain message with %s inside", SECRET)
    logger.warning(f"f-string with {SECRET}")
    child.error("dict arg %r", {"headers": {"APCA-API-SECRET-KEY": SECRET}})
    try:
        raise ValueError(f"bad auth {SECRET}")
    except ValueError:
        logger.exception("while connecting")
    try:
        try:
            raise KeyError(SECRET)
        except KeyError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError:
        child.error("chained", exc_info=True)
    logger.info("stack", stack_info=True, extra={"note": "x"})
    text = _everything(hub, log_file)
    assert SECRET not in text
    assert text.count(MASK) >= 5
    assert "Traceback" in text and "ValueError: bad auth" in text  # the traceback itself survives
    assert len(hub.entries()) == 6


def test_secret_looking_headers_are_masked_even_if_unregistered(logged) -> None:  # type: ignore[no-untyped-def]
    logger, hub, log_file, _ = logged
    logger.info("APCA-API-SECRET-KEY: abcdef123456 and 'APCA-API-SECRET-KEY': 'zzzz9999'")
    logger.info('{"key_id": "PK1", "secret": "qqqq7777"}')
    text = _everything(hub, log_file)
    for value in ("abcdef123456", "zzzz9999", "qqqq7777"):
        assert value not in text
    assert "PK1" in text


def test_secret_registered_later_and_from_another_thread(logged) -> None:  # type: ignore[no-untyped-def]
    logger, hub, log_file, redactor = logged
    late = "late-registered-secret-42"
    redactor.register(late)
    worker = threading.Thread(target=lambda: logger.error("thread sees %s", late))
    worker.start()
    worker.join()
    assert late not in _everything(hub, log_file)


def test_hub_is_bounded_and_listeners_survive_failures() -> None:
    hub = LogHub(capacity=3)
    got: list[str] = []

    def broken(_entry: object) -> None:
        raise RuntimeError("listener bug")

    hub.add_listener(broken)
    remove = hub.add_listener(lambda e: got.append(e.message))
    logger = logging.getLogger("heron.test.hub")
    logger.propagate = False
    handle = setup_logging(
        redactor=SecretRedactor(), hub=hub, log_dir=None, console_level=None, logger=logger
    )
    try:
        for i in range(5):
            logger.info("m%d", i)
        remove()
        logger.info("after removal")
    finally:
        handle.close()
        logger.propagate = True
    assert [e.message for e in hub.entries()] == ["m3", "m4", "after removal"]
    assert got == ["m0", "m1", "m2", "m3", "m4"]
    assert hub.total == 6


def test_short_strings_are_not_registered() -> None:
    redactor = SecretRedactor()
    redactor.register("ab")
    assert redactor.redact("about abc") == "about abc"
