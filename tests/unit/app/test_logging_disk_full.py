"""A log file on a full disk: said once on stderr (naming the file and "disk full"), never a traceback
per record, the window's log keeps every record, and the file is written again once space returns."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import IO, Any

import pytest

from app.logging_setup import LogHub, SecretRedactor, setup_logging


class _FullFile:
    """A file whose writes fail with ENOSPC (what the OS says on a full disk)."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_a_log_file_on_a_full_disk_is_said_once_and_written_again_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("heron-test-diskfull")
    logger.propagate = False
    hub = LogHub()
    handle = setup_logging(
        redactor=SecretRedactor(), hub=hub, log_dir=tmp_path, logger=logger, console_level=None
    )
    try:
        [file_handler] = [h for h in handle.handlers if isinstance(h, logging.FileHandler)]
        real_open = file_handler._open
        full = {"on": False}

        def opener() -> IO[Any]:
            return _FullFile() if full["on"] else real_open()  # type: ignore[return-value]

        file_handler._open = opener  # type: ignore[method-assign]
        logger.info("before")
        full["on"] = True
        file_handler.stream.close()
        file_handler.stream = None  # type: ignore[assignment]
        for n in range(5):
            logger.warning("during %d", n)  # never raises into the caller
        err = capsys.readouterr().err
        assert err.count("log file cannot be written") == 1
        assert "disk full" in err and str(tmp_path / "heron.log") in err
        assert "Traceback" not in err and "Logging error" not in err
        full["on"] = False
        logger.info("after")
        text = (tmp_path / "heron.log").read_text(encoding="utf-8")
        assert "before" in text and "after" in text and "during" not in text
        assert "takes writes again; 5 record(s) could not be written to it (disk full" in text
        assert [e.message for e in hub.entries() if e.message.startswith("during")] == [
            f"during {n}" for n in range(5)
        ]  # the window's log kept every record
    finally:
        handle.close()
