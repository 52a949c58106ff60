"""The `hotline` command: serve, migrate, check config, look at letters."""

from __future__ import annotations

import argparse
import functools
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.exc import SQLAlchemyError

from gateway import letters_cli
from gateway.cli_common import (
    EXIT_CANNOT_LISTEN,
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    print_json,
    progress_bar,
)
from gateway.contract.config import Config, load_config
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import configure
from gateway.contract.redaction import mask
from store.db import is_outage, make_sessionmaker
from store.pii import PiiError

Handler = Callable[[Config, argparse.Namespace], int]
log = logging.getLogger(__name__)


def run() -> None:
    """The `hotline` program. `hotline report | head` ends quietly, as command-line tools
    do; set here, not in main(), which tests call inside their own process."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        if args.command == "config":
            config = load_config(Path(args.file) if args.file else _config_path(args))
            print(f"{args.file or _config_path(args) or 'embedded defaults'}: ok")
            return 0
        config = load_config(_config_path(args))
    except ConfigurationError as exc:
        print(f"hotline: configuration error\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    configure(config.logging.level, config.logging.format)
    # `letters` is not looked up in _handlers(), which imports every command's module.
    handler = (
        letters_cli.letters_command if args.command == "letters" else _handlers()[args.command]
    )
    try:
        return handler(config, args)
    except ConfigurationError as exc:
        print(f"hotline: configuration error\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except PiiError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            return _failed(exc)
        print(
            f"hotline: the database cannot be used: {exc.__cause__ or exc}\n"
            "(is it running? is its schema current? `hotline db upgrade` migrates it)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    except Exception as exc:  # the command line's boundary
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """An error no command expected: one line, masked like the log; the traceback goes to
    the log at DEBUG (the config's logging.level: DEBUG shows it)."""
    log.debug("cli.failed", exc_info=exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    print(
        f"hotline: unexpected error: {type(exc).__name__}: {mask(first)} "
        "(logging.level: DEBUG logs the traceback)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _handlers() -> dict[str, Handler]:
    """The command each subcommand runs (a test checks every subcommand has one)."""
    from channels.sip import cli as sip_cli
    from gateway import (
        calendar_cli,
        jobs_cli,
        missed_cli,
        pii_cli,
        routing_cli,
        seats_cli,
        stt_cli,
        webhooks_cli,
    )
    from gateway.frontends.console import cli as console_cli

    return {
        "serve": _serve,
        "db": _db_upgrade,
        "letters": letters_cli.letters_command,
        "sweep": _sweep,
        "report": _report,
        "transcribe": stt_cli.transcribe,
        "stt": stt_cli.stt,
        "tokens": _tokens,
        "webhooks": webhooks_cli.webhooks_command,
        "missed": missed_cli.missed,
        "sip": _sip,
        "prompts": sip_cli.prompts,
        "console": lambda config, args: console_cli.console(config, args, print_json),
        "pii": pii_cli.pii,
        "jobs": jobs_cli.jobs_command,
        "calendar": calendar_cli.calendar_command,
        "routing": routing_cli.routing_command,
        "seats": seats_cli.seats_command,
    }


class _NotReading(Exception):
    """The arguments are not a `letters list` or `letters show` the reading parser takes."""


class _ReadingParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _NotReading(message)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """`hotline letters list|show` are parsed without building the full parser, which
    imports every command's module (the routing core for `letters act`, the console, the
    job queues...). Whatever the reading parser does not take (another command, --help, a
    mistake) goes to the full parser: the same namespace, or its usual message."""
    reading = _ReadingParser(prog="hotline", add_help=False)
    _add_config_option(reading)
    commands = reading.add_subparsers(dest="command", required=True)
    letters_cli.add_parsers(commands, reading_only=True)
    try:
        return reading.parse_args(argv)
    except _NotReading:
        return _parser().parse_args(argv)


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="config file (default: $HOTLINE_CONFIG, else ./config.yaml if present, "
        "else the embedded defaults)",
    )


def _parser() -> argparse.ArgumentParser:
    from channels.sip import cli as sip_cli
    from gateway import (
        calendar_cli,
        jobs_cli,
        missed_cli,
        pii_cli,
        routing_cli,
        seats_cli,
        stt_cli,
        webhooks_cli,
    )
    from gateway.frontends.console import cli as console_cli

    parser = argparse.ArgumentParser(prog="hotline", description="12345 hotline gateway")
    _add_config_option(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gateway (applies migrations first)")
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    check = commands.add_parser("config", help="validate a config file")
    check.add_argument("action", choices=["check"])
    check.add_argument("file", nargs="?")
    letters_cli.add_parsers(commands)
    commands.add_parser("sweep", help="warn, urge and supervise overdue letters once, now")
    report = commands.add_parser("report", help="the bulletin and assessment for a period")
    report.add_argument(
        "--period",
        required=True,
        help="2026-11-1旬 (or 上旬/中旬/下旬, t1-t3), 2026-W48, 2026-11, or 2026-11-01..2026-11-30",
    )
    report.add_argument("--csv", type=Path, help="also write the tables as CSV")
    report.add_argument("--xlsx", type=Path, help="also write the tables as an Excel workbook")
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    stt_cli.add_parsers(commands)
    sip_cli.add_parsers(commands)
    console_cli.add_parsers(commands)
    pii_cli.add_parsers(commands)
    jobs_cli.add_parsers(commands)
    tokens = commands.add_parser("tokens", help="API bearer tokens for integrators")
    token_actions = tokens.add_subparsers(dest="action", required=True)
    create = token_actions.add_parser("create", help="make a token (shown once)")
    create.add_argument("name")
    create.add_argument(
        "--scope", action="append", default=[], help="read, write, act, pii (repeat); default read"
    )
    create.add_argument("--department", help="the token sees only this department's letters")
    revoke = token_actions.add_parser("revoke", help="revoke every token of this name")
    revoke.add_argument("name")
    listing = token_actions.add_parser(
        "list", help="names, scopes and departments (never the tokens)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON array")
    webhooks_cli.add_parsers(commands)
    missed_cli.add_parsers(commands)
    calendar_cli.add_parsers(commands)
    routing_cli.add_parsers(commands)
    seats_cli.add_parsers(commands)
    return parser


def _config_path(args: argparse.Namespace) -> Path | None:
    named = args.config or os.environ.get("HOTLINE_CONFIG")
    if named:
        return Path(named)
    default = Path("config.yaml")
    return default if default.exists() else None


def _serve(config: Config, args: argparse.Namespace) -> int:
    # The event loop answers every SMTP/HTTP command while the writer and parsers hold the
    # GIL in threads; at Python's default 5 ms switch interval each reply waited up to 5 ms
    # (measured: 344 -> 467 mails/s in benchmarks/smtp.py).
    sys.setswitchinterval(0.0005)
    import asyncio

    from gateway.engine.database import engine_for
    from gateway.engine.listening import ListenError
    from gateway.server import Gateway
    from store.migrate import upgrade
    from store.pii_rotation import check_keys

    engine = engine_for(config)
    upgrade(engine)
    check_keys(engine)
    engine.dispose()

    async def run() -> None:
        gateway = Gateway(config, _config_path(args))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await gateway.run(stop)

    try:
        asyncio.run(run())
    except ListenError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return 0


def _sip(config: Config, args: argparse.Namespace) -> int:
    if args.action == "worker":
        from gateway.sip_worker import run_worker

        return run_worker(config, args.index)
    from channels.sip.cli import kamailio_config

    return kamailio_config(config, args)


def _db_upgrade(config: Config, _: argparse.Namespace) -> int:
    from gateway.engine.database import engine_for
    from store.migrate import pending, upgrade
    from store.pii_rotation import rehash_phones, rows_to_rehash

    engine = engine_for(config)
    try:
        with progress_bar("数据库迁移", pending(engine), "步") as bar:
            upgrade(engine, progress=lambda revision: bar.update())
        if left := rows_to_rehash(engine):
            # Phone hashes stored before 0018, redone in batches (docs/privacy.md); served
            # meanwhile, and `hotline serve` alone leaves them to this or `pii rotate`.
            with progress_bar("重算电话查找值", left, "行") as bar:
                redone = rehash_phones(engine, progress=lambda _table, rows: bar.update(rows))
            print(f"phone lookup hashes in E.164 form: {redone} row(s) redone")
    finally:
        engine.dispose()
    print("database schema is up to date")
    return 0


def _sweep(config: Config, _: argparse.Namespace) -> int:
    from gateway.engine.database import engine_for
    from gateway.engine.dispatch import workflow_for

    sessions = make_sessionmaker(engine_for(config))
    workflow = workflow_for(config, lambda: datetime.now(UTC))
    with sessions.begin() as session:
        workflow.sync_departments(session)
    issued = workflow.sweep(sessions, datetime.now(UTC))
    print(" ".join(f"{kind}={count}" for kind, count in issued.items()))
    return 0


def _report(config: Config, args: argparse.Namespace) -> int:
    from gateway.core import reports, stats
    from gateway.core.deadlines import TenDays, parse_period
    from gateway.engine.database import engine_for

    try:
        start, end = parse_period(args.period, config.zone)
    except ValueError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        name = str(TenDays.parse(args.period))
    except ValueError:
        name = args.period
    sessions = make_sessionmaker(engine_for(config))
    with sessions() as session, progress_bar("生成通报", len(stats.BULLETIN_STEPS), "步") as bar:
        bulletin = stats.build_bulletin(
            session,
            f"{name} 12345市民热线通报",
            start,
            end,
            config.zone,
            progress=lambda step: bar.update(),
        )
    if args.csv:
        reports.write_csv(bulletin, args.csv)
    if args.xlsx:
        reports.write_xlsx(bulletin, args.xlsx)
    if args.json:
        print_json(reports.bulletin_json(bulletin))
    else:
        print(reports.render_text(bulletin))
    return 0


def _tokens(config: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from gateway.engine.database import engine_for
    from gateway.frontends.api import auth
    from store.letters import record_event
    from store.models import ApiToken

    sessions = make_sessionmaker(engine_for(config))
    now = datetime.now(UTC)
    # In the audit log as the console's own token actions are, by the system user.
    audit = functools.partial(record_event, at=now, actor=f"cli:{getpass.getuser()}")
    with sessions.begin() as session:
        if args.action == "create":
            scopes = args.scope or ["read"]
            try:
                token = auth.create(session, args.name, scopes, args.department, now)
            except ValueError as exc:
                print(f"hotline: {exc}", file=sys.stderr)
                return EXIT_USAGE
            audit(
                session,
                kind="console.token_created",
                name=args.name,
                scopes=sorted(set(scopes)),
                department=args.department,
            )
            print(token)
            print("(shown once: only its hash is kept)", file=sys.stderr)
            return 0
        if args.action == "revoke":
            revoked = auth.revoke(session, args.name, now)
            if revoked:
                audit(session, kind="console.token_revoked", name=args.name)
            print(f"revoked {revoked} token(s) named {args.name}")
            return 0
        rows = [_token(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        scopes, department = ",".join(row["scopes"]), row["department"] or "-"
        print(f"{row['name']}  {scopes}  {department}  {row['state']}")
    return 0


def _token(row: Any) -> dict[str, Any]:
    """An ApiToken as `tokens list --json` shows it: never the token, nor its hash."""
    from gateway.core.views import iso_utc

    return {
        "name": row.name,
        "scopes": sorted(row.scopes),
        "department": row.department,
        "state": "revoked" if row.revoked_at else "active",
        "created_at": iso_utc(row.created_at),
        "revoked_at": iso_utc(row.revoked_at) if row.revoked_at else None,
    }


if __name__ == "__main__":
    run()
