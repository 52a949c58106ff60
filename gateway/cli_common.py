"""What the `hotline` command modules share: exit codes, the JSON printer, the progress
bar, the --since type."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

# The table in docs/cli.md.
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # the database
EXIT_CANNOT_LISTEN = 4  # serve: a port another program holds
EXIT_FAILED = 5  # anything unexpected: one line here, the traceback in the log


def moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc


def progress_bar(description: str, total: int | None, unit: str) -> tqdm[Any]:
    """A progress bar on stderr while stderr is a terminal; nothing at all in a pipe, a
    file or a service's log (tqdm's disable=None). Cleared when done: what the command
    prints at the end stays alone on the screen."""
    from tqdm import tqdm  # here: `letters list` starts without it

    return tqdm(
        desc=description, total=total, unit=unit, disable=None, file=sys.stderr, leave=False
    )


def print_json(value: Any) -> None:
    """One JSON value (an array or an object) on stdout, in UTF-8 whatever the locale: a
    script reads the same bytes under LANG=C as under zh_CN.UTF-8."""
    text = json.dumps(value, ensure_ascii=False, indent=2) + "\n"
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    out.write(text.encode("utf-8"))
    out.flush()
