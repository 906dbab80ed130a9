"""The README's first run: its setup block works verbatim as root and as a user (package lists
updated first, ``sudo`` only when not root), running the terminal installs no dev tools, and the
README links to nothing outside the repository."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.support import REPO

README = REPO / "README.md"
DEV_TOOLS = ("pytest", "pytest-qt", "pytest-timeout", "hypothesis", "ruff", "mypy", "import-linter")


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _bash_blocks(section: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_setup(tmp_path: Path, uid: int) -> list[str]:
    """Run the README's setup block with the system's commands recorded instead of run: ``id``
    answers ``uid``, ``sudo`` records itself and runs the rest, apt-get and pipx only record."""
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    bin_dir.mkdir()
    home.mkdir()
    calls = tmp_path / "calls"
    _stub(bin_dir, "id", f'[ "$1" = "-u" ] && echo {uid}')
    _stub(bin_dir, "sudo", f'echo "sudo $*" >> {calls}; exec "$@"')
    _stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}')
    _stub(bin_dir, "pipx", f'echo "pipx $*" >> {calls}')
    block = _bash_blocks(_section("Quick start"))[0]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home)}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return calls.read_text().splitlines()


def test_setup_as_root_updates_the_package_lists_first_and_needs_no_sudo(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, 0)
    assert calls[0] == "apt-get update", calls
    assert calls[1].startswith("apt-get install -y --no-install-recommends python3 pipx "), calls
    assert calls[2:] == ["pipx install uv"]
    assert not any(c.startswith("sudo") for c in calls)


def test_setup_as_a_user_uses_sudo_for_the_system_packages_only(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, 1000)
    assert calls[:2] == ["sudo apt-get update", "apt-get update"], calls
    assert calls[2].startswith("sudo apt-get install -y"), calls
    assert calls[-1] == "pipx install uv"  # into the user's own ~/.local, not as root


def test_setup_installs_the_qt_libraries_ci_installs() -> None:
    """.ci/run's list (CI runs the window on Xvfb with it) and the README's list stay one list."""
    ci = (REPO / ".ci" / "run").read_text()
    listed = re.search(r"APT_PACKAGES=\((.*?)\)", ci, flags=re.S)
    assert listed is not None
    qt_libraries = {p for p in listed.group(1).split() if p.startswith("lib")}
    readme = set(_bash_blocks(_section("Quick start"))[0].replace("\\\n", " ").split())
    assert qt_libraries - readme == set()


def test_running_the_terminal_installs_no_dev_tools() -> None:
    """``uv run --no-dev main.py`` (the README's) resolves without the dev group; ``uv run pytest``
    (the default groups) with it."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    quick_start = _section("Quick start")
    assert "uv run --no-dev main.py" in _bash_blocks(quick_start)[1]
    assert "`uv run pytest`" in quick_start

    def packages(*flags: str) -> set[str]:
        proc = subprocess.run(
            [uv, "export", "--locked", "--no-hashes", "--no-emit-project", "--no-header", *flags],
            capture_output=True, text=True, timeout=120, cwd=REPO,
            env=dict(os.environ, UV_OFFLINE="1"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return {line.split("==")[0].strip().lower() for line in proc.stdout.splitlines() if "==" in line}

    runtime, default = packages("--no-dev"), packages()
    assert {"pyside6-essentials", "qasync", "alpaca-py"} <= runtime
    assert runtime.isdisjoint(DEV_TOOLS), sorted(runtime & set(DEV_TOOLS))
    assert set(DEV_TOOLS) <= default


def test_readme_links_stay_inside_the_repository() -> None:
    """Every link and image is a web address or a file of this repository (no absolute paths, no
    way out with ``..``, nothing missing)."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    for target in targets:
        if re.match(r"https?://", target):
            continue
        path = target.split("#", 1)[0]
        assert path and not path.startswith(("/", "~", "file:")), target
        resolved = (REPO / path).resolve()
        assert resolved.is_relative_to(REPO) and resolved.exists(), target
