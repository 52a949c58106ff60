"""`hotline pii new-key` and `hotline pii rotate` (docs/privacy.md)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli_common import progress_bar
from gateway.contract.config import Config
from store.pii import Keyring, keyring_of


def add_parsers(commands: Any) -> None:
    pii = commands.add_parser("pii", help="the keys citizens' details are encrypted under")
    actions = pii.add_subparsers(dest="action", required=True)
    actions.add_parser("new-key", help="print a fresh id:base64key for HOTLINE_PII_KEYS")
    rotate = actions.add_parser(
        "rotate",
        help="re-encrypt every PII value and recompute every lookup hash under the current "
        "(first) key, and note the phones older letters give (after an upgrade)",
    )
    rotate.add_argument("--batch", type=int, default=500, help="rows per transaction")


def pii(config: Config, args: argparse.Namespace) -> int:
    if args.action == "new-key":
        print(Keyring.new_key())
        return 0
    from gateway.engine.database import engine_for
    from store.pii_rotation import rotate, rows_to_read

    engine = engine_for(config)
    try:
        with progress_bar("重新加密", rows_to_read(engine), "行") as bar:
            changed = rotate(engine, max(1, args.batch), lambda _table, rows: bar.update(rows))
    finally:
        engine.dispose()
    current = keyring_of(engine.dialect).current
    noted = changed.pop("letter_phones")
    counts = ", ".join(f"{table} {count}" for table, count in changed.items())
    print(f"re-encrypted under key {current}: {counts} row(s)")
    if noted:
        print(f"phones given in the words of {noted} letter(s) noted under key {current}")
    return 0
