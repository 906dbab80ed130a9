"""Paper and live modes without usable API keys (no OS keyring, no keys stored, the other
environment's keys): what the person is told instead of a half-built window, and the one line a
headless run exits with. No Qt here; the window's panel is ``app/qt/keys_needed.py``."""

from __future__ import annotations

from dataclasses import dataclass

from app.secrets import SERVICE_NAME, username_for
from services.domain.enums import Mode


@dataclass(frozen=True, slots=True)
class KeysNeeded:
    """Why this paper or live session has no keys, and whether they can be stored from here."""

    mode: Mode
    profile: str
    #: what is wrong, one sentence (the keyring's own words when it is unavailable)
    reason: str
    #: a secure OS keyring answered: keys can be stored from File → Settings → Alpaca keys
    keyring_usable: bool

    @property
    def entry(self) -> str:
        return f"{SERVICE_NAME} / {username_for(self.profile, self.mode)}"

    @property
    def title(self) -> str:
        what = "Live trading" if self.mode is Mode.LIVE else "Paper trading"
        if not self.keyring_usable:
            return f"{what} needs the OS keyring, and none is available"
        return f"{what} needs your Alpaca API keys"

    def steps(self) -> list[str]:
        """What to do, in order, each a sentence."""
        environment = "live" if self.mode is Mode.LIVE else "paper"
        store = (
            f"{environment} key id and secret (Alpaca dashboard → API keys) in File → Settings… → Alpaca "
            "keys, check them with Test connection and save"
        )
        if self.keyring_usable:
            first = [f"Store your {store}, then start Heron again."]
        else:
            first = [
                "Install and unlock an OS keyring that speaks Secret Service (gnome-keyring or KWallet), "
                "for example on Debian: apt-get install gnome-keyring, then log in to a desktop session.",
                f"Start Heron again and store your {store}.",
            ]
        return [
            *first,
            "Or trade on Heron's own paper exchange, which needs no keys: uv run main.py --mode local",
        ]

    def line(self) -> str:
        """One line for the log and a headless run's exit."""
        if not self.keyring_usable:
            return f"{self.mode.value} needs its API keys from the OS keyring: {self.reason}"
        return (
            f"{self.mode.value}: {self.reason}; store the keys in the OS keyring (entry {self.entry}, or "
            "File → Settings → Alpaca keys in the window), or use --mode local"
        )
