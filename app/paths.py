"""Where Heron keeps its files: one data root, one sub-folder per profile.

Layout of a profile folder::

    <root>/profiles/<profile>/settings.json     typed settings (no secrets, ever)
                             layout.ini         window geometry and dock state (QSettings)
                             heron.db           default SQLite database
                             logs/heron.log     rotating log (secrets redacted)
                             exchange/          the local exchange's state and session.json
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "heron"


#: Folders Heron creates hold trading records: owner only, whatever the umask.
DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirError(Exception):
    """The data directory cannot be created or written; the message says which and why."""


@dataclass(frozen=True)
class ProfilePaths:
    root: Path
    profile: str

    @property
    def profile_dir(self) -> Path:
        return self.root / "profiles" / self.profile

    @property
    def settings_file(self) -> Path:
        return self.profile_dir / "settings.json"

    @property
    def layout_file(self) -> Path:
        return self.profile_dir / "layout.ini"

    @property
    def log_dir(self) -> Path:
        return self.profile_dir / "logs"

    @property
    def exchange_dir(self) -> Path:
        return self.profile_dir / "exchange"

    @property
    def default_db_url(self) -> str:
        return f"sqlite:///{self.profile_dir / 'heron.db'}"


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def resolve_paths(profile: str, data_dir: Path | None = None) -> ProfilePaths:
    """The paths for ``profile`` under ``data_dir`` (or the per-user default). Touches nothing."""
    root = (data_dir.expanduser() if data_dir is not None else default_root()).absolute()
    return ProfilePaths(root=root, profile=profile)


def restrict_tree(folder: Path) -> None:
    """Make every folder under ``folder`` 0700 and every file 0600 where it is wider (files an older
    Heron, a library or a tool created under a wider umask). Symbolic links are left alone."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name, wanted in [(d, DIR_MODE) for d in dirnames] + [(f, FILE_MODE) for f in filenames]:
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
                if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
                    os.chmod(path, stat.S_IMODE(info.st_mode) & wanted)
            except OSError:
                continue  # vanished meanwhile, or not ours: the write probe below still decides


def prepare(paths: ProfilePaths) -> ProfilePaths:
    """Create the profile folders (owner only, 0700) and prove they are writable; raises
    :class:`DataDirError`."""
    for folder in (paths.root / "profiles", paths.profile_dir, paths.log_dir, paths.exchange_dir):
        try:
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(folder, DIR_MODE)  # also a folder an older Heron made under a wider umask
        except OSError as exc:
            raise DataDirError(
                f"cannot create the data directory {folder}: {exc.strerror or exc}. "
                "Choose another one with --data-dir"
            ) from exc
    restrict_tree(paths.profile_dir)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=paths.profile_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(
            f"the data directory {paths.profile_dir} is not writable: {exc.strerror or exc}. "
            "Choose another one with --data-dir"
        ) from exc
    return paths
