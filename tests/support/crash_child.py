"""Accept contacts in a loop, printing each acknowledged id; the crash test kills it with -9.

usage: python -m tests.support.crash_child DATABASE_URL ROOT COUNT [START]
"""

from __future__ import annotations

import sys
from pathlib import Path

from store.db import make_engine
from tests.conftest import PII, build_intake, make_contact


def main() -> None:
    url, root, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    start = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    parts = build_intake(make_engine(url, pii=PII), root)
    print("ready", flush=True)
    for n in range(start, count):
        accepted = parts.intake.accept_sync(make_contact(n))
        # Acknowledge only after accept returned, as a channel would.
        print(f"ack {n} {accepted.tracking_number}", flush=True)


if __name__ == "__main__":
    main()
