"""``uv run python -m tests.soak --minutes 60 --rate 5000 --out FILE``: the soak (see harness.py).

Prints the summary and the goals missed; exit status 0 only when every goal is met (RSS growth at
most 50 MB, no growth in loop lag, no unbounded task/thread/descriptor/order count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.soak.harness import run_soak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=5000.0, help="market-data messages/s from the exchange")
    p.add_argument("--symbols", type=int, default=60, help="symbols streamed and subscribed")
    p.add_argument("--out", type=Path, required=True, help="JSON file: summary, goals missed, samples")
    a = p.parse_args(argv)
    result = run_soak(a.minutes, a.rate, a.out, symbols=a.symbols)
    print(json.dumps(result["summary"], indent=2))
    print("goals missed:", result["missed"] or "none")
    return 0 if not result["missed"] else 1


if __name__ == "__main__":
    sys.exit(main())
