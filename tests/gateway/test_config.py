"""config.yaml is validated at start: a bad key stops the gateway and names the key."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from gateway.cli import main
from gateway.contract.config import Config, load_config
from gateway.contract.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
# A key config.yaml shows at its default or as an example, commented out: `# key: value`,
# or `#   - key: value` for a list's entry. Read with the comment mark taken off.
COMMENTED = re.compile(r"^(\s*)# (\s*(?:- )?[a-z_][a-z0-9_]*:(?: |$))", re.MULTILINE)
# Lists the shipped file only gives an example entry of, commented out.
EXAMPLES = (("api", "tokens"), ("webhooks", "endpoints"), ("routing", "rules"))


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


def documented() -> dict[str, Any]:
    """The shipped config.yaml with its commented keys switched on."""
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(COMMENTED.sub(r"\1\2", text))
    return loaded


def section(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The section a field holds (and whether as a list of them), or None for a value."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return section(inner[0]) if len(inner) == 1 else None
    if get_origin(annotation) is list:
        found = section(get_args(annotation)[0])
        return (found[0], True) if found else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None


def keys_shown(
    model: type[BaseModel], nodes: list[Any], path: str, shown: dict[type[BaseModel], Any]
) -> None:
    """{section model: (where it first is, the keys config.yaml shows for it)}: a section
    used in several places (the job lanes, a list's entries) shows each key once at least."""
    mappings = [node for node in nodes if isinstance(node, dict)]
    shown.setdefault(model, (path, set()))[1].update(key for m in mappings for key in m)
    for name, field in model.model_fields.items():
        inner = section(field.annotation)
        if inner is None:
            continue
        child, is_list = inner
        values = [m[name] for m in mappings if name in m]
        if is_list:
            values = [entry for v in values if isinstance(v, list) for entry in v]
        keys_shown(child, values, f"{path}{name}{'[]' if is_list else ''}.", shown)


def test_the_shipped_config_shows_every_key_the_gateway_reads() -> None:
    """Config and its sections, ivr/menu.py's `ivr:` among them: a key added to a model
    and not to config.yaml fails here."""
    shown: dict[type[BaseModel], Any] = {}
    keys_shown(Config, [documented()], "", shown)

    missing = [
        f"{path}{name}"
        for model, (path, keys) in shown.items()
        for name in model.model_fields
        if name not in keys
    ]
    assert missing == []


def test_the_commented_keys_are_valid_and_show_the_defaults() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    shipped = Config.model_validate(yaml.safe_load(text)).model_dump()
    shown = Config.model_validate(documented()).model_dump()  # the examples are valid too

    assert shown["api"]["tokens"] and shown["webhooks"]["endpoints"]
    for section_name, key in EXAMPLES:
        shipped[section_name].pop(key), shown[section_name].pop(key)
    assert shown == shipped


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
        (
            "ivr:\n  agent: {lines: {'12349': vip}}\n",
            r"ivr.agent.lines: \['vip'\] not among acd.priorities",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-int",
        "port-range",
        "timezone",
        "enum",
        "top-key",
        "list",
        "yaml",
        "line-class",
    ],
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


def test_a_web_call_setting_that_cannot_work_is_refused_at_load() -> None:
    from pydantic import ValidationError

    from gateway.contract.config import SipConfig

    with pytest.raises(ValidationError, match="rtp_port_min must not be above rtp_port_max"):
        SipConfig.model_validate({"webcall": {"rtp_port_min": 31000, "rtp_port_max": 30000}})
    with pytest.raises(ValidationError, match="workers must be 2 or more"):
        SipConfig.model_validate({"workers": 1, "webcall": {"enabled": True}})
