"""What the `hotline` command modules share: exit codes, the JSON printer, the --since type."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

EXIT_USAGE = 2
EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 3


def moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
