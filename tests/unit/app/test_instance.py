from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.instance import LOCK_FILE, ProfileInUse, acquire


def test_a_second_holder_is_refused_naming_the_profile_and_the_first_pid(tmp_path: Path) -> None:
    profile_dir = tmp_path / "profiles" / "alpha"
    code = (
        "import sys, time; from pathlib import Path; from app.instance import acquire; "
        f"acquire(Path({str(profile_dir)!r}), 'alpha'); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        refused = rf"profile 'alpha' is already open .*pid {holder.pid}\)"
        with pytest.raises(ProfileInUse, match=refused) as err:
            acquire(profile_dir, "alpha")
        assert err.value.pid == holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    lock = acquire(profile_dir, "alpha")  # the lock went with its process: no stale lock file
    try:
        assert (profile_dir / LOCK_FILE).read_text().strip() == str(os.getpid())
        assert oct((profile_dir / LOCK_FILE).stat().st_mode & 0o777) == "0o600"
    finally:
        lock.release()
