"""`hotline calendar import FILE`: load a year's State Council holiday schedule that
chinese-calendar does not know yet (docs/cli.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli_common import EXIT_USAGE
from gateway.contract.config import Config
from gateway.core.schedules import ScheduleError, dump_schedule, parse_schedule


def add_parsers(commands: Any) -> None:
    calendar = commands.add_parser("calendar", help="holiday schedules for working days")
    actions = calendar.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "import", help="check a year's holidays and make-up working days and load them"
    )
    load.add_argument("file", help="YAML (holidays:, workdays:) or CSV (date,kind)")


def calendar_command(config: Config, args: argparse.Namespace) -> int:
    source = Path(args.file)
    try:
        schedule = parse_schedule(source.read_text(encoding="utf-8"), source.suffix)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"hotline: {source}: cannot read: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ScheduleError as exc:
        print(f"hotline: {source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    directory = config.deadlines.calendar_dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{schedule.year}.yaml"
    partial = target.with_suffix(".yaml.tmp")
    partial.write_text(dump_schedule(schedule), encoding="utf-8")
    partial.replace(target)  # the gateway never reads half a file
    print(
        f"{schedule.year}: {len(schedule.holidays)} holiday(s), "
        f"{len(schedule.workdays)} make-up working day(s) -> {target} "
        "(a running gateway reads it when restarted)"
    )
    return 0
