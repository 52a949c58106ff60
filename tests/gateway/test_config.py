"""config.yaml is validated at start: a bad key stops the gateway and names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.contract.config import load_config
from gateway.contract.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_is_valid_and_anchors_paths_to_its_folder() -> None:
    config = load_config(REPO / "config.yaml", environ={})
    assert config.timezone == "Asia/Shanghai"
    assert config.http.host == "127.0.0.1" and config.http.port == 8080
    assert config.storage.attachments_dir == REPO / "var" / "attachments"
    assert config.database.url == f"sqlite:///{REPO / 'var' / 'hotline.db'}"


def test_no_file_means_the_embedded_defaults() -> None:
    config = load_config(None, environ={})
    assert config.database.url.startswith("sqlite:///") and config.database.url.endswith(
        "var/hotline.db"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("database:\n  urll: x\n", "database.urll: unknown key"),
        ("http:\n  port: eighty\n", "http.port: Input should be a valid integer"),
        ("http:\n  port: 70000\n", "http.port: Input should be less than or equal to 65535"),
        ("timezone: Mars/Olympus\n", "timezone: Value error, unknown time zone"),
        ("logging:\n  format: xml\n", "logging.format: Input should be 'text' or 'json'"),
        ("colour: blue\n", "colour: unknown key"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("http: [\n", "not valid YAML"),
    ],
    ids=["unknown-key", "bad-int", "port-range", "timezone", "enum", "top-key", "list", "yaml"],
)
def test_a_bad_config_names_the_key_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        load_config(write(tmp_path, text), environ={})


def test_the_environment_overrides_the_database_url(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: sqlite:///var/a.db\n")
    config = load_config(path, environ={"HOTLINE_DATABASE_URL": "postgresql+psycopg://db/h"})
    assert config.database.url == "postgresql+psycopg://db/h"


def test_config_check_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "storage:\n  spool_dri: /tmp/x\n")

    assert main(["config", "check", str(path)]) == 2
    assert "storage.spool_dri: unknown key" in capsys.readouterr().err


def test_config_check_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "http:\n  port: 8081\n")
    assert main(["config", "check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_missing_config_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "nope.yaml"), "db", "upgrade"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_calling_main_in_process_leaves_the_callers_signal_handling_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    before = signal.getsignal(signal.SIGPIPE)
    main(["config", "check", str(write(tmp_path, "http:\n  port: 8081\n"))])
    # SIG_DFL here would let one write to a closed pipe kill a whole test run.
    assert signal.getsignal(signal.SIGPIPE) == before
