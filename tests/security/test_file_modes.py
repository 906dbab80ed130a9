"""Everything Heron writes under its data directory is its owner's only (folders 0700, files 0600),
whatever the umask it was started with: database and its WAL, logs (rotated ones too), settings,
the exchange venue and its session, models, the state report."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

from app.logging_setup import LogHub, SecretRedactor, setup_logging
from app.paths import prepare, resolve_paths

REPO = Path(__file__).resolve().parents[2]


def _too_open(root: Path) -> list[str]:
    """Every path under ``root`` that anyone but its owner could read, write or enter."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink() and mode & 0o077:
                found.append(f"{path.relative_to(root)} {oct(mode)}")
    return found


def test_headless_run_under_umask_022_writes_nothing_others_can_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    script = tmp_path / "orders.json"
    script.write_text(json.dumps([{"symbol": "BTC/USD", "side": "buy", "qty": "0.01", "type": "market"}]))
    report = data / "state.json"
    child = (
        "import os, runpy, sys; os.umask(0o022); sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, str(REPO / "main.py"), "--headless", "--mode", "local",
         "--data-dir", str(data), "--quit-after", "6", "--state-report", str(report),
         "--script", str(script)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    profile = data / "profiles" / "default"
    written = {p.relative_to(profile).as_posix() for p in profile.rglob("*")}
    # the run really wrote what the check is about
    for expected in ("heron.db", "settings.json", "logs/heron.log", "exchange/venue.sqlite3", "models"):
        assert expected in written, sorted(written)
    assert report.exists()
    assert _too_open(data) == [], sorted(written)


def test_an_older_data_directory_is_tightened_at_start(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        paths = resolve_paths("default", tmp_path)
        (paths.profile_dir / "exchange").mkdir(parents=True, mode=0o755)
        (paths.profile_dir / "heron.db").write_text("x")
        (paths.profile_dir / "exchange" / "venue.db").write_text("x")
        os.chmod(paths.profile_dir / "heron.db", 0o644)
        prepare(paths)
    finally:
        os.umask(old)
    assert _too_open(tmp_path) == []


def test_rotated_logs_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    logger = logging.getLogger("test.rotation")
    logger.propagate = False
    handle = setup_logging(
        redactor=SecretRedactor(),
        hub=LogHub(),
        log_dir=tmp_path,
        logger=logger,
        console_level=None,
        max_bytes=2_000,
        backup_count=3,
    )
    try:
        for i in range(200):
            logger.info("order %d filled at 187.50 for the account", i)
    finally:
        handle.close()
        os.umask(old)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "heron.log.1" in names and "heron.log" in names
    assert _too_open(tmp_path) == []
