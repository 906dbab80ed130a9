"""Proof that an exchange is the one a terminal started, for the data directory it expects.

A terminal that finds ``session.json`` from an earlier run must not send the session keys to
whatever now listens on the recorded port. It first sends a random challenge to the
unauthenticated ``GET /_heron/identity?challenge=HEX``; the exchange answers with an HMAC-SHA256,
keyed by the session secret, over the challenge, its resolved data directory, the port that took
the request and its own pid. Only a process that holds the secret can answer; the secret itself
never crosses the wire, and an answer relayed from another port, directory or process does not fit.

Standard library only: the terminal imports :func:`identity_proof` before anything heavy is loaded.
The exchange answers the challenge in ``http/identity.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

IDENTITY_PATH = "/_heron/identity"
SERVICE = "heron-exchange"
_DOMAIN = "heron-exchange-identity/1"
_CHALLENGE_RE = re.compile(r"^[0-9a-f]{32,128}$")


def identity_proof(secret: str, challenge: str, data_dir: Path | str, port: int, pid: int) -> str:
    """The hex HMAC an exchange holding ``secret`` answers to ``challenge``."""
    message = "\n".join((_DOMAIN, challenge, str(Path(data_dir).resolve()), str(port), str(pid)))
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE_RE.match(challenge))
