from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from app.secrets import (
    SERVICE_NAME,
    ApiKeys,
    InsecureKeyringError,
    KeyringUnavailableError,
    SecretStore,
    SecretStoreError,
)
from services.domain.enums import Mode


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring for tests (no D-Bus, nothing on disk)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


def test_memory_keyring_contract() -> None:
    kr = MemoryKeyring()
    kr.set_password("s", "u", "p")
    assert kr.get_password("s", "u") == "p"
    kr.delete_password("s", "u")
    assert kr.get_password("s", "u") is None
    with pytest.raises(PasswordDeleteError):
        kr.delete_password("s", "u")


def test_paper_and_live_keys_are_separate_entries() -> None:
    kr = MemoryKeyring()
    seen: list[str] = []
    store = SecretStore(kr, on_secret=seen.append)
    store.save("default", Mode.PAPER, ApiKeys("PKPAPER", "paper-secret-1"))
    store.save("default", Mode.LIVE, ApiKeys("AKLIVE", "live-secret-2"))
    assert store.load("default", Mode.PAPER) == ApiKeys("PKPAPER", "paper-secret-1")
    assert store.load("default", Mode.LIVE) == ApiKeys("AKLIVE", "live-secret-2")
    assert store.load("other", Mode.PAPER) is None
    assert set(kr.items) == {(SERVICE_NAME, "default:alpaca-paper"), (SERVICE_NAME, "default:alpaca-live")}
    assert json.loads(kr.items[(SERVICE_NAME, "default:alpaca-live")]) == {
        "key_id": "AKLIVE",
        "secret": "live-secret-2",
    }
    assert "paper-secret-1" in seen and "live-secret-2" in seen  # handed to the log redactor
    assert store.delete("default", Mode.PAPER) is True
    assert store.delete("default", Mode.PAPER) is False


def test_repr_never_shows_the_secret() -> None:
    assert "s3cr3t-value" not in repr(ApiKeys("KEY", "s3cr3t-value"))


def test_local_mode_has_nothing_to_store() -> None:
    with pytest.raises(SecretStoreError, match="local mode"):
        SecretStore(MemoryKeyring()).load("default", Mode.LOCAL)


def test_garbage_entry_is_a_clear_error() -> None:
    kr = MemoryKeyring()
    kr.set_password(SERVICE_NAME, "default:alpaca-paper", "not json")
    with pytest.raises(SecretStoreError, match="not a JSON object"):
        SecretStore(kr).load("default", Mode.PAPER)


def test_fail_backend_is_reported_as_unavailable() -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    with pytest.raises(KeyringUnavailableError, match=r"no OS keyring is available.*--mode local"):
        SecretStore(FailKeyring()).load("default", Mode.PAPER)


def _fake_alt_backend(name: str) -> Any:
    """A stand-in with the module path of keyrings.alt's file backends (not installed here)."""
    cls = type(name, (), {"priority": 0.5, "__module__": "keyrings.alt.file"})
    return cls()


@pytest.mark.parametrize("name", ["PlaintextKeyring", "EncryptedKeyring"])
def test_plaintext_and_encrypted_file_backends_are_refused(name: str) -> None:
    with pytest.raises(InsecureKeyringError, match="stores secrets in a file"):
        SecretStore(_fake_alt_backend(name)).save("default", Mode.PAPER, ApiKeys("K", "secret-x"))


def test_chainer_uses_the_secure_member_and_skips_file_backends() -> None:
    secure = MemoryKeyring()
    chain = type("ChainerBackend", (), {"backends": [_fake_alt_backend("PlaintextKeyring"), secure]})()
    SecretStore(chain).save("p", Mode.PAPER, ApiKeys("K", "secret-y"))
    assert (SERVICE_NAME, "p:alpaca-paper") in secure.items


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Secret Service (dbus-daemon + gnome-keyring, unlocked, temporary HOME)."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("needs the apt packages dbus and gnome-keyring")
    home = tmp_path_factory.mktemp("home")
    run = tmp_path_factory.mktemp("xdg")
    os.chmod(run, 0o700)
    env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(run))
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert bus.stdout is not None
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    gk = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert gk.stdin is not None
    gk.stdin.write(b"test-password")
    gk.stdin.close()
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")}
    os.environ.update({k: env[k] for k in saved})
    try:
        import secretstorage
        from keyring.backends import SecretService

        deadline = time.monotonic() + 10
        while True:
            try:
                with secretstorage.dbus_init() as conn:
                    if not secretstorage.get_default_collection(conn).is_locked():
                        break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield SecretService.Keyring()
    finally:
        gk.terminate()
        gk.wait(5)
        bus.terminate()
        bus.wait(5)
        bus.stdout.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.keyring_real
def test_real_secret_service_round_trip(secret_service: Any) -> None:
    store = SecretStore(secret_service)
    assert store.describe() == "keyring.backends.SecretService.Keyring"
    keys = ApiKeys("PKREAL", "real-secret-value")
    store.save("ci", Mode.PAPER, keys)
    assert SecretStore(secret_service).load("ci", Mode.PAPER) == keys
    assert store.delete("ci", Mode.PAPER) is True
    assert store.load("ci", Mode.PAPER) is None
