"""Two nodes' SIP worker pools behind one Kamailio, on one PostgreSQL: calls land on both
nodes, a node killed with -9 mid-load drops out of the dispatcher set within a few pings and
new calls go to the other one; every call SIPp saw succeed is one letter, and what a call cut
by the kill had recorded is stored when its node starts again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from channels.sip.kamailio import admitted_fronts, render
from gateway.contract.config import KamailioConfig, SipConfig
from gateway.contract.errors import ConfigurationError
from store.models import Letter, MissedCall
from tests.channels.sip.conftest import short_prompts
from tests.channels.sip.test_serve import worker_pids
from tests.channels.sip.test_sipp import FAST
from tests.conftest import require_tool
from tests.support.processes import Child, free_port, gateway
from tests.support.sipp import SippResult, run_sipp, scenario

WORKERS = 2  # per node, 4 calls each
PING = 1  # kamailio.ping_interval_seconds: a dead worker is out within about two
MIN_SECONDS = 1  # ivr.voicemail.min_seconds: a shorter recording is a missed call
FIRST = 16  # calls through node A's front while node B dies
AFTER = 6  # calls once B's workers are out: all on A
# B dies once this many of its calls are recording with this much audio on disk (16-bit
# 8 kHz after the 44-byte header), so the kill cuts messages, not only menus.
CUT_RECORDING, CUT_BYTES = 2, 44 + 2 * 16000
HEARD_AT_RESTART = 60.0


# -- the generated config: pure, no process -------------------------------------------


def sip_settings(tmp_path: Path, **kamailio: object) -> SipConfig:
    return SipConfig(
        host="127.0.0.1",
        port=5060,
        transports=["udp"],
        workers=2,
        kamailio=KamailioConfig(run_dir=tmp_path / "kamailio", **kamailio),
    )


def test_other_nodes_workers_follow_this_nodes_own_in_the_dispatcher_set(
    tmp_path: Path,
) -> None:
    sip = sip_settings(tmp_path, peer_workers=[("127.0.0.2", 6070), ("127.0.0.2", 6071)])

    config, dispatcher = render(sip, [("127.0.0.1", 5070), ("127.0.0.1", 5071)])

    assert [line for line in dispatcher.splitlines() if not line.startswith("#")] == [
        "1 sip:127.0.0.1:5070 9 3 duid=w1;maxload=4",
        "1 sip:127.0.0.1:5071 9 2 duid=w2;maxload=4",
        # Sent from the socket this node's own workers see, the one the peers admit.
        "1 sip:127.0.0.2:6070 9 1 duid=p1;maxload=4;socket=udp:127.0.0.1:5060",
        "1 sip:127.0.0.2:6071 9 0 duid=p2;maxload=4;socket=udp:127.0.0.1:5060",
    ]
    assert [line for line in config.splitlines() if line.startswith("listen=")] == [
        "listen=udp:127.0.0.1:5060"
    ]


def test_peers_behind_a_public_front_door_are_sent_to_from_the_workers_address(
    tmp_path: Path,
) -> None:
    sip = sip_settings(tmp_path, peer_workers=[("10.0.0.2", 5070)]).model_copy(
        update={"host": "192.0.2.10", "worker_host": "10.0.0.1"}
    )

    config, dispatcher = render(sip, [("10.0.0.1", 5070)])

    assert dispatcher.splitlines()[-1] == (
        "1 sip:10.0.0.2:5070 9 0 duid=p1;maxload=4;socket=udp:10.0.0.1:5060"
    )
    assert [line for line in config.splitlines() if line.startswith("listen=")] == [
        "listen=udp:192.0.2.10:5060",
        "listen=udp:10.0.0.1:5060",
    ]
    assert admitted_fronts(sip, "10.0.0.1") == {("10.0.0.1", 5060)}


def test_a_worker_takes_calls_from_its_own_front_and_the_peers_fronts_only(
    tmp_path: Path,
) -> None:
    sip = sip_settings(tmp_path, peer_fronts=[("127.0.0.2", 6060)])

    assert admitted_fronts(sip, "127.0.0.1") == {("127.0.0.1", 5060), ("127.0.0.2", 6060)}


@pytest.mark.parametrize(
    ("changes", "kamailio", "key"),
    [
        ({"worker_host": "0.0.0.0"}, {}, "worker_host"),
        ({}, {"peer_workers": [("::1", 6070)]}, "peer_workers"),
    ],
    ids=["unspecified-worker-host", "peer-of-another-ip-version"],
)
def test_pools_kamailio_cannot_reach_are_refused(
    tmp_path: Path, changes: dict[str, object], kamailio: dict[str, object], key: str
) -> None:
    sip = sip_settings(tmp_path, **kamailio).model_copy(update=changes)
    with pytest.raises(ConfigurationError, match=key):
        render(sip, [("127.0.0.1", 5070)])


def test_the_generated_config_with_peers_passes_kamailio_check(tmp_path: Path) -> None:
    binary = require_tool("kamailio")
    sip = sip_settings(tmp_path, peer_workers=[("127.0.0.2", 6070)]).model_copy(
        update={"host": "127.0.0.3", "transports": ["udp", "tcp"]}
    )
    config, dispatcher = render(sip, [("127.0.0.1", 5070)])
    sip.kamailio.run_dir.mkdir(parents=True)
    (sip.kamailio.run_dir / "kamailio.cfg").write_text(config)
    (sip.kamailio.run_dir / "dispatcher.list").write_text(dispatcher)

    checked = subprocess.run(
        [binary, "-c", "-f", str(sip.kamailio.run_dir / "kamailio.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- two real nodes -------------------------------------------------------------------


@dataclass
class Node:
    """One `hotline serve` whose Kamailio and workers are on their own loopback address."""

    name: str
    host: str
    root: Path
    port: int  # its Kamailio
    base: int  # its first worker
    child: Child | None = None

    @property
    def front(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def workers(self) -> list[str]:
        return [f"{self.host}:{self.base + n}" for n in range(WORKERS)]

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lines(self) -> list[str]:
        assert self.child is not None
        return self.child.lines

    def notes(self) -> dict[str, float]:
        """What its workers left on disk: Call-ID -> seconds of audio in the WAV."""
        found = {}
        for note in (self.root / "var" / "recordings").glob("worker-*/*.json"):
            wav = note.with_suffix(".wav")
            if wav.exists():
                seconds = max(0, wav.stat().st_size - 44) / 16000
                found[json.loads(note.read_text("utf-8"))["call_id"]] = seconds
        return found

    def recording(self, among: Callable[[str], bool]) -> list[int]:
        """The sizes of the WAVs its workers are writing now for the calls ``among`` picks
        (by Call-ID). A call that has just ended keeps its WAV until its letter is stored,
        seconds on a busy machine, so earlier calls must not count."""
        sizes = []
        for note in (self.root / "var" / "recordings").glob("worker-*/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                if among(json.loads(note.read_text("utf-8"))["call_id"]):
                    sizes.append(note.with_suffix(".wav").stat().st_size)
        return sizes


def write_config(node: Node, peer: Node, attachments: Path, prompts: Path) -> None:
    """A node as docs/operations.md "Several nodes" says: its own HTTP and SIP ports, var/
    beside its config, the database from HOTLINE_DATABASE_URL; its Kamailio fronts the
    peer's workers too, and its workers take calls from the peer's Kamailio."""
    node.root.mkdir()
    peers = ", ".join(f'"{worker}"' for worker in peer.workers)
    node.config.write_text(
        f"""
http: {{port: {free_port()}}}
storage: {{attachments_dir: {attachments}, spool_drain_interval_seconds: 0.5}}
channels:
  smtp: {{enabled: false}}
  gsm: {{enabled: false}}
  sip:
    host: {node.host}
    port: {node.port}
    transports: [udp]
    workers: {WORKERS}
    worker_host: {node.host}
    worker_base_port: {node.base}
    prompts_dir: {prompts}
    kamailio:
      ping_interval_seconds: {PING}
      children: 2
      peer_workers: [{peers}]
      peer_fronts: ["{peer.front}"]
stt: {{enabled: false}}
ocr: {{enabled: false}}
routing: {{enabled: false}}
ivr:
  menu_timeout_seconds: 1
  no_input_repeats: 1
  voicemail: {{silence_seconds: 3, min_seconds: {MIN_SECONDS}, max_seconds: 30}}
""",
        encoding="utf-8",
    )


def until(check: Callable[[], bool], timeout: float, why: Callable[[], str]) -> float:
    """Seconds until ``check`` held; fails with ``why()`` after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, why()
        time.sleep(0.1)
    return time.monotonic() - started


def said(node: Node, needle: str, since: int = 0) -> bool:
    return any(needle in line for line in node.lines[since:])


def tail(*nodes: Node) -> str:
    return "".join(f"--- {n.name}\n{''.join(n.lines[-40:])}" for n in nodes if n.child)


@dataclass(frozen=True)
class Call:
    worker: str | None  # host:port of the worker that answered, None if none did
    ok: bool  # SIPp counted it successful: its BYE got a 200


def calls(logs: Path) -> dict[str, Call]:
    """Each call SIPp placed, by Call-ID, from its short message trace (date, time, epoch,
    S or R, Call-ID, CSeq, first line): the ACK goes to the answering worker's Contact
    (Kamailio only recorded the route), and a caller hanging up succeeded when its BYE got
    a 200; SIPp fails every other call."""
    workers: dict[str, str | None] = {}
    ok = set()
    for line in (logs / "shortmessages.log").read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 7:
            continue
        direction, call_id, cseq, first = fields[3], fields[4], fields[5], fields[6]
        workers.setdefault(call_id, None)
        if direction == "S" and first.startswith("ACK sip:hotline@"):
            workers[call_id] = first.split("@", 1)[1].split()[0]
        elif direction == "R" and cseq.endswith(" BYE") and first.startswith("SIP/2.0 200"):
            ok.add(call_id)
    return {call_id: Call(worker, call_id in ok) for call_id, worker in workers.items()}


def answered_by(placed: dict[str, Call], node: Node) -> set[str]:
    return {call_id for call_id, call in placed.items() if call.worker in node.workers}


def stored(engine: Engine) -> tuple[Counter[str], dict[str, str]]:
    """Letters per Call-ID (their key is `<Call-ID>;from=<hash>`), and missed calls' reasons."""
    with engine.connect() as conn:
        keys = conn.execute(select(Letter.external_id).where(Letter.channel == "phone"))
        letters = Counter(key.split(";from=", 1)[0] for key in keys.scalars())
        missed = conn.execute(select(MissedCall.call_id, MissedCall.reason)).all()
    return letters, {row.call_id.split(";from=", 1)[0]: row.reason for row in missed}


@pytest.mark.slow
@pytest.mark.alone  # the load across two nodes is what it checks (Makefile)
@pytest.mark.timeout(600)  # two gateways, four pjsua2 workers, two Kamailios, 26 calls
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_kamailio_fronts_two_nodes_pools_and_a_killed_nodes_calls_go_to_the_other(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    require_tool("sipp")
    require_tool("kamailio")
    prompts = short_prompts(tmp_path / "prompts")
    a = Node("a", "127.0.0.1", tmp_path / "a", free_port(), free_port())
    b = Node("b", "127.0.0.2", tmp_path / "b", free_port(), free_port())
    write_config(a, b, tmp_path / "attachments", prompts)
    write_config(b, a, tmp_path / "attachments", prompts)
    env = {"HOTLINE_DATABASE_URL": database_url}
    started = time.monotonic()
    with gateway(a.config, **env) as a.child, gateway(b.config, **env) as b.child:
        # Each node's Kamailio has all four workers up: its own and the other node's.
        everyone = [f"worker up: sip:{worker}" for worker in a.workers + b.workers]
        until(
            lambda: all(said(node, up) for node in (a, b) for up in everyone),
            60,
            lambda: f"a Kamailio never had all four workers up\n{tail(a, b)}",
        )

        # Through B's front: one call on each worker, A's workers taking B's front's calls.
        through_b = run_sipp(
            scenario("call_menu_voicemail_hangup"), b.front, calls=4, concurrency=4,
            rate=20, keys=FAST, timeout=60, log_dir=tmp_path / "sipp-b",
        )  # fmt: skip
        assert through_b.ok and through_b.successful == 4, through_b
        placed = calls(tmp_path / "sipp-b")
        assert answered_by(placed, a) and answered_by(placed, b), placed

        # Through A's front, a steady load over both pools, while B is killed.
        first: list[SippResult] = []
        load = threading.Thread(
            target=lambda: first.append(
                run_sipp(
                    scenario("call_menu_voicemail_hangup"), a.front, calls=FIRST,
                    concurrency=8, rate=4, keys=FAST, timeout=120, log_dir=tmp_path / "sipp-a",
                )
            )
        )  # fmt: skip
        load.start()
        # The load's calls, not the four above: their WAVs stay until their letters are in.
        earlier = set(placed)
        until(
            lambda: (
                sum(size >= CUT_BYTES for size in b.recording(lambda call: call not in earlier))
                >= CUT_RECORDING
            ),
            60,
            lambda: f"B never held {CUT_RECORDING} messages at once\n{tail(a, b)}",
        )
        # The node dies as a machine losing power would have it: the gateway and its
        # workers at once (its Kamailio and other children then go by PR_SET_PDEATHSIG).
        for pid in worker_pids(b.child).values():
            os.kill(pid, signal.SIGKILL)
        os.kill(b.child.pid, signal.SIGKILL)
        killed_at, mark = time.monotonic(), len(a.lines)
        b.child.wait()
        left = b.notes()  # what B's workers had recorded, on B's disk
        until(
            lambda: all(said(a, f"worker down: sip:{w}", mark) for w in b.workers),
            20,
            lambda: f"A's Kamailio kept B's workers\n{tail(a)}",
        )
        dropped_out = time.monotonic() - killed_at
        load.join(timeout=180)
        [during] = first

        # B's workers are out: every new call is taken, and by A.
        after = run_sipp(
            scenario("call_menu_voicemail_hangup"), a.front, calls=AFTER, concurrency=AFTER,
            rate=20, keys=FAST, timeout=60, log_dir=tmp_path / "sipp-after",
        )  # fmt: skip
        assert after.ok and after.successful == AFTER, after
        placed = calls(tmp_path / "sipp-after")
        assert answered_by(placed, a) == set(placed), placed

        # B starts again: its workers store what the kill cut (channels/sip/recovery.py).
        b.child = None
        with gateway(b.config, **env) as b.child:
            until(
                lambda: sum("sip.recovered" in line for line in b.lines) >= len(left),
                HEARD_AT_RESTART,
                lambda: f"B recovered less than {left}\n{tail(b)}",
            )

    loaded = calls(tmp_path / "sipp-a")
    assert answered_by(loaded, a) and answered_by(loaded, b), "the load missed a node"
    placed = {**calls(tmp_path / "sipp-b"), **loaded, **calls(tmp_path / "sipp-after")}
    assert len(placed) == 4 + FIRST + AFTER
    ok = {call_id for call_id, call in placed.items() if call.ok}
    cut = set(placed) - ok
    on_a, on_b = answered_by(placed, a), answered_by(placed, b)
    # Every call was answered (one sent to B as it died went on to A), and only calls B
    # held died with it.
    assert on_a | on_b == set(placed), set(placed) - on_a - on_b
    assert cut <= on_b, cut - on_b
    assert cut, "the kill cut no call: it proved nothing"

    letters, missed = stored(engine)
    # Nothing doubled: one letter per call at most, and never both a letter and a miss.
    assert [call for call, count in letters.items() if count > 1] == []
    assert set(letters) & set(missed) == set()
    # Every call SIPp saw succeed is its letter.
    assert ok <= set(letters), ok - set(letters)
    # A cut call that was recording is stored as far as it got, once B is back: a letter,
    # or a missed call when under min_seconds. One cut in the menu had nothing to keep.
    for call in cut:
        if call in left and left[call] >= MIN_SECONDS:
            assert call in letters, (call, left[call])
        elif call in left:
            assert missed.get(call) == "short_recording", (call, left[call])
        else:
            assert call not in letters and call not in missed, call
    assert set(letters) == ok | {call for call in cut if left.get(call, 0) >= MIN_SECONDS}
    print(
        f"\ntwo nodes' SIP pools: {len(placed)} calls in {time.monotonic() - started:.0f} s,"
        f" {len(ok)} succeeded ({len(ok & on_a)} on A, {len(ok & on_b)} on B),"
        f" {len(cut)} cut by the kill ({sum(1 for c in cut if c in left)} recording);"
        f" letters {sum(letters.values())} ({len(set(letters) & on_a)} on A,"
        f" {len(set(letters) & on_b)} on B), missed {len(missed)};"
        f" B's workers out {dropped_out:.1f} s after the kill;"
        f" {during.successful}/{FIRST} of the load through A's front succeeded"
    )
