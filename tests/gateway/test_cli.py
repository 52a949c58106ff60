"""`hotline letters ...` reads what intake stored; --json is the stable shape of docs/cli.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gateway.cli_common import EXIT_FAILED
from store.models import Event
from tests.conftest import Parts, make_contact

ROOT = Path(__file__).resolve().parents[2]
# Modules reading letters must not load (issue 16: `letters list --json` starts in < 0.3 s).
HEAVY = {
    "jieba": "the routing core's word segmentation",
    "gateway.core.workflow": "the routing core",
    "gateway.core.actions": "letters act",
    "holidays": "the working-day calendar",
    "fastapi": "the HTTP side",
    "starlette": "the HTTP side",
    "gateway.frontends.console": "the console",
    "gateway.jobs_cli": "another command",
    "ivr.stt": "speech-to-text",
    "channels": "the channels (the SIP command's module)",
}
SUMMARY_KEYS = {
    "tracking_number",
    "channel",
    "source",
    "received_at",
    "status",
    "awaiting_text",
    "category",
    "subject",
    "attachments",
}
DETAIL_KEYS = SUMMARY_KEYS | {
    "text",
    "transcript",
    "text_source",
    "anonymous",
    "confidential",
    "assignments",
    "events",
}


def hotline(
    database_url: str, *args: str, python: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python, "-m", "gateway.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HOTLINE_DATABASE_URL": database_url, "HOTLINE_CONFIG": ""},
        timeout=60,
    )


def configured(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`hotline --config CONFIG ARGS`, without a database of its own."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def stored(parts: Parts) -> list[str]:
    numbers = []
    for n in (1, 2):
        accepted = parts.intake.accept_sync(make_contact(n))
        assert accepted.tracking_number
        numbers.append(accepted.tracking_number)
    return numbers


def test_letters_list_json_has_the_documented_shape(database_url: str, stored: list[str]) -> None:
    done = hotline(database_url, "letters", "list", "--json", "--channel", "sms")

    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["tracking_number"] for r in rows] == stored[::-1]  # newest first
    assert all(set(r) == SUMMARY_KEYS for r in rows)
    assert rows[0]["received_at"] == "2026-11-26T06:30:00Z"
    assert rows[0]["attachments"] == 1
    assert rows[0]["awaiting_text"] is None  # typed: nothing to wait for


def test_letters_list_filters_by_channel_and_since(database_url: str, stored: list[str]) -> None:
    by_channel = hotline(database_url, "letters", "list", "--json", "--channel", "email")
    later = hotline(database_url, "letters", "list", "--json", "--since", "2026-11-27")

    assert json.loads(by_channel.stdout) == []
    assert json.loads(later.stdout) == []


@pytest.mark.parametrize("show", [False, True], ids=["list", "show"])
def test_reading_letters_loads_neither_the_routing_core_nor_the_http_side_nor_the_console(
    database_url: str, stored: list[str], show: bool
) -> None:
    args = ["show", stored[0]] if show else ["list"]
    done = hotline(database_url, "letters", *args, "--json", python=["-X", "importtime"])

    assert done.returncode == 0, done.stderr
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "store.models" in imported  # the list is read from -X importtime
    loaded = {
        module: why
        for module, why in HEAVY.items()
        if any(name == module or name.startswith(f"{module}.") for name in imported)
    }
    assert loaded == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["letters", "list", "--json"],
        ["--config", "x.yaml", "letters", "list", "--channel", "sms", "--since", "2026-11-27"],
        ["letters", "list", "--status", "received", "--lim", "5"],
        ["letters", "show", "202611260000012", "--reveal-pii", "回访核实"],
        ["letters", "act", "202611260000012", "sign", "--as", "department:li@housing"],
        ["jobs", "list", "--json"],
    ],
    ids=["list", "list-filtered", "list-abbreviated", "show", "act", "other-command"],
)
def test_the_reading_parser_reads_as_the_full_parser_does(argv: list[str]) -> None:
    from gateway.cli import _arguments, _parser

    assert _arguments(argv) == _parser().parse_args(argv)


def test_letters_show_json_has_text_files_and_history_but_no_citizen(
    database_url: str, stored: list[str]
) -> None:
    done = hotline(database_url, "letters", "show", stored[0], "--json")

    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert set(view) == DETAIL_KEYS
    assert view["text"].startswith("翠屏区人民路1号")
    assert view["attachments"][0]["filename"] == "照片.jpg"
    assert [e["kind"] for e in view["events"]] == ["received"]
    assert "13800138000" not in done.stdout


def test_revealing_the_citizen_needs_a_reason_and_is_audited(
    database_url: str, stored: list[str], engine: Engine
) -> None:
    done = hotline(database_url, "letters", "show", stored[0], "--json", "--reveal-pii", "回访核实")

    assert json.loads(done.stdout)["citizen"]["phone"] == "+8613800138000"
    with engine.connect() as conn:
        audit = conn.execute(select(Event).where(Event.kind == "pii_read")).one()
    assert audit.detail == {"reason": "回访核实"}
    assert audit.actor.startswith("cli:")


@pytest.mark.parametrize(
    ("number", "code", "message"),
    [
        ("20261126000001", 2, "not a valid tracking number"),
        ("202611260000994", 2, "not a valid tracking number"),
        ("202611260000995", 1, "no letter 202611260000995"),
    ],
    ids=["too-short", "bad-check", "unknown"],
)
def test_letters_show_explains_a_wrong_number(
    database_url: str, number: str, code: int, message: str
) -> None:
    done = hotline(database_url, "letters", "show", number)
    assert done.returncode == code
    assert message in done.stderr


def test_an_unreachable_database_is_a_clear_error_not_a_traceback() -> None:
    done = hotline("postgresql+psycopg://nobody@127.0.0.1:1/none", "letters", "list")
    assert done.returncode == 3
    assert "database cannot be used" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_letter_is_assigned_signed_and_answered_from_the_command_line(
    database_url: str, stored: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "routing:\n  departments:\n    - {code: city-admin, name: 市城市管理局}\n", "utf-8"
    )
    number = stored[0]

    def act(*args: str) -> subprocess.CompletedProcess[str]:
        return hotline(database_url, "--config", str(config), "letters", "act", number, *args)

    assert act("assign", "--as", "operator:zhang", "--department", "city-admin").returncode == 0
    refused = act("reply", "--as", "department:li@city-admin", "--text", "已修好")
    assert refused.returncode == 2
    assert "cannot reply_final a letter that is assigned" in refused.stderr
    assert act("sign", "--as", "department:li@city-admin").stdout.strip() == f"{number}: signed"
    done = act("reply", "--as", "department:li@city-admin", "--text", "已修好", "--public")
    assert done.stdout.strip() == f"{number}: replied"

    view = json.loads(hotline(database_url, "letters", "show", number, "--json").stdout)
    assert [e["kind"] for e in view["events"]] == ["received", "assigned", "signed", "replied"]
    assert view["assignments"] == [
        {
            "department": "city-admin",
            "department_name": "市城市管理局",
            "lead": True,
            "reply_type": "time_limited",
            "due_at": view["assignments"][0]["due_at"],
            "status": "replied",
        }
    ]
    assert view["assignments"][0]["due_at"].endswith("Z")
    shown = hotline(database_url, "--config", str(config), "letters", "show", number).stdout
    assert "交办: 市城市管理局 (city-admin) 牵头" in shown


def test_report_prints_the_ten_day_bulletin_and_writes_csv_and_xlsx(
    database_url: str, stored: list[str], tmp_path: Path
) -> None:
    csv_file, xlsx_file = tmp_path / "旬报.csv", tmp_path / "旬报.xlsx"
    done = hotline(
        database_url,
        "report",
        "--period",
        "2026-11-下旬",
        "--json",
        "--csv",
        str(csv_file),
        "--xlsx",
        str(xlsx_file),
    )

    assert done.returncode == 0, done.stderr
    bulletin = json.loads(done.stdout)
    assert bulletin["title"] == "2026年11月下旬 12345市民热线通报"
    assert bulletin["volume"]["total"] == 2 and bulletin["volume"]["by_channel"]["sms"] == 2
    assert csv_file.read_bytes().startswith(b"\xef\xbb\xbf") and xlsx_file.stat().st_size > 0
    text = hotline(database_url, "report", "--period", "2026-11-3旬")
    assert "来信总量" in text.stdout


def test_report_explains_a_period_it_cannot_read(database_url: str) -> None:
    done = hotline(database_url, "report", "--period", "last week")
    assert done.returncode == 2
    assert "accepted forms" in done.stderr


def test_a_token_made_on_the_command_line_is_listed_and_can_be_revoked(
    database_url: str, engine: Engine
) -> None:
    made = hotline(
        database_url,
        "tokens",
        "create",
        "oa",
        "--scope",
        "read",
        "--scope",
        "act",
        "--department",
        "city-admin",
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("hk_") and "shown once" in made.stderr
    listed = hotline(database_url, "tokens", "list").stdout
    assert "oa  act,read  city-admin  active" in listed
    assert made.stdout.strip() not in listed  # only its hash is kept
    assert hotline(database_url, "tokens", "revoke", "oa").stdout.startswith("revoked 1")
    assert "revoked" in hotline(database_url, "tokens", "list").stdout
    bad = hotline(database_url, "tokens", "create", "x", "--scope", "everything")
    assert bad.returncode == 2 and "unknown scopes" in bad.stderr
    assert hotline(database_url, "tokens", "revoke", "oa").stdout.startswith("revoked 0")
    with engine.connect() as connection:  # in the audit log, as the console's actions are
        audited = connection.execute(select(Event).order_by(Event.id)).all()
    assert [(e.kind, e.detail) for e in audited] == [
        (
            "console.token_created",
            {"name": "oa", "scopes": ["act", "read"], "department": "city-admin"},
        ),
        ("console.token_revoked", {"name": "oa"}),
    ]
    assert all(e.actor.startswith("cli:") for e in audited)


def test_webhook_replay_and_enable_answer_from_the_command_line(database_url: str) -> None:
    assert hotline(database_url, "webhooks", "replay").stdout.startswith("queued 0")
    unknown = hotline(database_url, "webhooks", "enable", "nowhere")
    assert unknown.returncode == 1 and "nowhere" in unknown.stderr


def test_every_command_the_parser_knows_has_a_handler() -> None:
    from gateway.cli import _handlers, _parser

    commands = next(a for a in _parser()._actions if a.dest == "command")
    # "config" is answered before the config is loaded.
    assert set(commands.choices) - {"config"} == set(_handlers())  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_an_unexpected_error_is_one_line_and_its_own_exit_code_the_traceback_logged(
    tmp_path: Path, level: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"logging:\n  level: {level}\n", encoding="utf-8")
    (tmp_path / "file").write_text("")
    done = configured(
        config, "sip", "kamailio-config", "--out", str(tmp_path / "file" / "kamailio")
    )

    assert done.returncode == EXIT_FAILED
    said = [line for line in done.stderr.splitlines() if line.startswith("hotline:")]
    assert said == [
        "hotline: unexpected error: NotADirectoryError: [Errno 20] Not a directory: "
        f"'{tmp_path / 'file' / 'kamailio'}' (logging.level: DEBUG logs the traceback)"
    ]
    assert ("Traceback" in done.stderr) is (level == "DEBUG")
    if level == "INFO":
        assert done.stderr.splitlines() == said


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["transcribe", "{tmp}/missing.wav"], 1, "No such file or directory"),
        (["transcribe", "{tmp}/config.yaml"], 2, "config.yaml: "),
        (["stt", "eval", "{tmp}"], 1, "no NAME.wav with NAME.txt"),
        (["prompts", "build", "--out", "{tmp}/config.yaml/prompts"], 5, "cannot build prompts"),
    ],
    ids=["no-such-wav", "not-a-wav", "no-recordings", "prompts-tool-failed"],
)
def test_exit_code_1_means_not_found_and_nothing_else(
    tmp_path: Path, argv: list[str], code: int, said: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"stt:\n  model_path: {tmp_path}\n", encoding="utf-8")
    done = configured(config, *(arg.format(tmp=tmp_path) for arg in argv))

    assert (done.returncode, "Traceback" in done.stderr) == (code, False), done.stderr
    assert said in done.stderr
