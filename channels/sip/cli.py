"""`hotline sip worker|kamailio-config` and `hotline prompts build`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.contract.config import Config


def add_parsers(commands: Any) -> None:
    sip = commands.add_parser("sip", help="the phone channel's worker processes")
    actions = sip.add_subparsers(dest="action", required=True)
    worker = actions.add_parser("worker", help="one SIP worker (serve starts these)")
    worker.add_argument("--index", type=int, default=0)
    kamailio = actions.add_parser(
        "kamailio-config", help="print the Kamailio config serve would use"
    )
    kamailio.add_argument(
        "--out", type=Path, metavar="DIR", help="write kamailio.cfg and dispatcher.list there"
    )
    prompts = commands.add_parser("prompts", help="the IVR's Mandarin prompt recordings")
    prompt_actions = prompts.add_subparsers(dest="action", required=True)
    build = prompt_actions.add_parser("build", help="speak ivr.prompts with espeak-ng")
    build.add_argument("--out", type=Path, help="default: sip.prompts_dir, else the shipped")


def kamailio_config(config: Config, args: argparse.Namespace) -> int:
    """`hotline sip kamailio-config` (`hotline sip worker` is the assembly's: gateway.cli)."""
    from channels.sip.kamailio import render
    from channels.sip.pool import worker_addresses

    settings = config.channels.sip
    if args.out is not None:
        # The config names the dispatcher list beside it, so Kamailio run from DIR reads
        # the list written with it rather than whatever run_dir holds.
        kamailio = settings.kamailio.model_copy(update={"run_dir": args.out})
        settings = settings.model_copy(update={"kamailio": kamailio})
    cfg, dispatchers = render(settings, worker_addresses(config), config.seats, config.database.url)
    if args.out is None:
        print(cfg)
        print("# dispatcher.list\n" + dispatchers)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kamailio.cfg").write_text(cfg)
    (args.out / "dispatcher.list").write_text(dispatchers)
    return 0


def prompts(config: Config, args: argparse.Namespace) -> int:
    from ivr.prompts import SHIPPED, prompts_command

    out = args.out or config.channels.sip.prompts_dir or SHIPPED
    return prompts_command(config.ivr, out)
