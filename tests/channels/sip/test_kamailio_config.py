"""The kamailio.cfg rendered from channels/sip/kamailio.cfg.j2, and dispatcher.list: as they
were recorded, and as Kamailio 5.6 itself reads them (`kamailio -c`).

`kamailio -c` parses the config and loads its modules but never opens dispatcher.list (a
list of garbage passes): the recorded lists, and the tests running Kamailio, guard that.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from channels.sip import kamailio
from channels.sip.kamailio import Worker, render
from gateway.cli import main
from gateway.contract.config import SipConfig, load_config
from tests.conftest import require_tool

# What render() wrote for each case, kept so a change to the config shows up as a diff.
# Recorded before the config moved into the template; since then only the header comment
# naming the file it is generated from has changed.
RENDERED = Path(__file__).parent / "kamailio_rendered"
# The recorded configs name this run_dir; the `kamailio -c` runs use a temporary one.
RECORDED_RUN_DIR = Path("/var/lib/hotline/kamailio")
CHECK_TIMEOUT = 30.0

# id: (channels.sip settings, this node's workers)
CASES: dict[str, tuple[dict[str, object], list[Worker]]] = {
    "one-worker-defaults": ({}, [("127.0.0.1", 5070)]),
    "three-workers-public-udp-only": (
        {"host": "203.0.113.5", "transports": ["udp"], "workers": 3, "calls_per_worker": 3},
        [("127.0.0.1", 5070), ("127.0.0.1", 5071), ("127.0.0.1", 5072)],
    ),
    "ipv6-front-door-tcp-only": (
        {"host": "::1", "port": 5080, "transports": ["tcp"], "workers": 2},
        [("127.0.0.1", 5070), ("127.0.0.1", 5071)],
    ),
    "peers-from-other-nodes": (
        {
            "host": "198.51.100.7",
            "worker_host": "10.0.0.1",
            "workers": 2,
            "kamailio": {
                "peer_workers": ["10.0.0.2:5070", "10.0.0.2:5071"],
                "peer_fronts": ["10.0.0.2:5060"],
            },
        },
        [("10.0.0.1", 5070), ("10.0.0.1", 5071)],
    ),
    "ipv6-peers-on-the-callers-socket": (
        {
            "host": "fd00::1",
            "worker_host": "fd00::1",
            "transports": ["udp"],
            "workers": 2,
            "kamailio": {"peer_workers": ["[fd00::2]:5070"]},
        },
        [("fd00::1", 5070), ("fd00::1", 5071)],
    ),
    "trunks-throttle-and-tuning": (
        {
            "host": "192.0.2.20",
            "workers": 4,
            "allowed_sources": ["198.51.100.0/24", " 203.0.113.9", "2001:db8::1/32"],
            "trusted_identity_sources": [],
            "user_agent": "City hotline (12345)",
            "throttle_after_failures": 3,
            "throttle_seconds": 2.5,
            "kamailio": {
                "ping_interval_seconds": 5,
                "call_slot_expire_seconds": 1800,
                "children": 8,
            },
        },
        [("127.0.0.1", 6001), ("127.0.0.1", 6002), ("127.0.0.1", 6003), ("127.0.0.1", 6004)],
    ),
    "web-calls-from-the-site": (
        {
            "host": "192.0.2.30",
            "workers": 2,
            "webcall": {
                "enabled": True,
                "ws_port": 8443,
                "allowed_origins": ["https://12345.city.gov.cn", "http://[2001:db8::5]:8080"],
            },
        },
        [("127.0.0.1", 5070), ("127.0.0.1", 5071)],
    ),
}


def sip_settings(case: str, run_dir: Path) -> SipConfig:
    values = dict(CASES[case][0])
    kamailio = dict(values.pop("kamailio", {}))  # type: ignore[call-overload]
    return SipConfig.model_validate({**values, "kamailio": {**kamailio, "run_dir": run_dir}})


def write(case: str, run_dir: Path) -> Path:
    """The case's two files in ``run_dir``, as Kamailio.start() writes them; the cfg's path."""
    config, dispatcher = render(sip_settings(case, run_dir), CASES[case][1])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "dispatcher.list").write_text(dispatcher)
    cfg = run_dir / "kamailio.cfg"
    cfg.write_text(config)
    return cfg


def kamailio_check(binary: str, cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-c", "-f", str(cfg)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
    )


@pytest.fixture
def kamailio_binary() -> str:
    return require_tool("kamailio")


@pytest.mark.parametrize("case", CASES)
def test_the_config_renders_as_recorded(case: str) -> None:
    config, dispatcher = render(sip_settings(case, RECORDED_RUN_DIR), CASES[case][1])

    assert config == (RENDERED / f"{case}.cfg").read_text()
    assert dispatcher == (RENDERED / f"{case}.list").read_text()


@pytest.mark.parametrize("case", CASES)
def test_the_rendered_config_passes_kamailios_own_check(
    kamailio_binary: str, tmp_path: Path, case: str
) -> None:
    checked = kamailio_check(kamailio_binary, write(case, tmp_path / "kamailio"))

    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("after", "wrong", "kamailio_said"),
    [
        ('loadmodule "dispatcher.so"\n', 'loadmodule "no_such.so"', "could not find module"),
        (
            'loadmodule "dispatcher.so"\n',
            'modparam("dispatcher", "no_such_parameter", 1)',
            "parameter <no_such_parameter> of type <2:int> not found",
        ),
        ("request_route {\n", "\tno_such_function();", "failed to find command"),
        ("request_route {\n", "}", "syntax error"),
    ],
    ids=["unknown-module", "unknown-module-parameter", "unknown-function", "unbalanced-brace"],
)
def test_a_broken_template_fails_kamailios_own_check(
    kamailio_binary: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    after: str,
    wrong: str,
    kamailio_said: str,
) -> None:
    template = kamailio.TEMPLATE.read_text()
    assert template.count(after) == 1
    broken = tmp_path / "kamailio.cfg.j2"
    broken.write_text(template.replace(after, f"{after}{wrong}\n"))
    monkeypatch.setattr(kamailio, "TEMPLATE", broken)

    cfg = write("peers-from-other-nodes", tmp_path / "kamailio")
    checked = kamailio_check(kamailio_binary, cfg)

    assert f"\n{wrong}\n" in cfg.read_text()
    assert checked.returncode != 0
    assert kamailio_said in checked.stdout + checked.stderr


def hotline_config(tmp_path: Path) -> Path:
    """Three workers behind Kamailio, its run_dir under ``tmp_path``."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "channels:\n  sip:\n    workers: 3\n    port: 5090\n"
        f"    kamailio: {{run_dir: {tmp_path / 'run'}}}\n"
    )
    return config


def test_kamailio_config_prints_the_config_and_the_list_without_writing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = hotline_config(tmp_path)
    loaded = load_config(config)
    workers: list[Worker] = [("127.0.0.1", 5070), ("127.0.0.1", 5071), ("127.0.0.1", 5072)]
    # The seats' registrar included, as serve starts it (seats.registrar is on by default).
    cfg, dispatcher = render(loaded.channels.sip, workers, loaded.seats, loaded.database.url)

    assert main(["--config", str(config), "sip", "kamailio-config"]) == 0

    assert capsys.readouterr().out == f"{cfg}\n# dispatcher.list\n{dispatcher}\n"
    assert not (tmp_path / "run").exists()


def test_kamailio_config_out_writes_a_pair_that_names_its_own_list_and_passes_the_check(
    kamailio_binary: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = hotline_config(tmp_path)
    out = tmp_path / "out"
    loaded = load_config(config)
    workers: list[Worker] = [("127.0.0.1", 5070), ("127.0.0.1", 5071), ("127.0.0.1", 5072)]
    in_run_dir, dispatcher = render(loaded.channels.sip, workers, loaded.seats, loaded.database.url)

    assert main(["--config", str(config), "sip", "kamailio-config", "--out", str(out)]) == 0

    assert capsys.readouterr().out == ""
    assert sorted(path.name for path in out.iterdir()) == ["dispatcher.list", "kamailio.cfg"]
    assert (out / "dispatcher.list").read_text() == dispatcher
    # What serve writes to run_dir, but for the files it names (the list, the seats' RPC
    # FIFO): beside it.
    written = (out / "kamailio.cfg").read_text()
    assert f'#!define DISPATCHER_LIST "{out / "dispatcher.list"}"' in written.splitlines()
    assert written == in_run_dir.replace(str(tmp_path / "run"), str(out))
    checked = kamailio_check(kamailio_binary, out / "kamailio.cfg")
    assert checked.returncode == 0, checked.stdout + checked.stderr
