"""A stand-in for ``python -m services.exchange`` that honours only its launch contract: the same
arguments, keys from --keys-file, one ``listening on http://HOST:PORT`` line, ``GET /v2/clock``
with the keys, the identity proof (services/exchange/identity.py), clean exit on SIGTERM.
``FAKE_EXCHANGE_BEHAVIOUR=exit|silent|killed-once`` makes it misbehave (``killed-once``: the first
start in a data directory is killed by SIGKILL before it reports its address). Used to test the launcher in
isolation; the real program has its own launcher test."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.exchange.identity import IDENTITY_PATH, SERVICE, identity_proof


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--keys-file", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--always-open", action="store_true")
    parser.add_argument("--exit-with-parent", type=int, default=None)
    args = parser.parse_args()
    behaviour = os.environ.get("FAKE_EXCHANGE_BEHAVIOUR", "")
    if behaviour == "exit":
        print("fatal: cannot open the venue database", flush=True)
        return 3
    if behaviour == "silent":
        time.sleep(60)
        return 0
    if behaviour == "killed-once":
        marker = os.path.join(args.data_dir, "killed-once")
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    with open(args.keys_file) as fh:
        keys = json.load(fh)
    with open(os.path.join(args.data_dir, "argv.json"), "w") as fh:
        json.dump(sys.argv[1:], fh)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith(IDENTITY_PATH + "?challenge="):
                challenge = self.path.partition("=")[2]
                proof = identity_proof(
                    keys["secret"], challenge, args.data_dir, server.server_address[1], os.getpid()
                )
                body = json.dumps({"service": SERVICE, "pid": os.getpid(), "proof": proof}).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
                return
            ok = (
                self.path == "/v2/clock"
                and self.headers.get("APCA-API-KEY-ID") == keys["key_id"]
                and self.headers.get("APCA-API-SECRET-KEY") == keys["secret"]
            )
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b'{"is_open": true}' if ok else b"{}")

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
