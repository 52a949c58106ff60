"""Kamailio in front of stand-in workers: real Kamailio 5.6, real SIPp callers and workers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.sip.kamailio import Kamailio, render
from gateway.contract.config import KamailioConfig, SipConfig
from gateway.contract.errors import ConfigurationError
from tests.conftest import require_tool
from tests.support.processes import free_port

SCENARIOS = Path(__file__).parent / "scenarios"
HUNG_UP = "kamailio_uac_hung_up.xml"
# Long enough for Kamailio and SIPp to do their part on a loaded machine, short enough
# that a hang fails the test quickly.
WAIT = 10.0


@pytest.fixture
def sipp() -> str:
    return require_tool("sipp")


@pytest.fixture
def kamailio_binary() -> str:
    return require_tool("kamailio")


def settings(tmp_path: Path, **changes: object) -> SipConfig:
    """Two workers' worth of settings on a free port, pinging every second."""
    kamailio = KamailioConfig(run_dir=tmp_path / "kamailio", ping_interval_seconds=1)
    values: dict[str, object] = {"port": free_port(), "workers": 2, "kamailio": kamailio}
    values.update(changes)
    return SipConfig.model_validate(values)


class Worker:
    """A SIPp UAS on 127.0.0.1 standing in for a pjsua2 worker.

    Its <log> actions go to a FIFO read by a thread, so a test waits on what the worker
    saw (an INVITE, an ACK) as it happens.
    """

    def __init__(
        self, sipp: str, scenario: str, tmp_path: Path, name: str, hold_ms: int = 0
    ) -> None:
        self.port = free_port()
        self.name = name
        self.fifo = tmp_path / f"{name}.fifo"
        os.mkfifo(self.fifo)
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        args = [sipp, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(self.port)]
        args += ["-mi", "127.0.0.1", "-mp", str(free_port()), "-d", str(hold_ms), "-nostdin"]
        args += ["-trace_logs", "-log_file", str(self.fifo)]
        with open(tmp_path / f"{name}.stderr", "w") as stderr:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def count(self, word: str) -> int:
        with self._seen:
            return sum(line.startswith(word + " ") for line in self.lines)

    def wait_for(self, word: str, n: int) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: self.count(word) >= n, timeout=WAIT):
                raise AssertionError(f"{self.name} saw {self.count(word)} {word}, not {n}")

    def seen(self, word: str) -> list[str]:
        """The lines that start with word, once the first has been read: SIPp writes its
        log through the FIFO, so a caller's 200 OK can arrive before the line does."""
        self.wait_for(word, 1)
        with self._seen:
            return [line for line in self.lines if line.startswith(word + " ")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # A reader still blocked opening the FIFO (SIPp died first) is let through.
        with contextlib.suppress(OSError):
            os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
        self._reader.join(timeout=WAIT)

    def _read(self) -> None:
        with open(self.fifo, encoding="utf-8", errors="replace") as fifo:
            for line in fifo:
                with self._seen:
                    self.lines.append(line.strip())
                    self._seen.notify_all()


@pytest.fixture
def workers(sipp: str, tmp_path: Path) -> Iterator[list[Worker]]:
    """The stand-in workers a test starts (start_worker); all killed at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def counts(word: str, n: int, *workers: Worker) -> tuple[int, ...]:
    """Each worker's count of word, once together they reach n (or WAIT has passed): SIPp's
    log lines come through a FIFO and may arrive after the caller has finished."""
    deadline = time.monotonic() + WAIT
    while sum(w.count(word) for w in workers) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return tuple(w.count(word) for w in workers)


def start_worker(
    started: list[Worker], sipp: str, tmp_path: Path, scenario: str, hold_ms: int = 0
) -> Worker:
    worker = Worker(sipp, scenario, tmp_path, f"worker{len(started) + 1}", hold_ms)
    started.append(worker)
    return worker


@pytest.fixture
def kamailios(kamailio_binary: str) -> Iterator[list[Kamailio]]:
    """The Kamailios a test starts; each stopped at the end, and found gone."""
    started: list[Kamailio] = []
    yield started
    for kamailio in started:
        kamailio.stop()
        assert not kamailio.alive()


def front_door(started: list[Kamailio], sip: SipConfig, workers: list[Worker]) -> Kamailio:
    """Kamailio started in front of the workers, once each has answered a ping."""
    kamailio = Kamailio(sip, [w.address for w in workers])
    started.append(kamailio)
    kamailio.start()
    for worker in workers:
        kamailio.wait_for_output(f"worker up: {worker.uri}", timeout=WAIT)
    return kamailio


def place_calls(
    sipp: str,
    sip: SipConfig,
    tmp_path: Path,
    *,
    calls: int,
    at_once: int = 1,
    hold_ms: int = 0,
    scenario: str = "kamailio_uac.xml",
    transport: str = "udp",
) -> subprocess.Popen[str]:
    """A SIPp caller through Kamailio; it exits 0 when every call went as the scenario says."""
    host = sip.host
    remote = f"[{host}]:{sip.port}" if ":" in host else f"{host}:{sip.port}"
    args = [sipp, "-sf", str(SCENARIOS / scenario), remote, "-s", "12345"]
    args += ["-t", {"udp": "u1", "tcp": "t1"}[transport]]
    args += ["-i", host, "-p", str(free_port(host)), "-mi", host]
    args += ["-mp", str(free_port(host)), "-m", str(calls), "-l", str(at_once), "-r", "50"]
    args += ["-d", str(hold_ms), "-nostdin", "-timeout", "20", "-timeout_error"]
    screen = tmp_path / f"caller-{os.urandom(4).hex()}.screen"
    args += ["-trace_screen", "-screen_file", str(screen)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finished(caller: subprocess.Popen[str], tmp_path: Path) -> int:
    """The caller's exit code, once it is done; its screen is printed for a failing test."""
    _, err = caller.communicate(timeout=30)
    for screen in tmp_path.glob("caller-*.screen"):
        print(screen.read_text(errors="replace"))
    print(err)
    return caller.returncode


@pytest.mark.parametrize(
    ("transport", "host", "listening"),
    [
        ("udp", "127.0.0.1", ["udp", "tcp"]),
        ("tcp", "127.0.0.1", ["udp", "tcp"]),
        ("tcp", "127.0.0.1", ["tcp"]),
        ("udp", "::1", ["udp", "tcp"]),
    ],
    ids=["udp", "tcp-caller", "tcp-only-front-door", "ipv6-caller"],
)
def test_calls_through_kamailio_are_spread_over_the_workers_and_all_succeed(
    sipp: str,
    tmp_path: Path,
    workers: list[Worker],
    kamailios: list[Kamailio],
    transport: str,
    host: str,
    listening: list[str],
) -> None:
    sip = settings(tmp_path, host=host, transports=listening, calls_per_worker=4)
    one = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    two = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [one, two])

    caller = place_calls(sipp, sip, tmp_path, calls=8, at_once=8, hold_ms=1000, transport=transport)

    assert finished(caller, tmp_path) == 0
    answered = counts("ANSWERED", 8, one, two)
    assert sum(answered) == 8
    assert min(answered) > 0


def test_the_caller_identity_reaches_the_worker_untouched(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path)
    one = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [one])

    assert finished(place_calls(sipp, sip, tmp_path, calls=1), tmp_path) == 0

    [invite] = one.seen("INVITE")
    assert '"Citizen" <sip:13800138000@127.0.0.1:' in invite
    assert "<sip:+8613800138000@trunk.example>" in invite


def test_a_call_past_every_workers_maxload_gets_486_until_calls_end(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path, calls_per_worker=2)
    one = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    two = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [one, two])

    held = place_calls(sipp, sip, tmp_path, calls=4, at_once=4, hold_ms=3000)
    one.wait_for("ANSWERED", 2)
    two.wait_for("ANSWERED", 2)
    told_busy = place_calls(sipp, sip, tmp_path, calls=1, scenario="kamailio_uac_busy.xml")

    assert finished(told_busy, tmp_path) == 0
    assert sum(counts("INVITE", 4, one, two)) == 4
    # Their BYEs were answered: every slot is free again, all four at once.
    assert finished(held, tmp_path) == 0
    again = place_calls(sipp, sip, tmp_path, calls=4, at_once=4, hold_ms=500)
    assert finished(again, tmp_path) == 0
    assert counts("ANSWERED", 8, one, two) == (4, 4)


def test_a_worker_hanging_up_reaches_the_caller_and_frees_its_slot(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path, calls_per_worker=1)
    one = start_worker(workers, sipp, tmp_path, "kamailio_uas_hangs_up.xml", hold_ms=300)
    two = start_worker(workers, sipp, tmp_path, "kamailio_uas_hangs_up.xml", hold_ms=300)
    front_door(kamailios, sip, [one, two])

    first = place_calls(sipp, sip, tmp_path, calls=2, at_once=2, scenario=HUNG_UP)
    assert finished(first, tmp_path) == 0
    # The caller's 200 for each BYE has come back through Kamailio: both slots are free.
    one.wait_for("HUNG-UP", 1)
    two.wait_for("HUNG-UP", 1)
    again = place_calls(sipp, sip, tmp_path, calls=2, at_once=2, scenario=HUNG_UP)

    assert finished(again, tmp_path) == 0
    # Each worker's own line for its second call may come a moment after the caller ended.
    one.wait_for("HUNG-UP", 2)
    two.wait_for("HUNG-UP", 2)
    assert (one.count("HUNG-UP"), two.count("HUNG-UP")) == (2, 2)


def test_a_call_cancelled_while_ringing_frees_its_slot(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path, calls_per_worker=1)
    ringing = start_worker(workers, sipp, tmp_path, "kamailio_uas_rings.xml")
    front_door(kamailios, sip, [ringing])

    # One slot: the second and third calls ring only if the CANCEL freed it (else 486).
    caller = place_calls(sipp, sip, tmp_path, calls=3, scenario="kamailio_uac_cancels.xml")

    assert finished(caller, tmp_path) == 0
    assert counts("CANCEL", 3, ringing) == (3,)


def test_with_no_worker_answering_pings_a_call_gets_486_at_once(
    sipp: str, tmp_path: Path, kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path)
    kamailio = Kamailio(sip, [("127.0.0.1", free_port()), ("127.0.0.1", free_port())])
    kamailios.append(kamailio)
    kamailio.start()

    caller = place_calls(sipp, sip, tmp_path, calls=1, scenario="kamailio_uac_busy.xml")

    assert finished(caller, tmp_path) == 0


def test_a_worker_answering_486_hands_the_call_to_the_next_one(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path)
    busy = start_worker(workers, sipp, tmp_path, "kamailio_busy_uas.xml")
    free = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [busy, free])

    caller = place_calls(sipp, sip, tmp_path, calls=4)

    assert finished(caller, tmp_path) == 0
    # The busy worker comes first in the set and has no load, so it is tried every time.
    assert counts("INVITE", 4, busy) == (4,)
    assert counts("ANSWERED", 4, free) == (4,)


def test_a_killed_worker_is_taken_out_and_new_calls_go_to_the_live_one(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path)
    dead = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    live = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    kamailio = front_door(kamailios, sip, [dead, live])

    dead.kill()
    # One ping interval to send the next OPTIONS, one for it to time out.
    kamailio.wait_for_output(f"worker down: {dead.uri}", timeout=4 * 1)
    caller = place_calls(sipp, sip, tmp_path, calls=6, at_once=2, hold_ms=200)

    assert finished(caller, tmp_path) == 0
    assert counts("ANSWERED", 6, live) == (6,)


def test_a_call_to_a_worker_dead_since_its_last_ping_fails_over_to_the_live_one(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    # Pings every 2 s: the call goes out before they notice, to the first worker (ties in
    # load go to it), times out after a ping interval (408) and is handed to the next.
    sip = settings(tmp_path)
    sip = sip.model_copy(
        update={"kamailio": sip.kamailio.model_copy(update={"ping_interval_seconds": 2})}
    )
    dead = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    live = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    kamailio = front_door(kamailios, sip, [dead, live])

    dead.kill()
    caller = place_calls(sipp, sip, tmp_path, calls=1)

    assert finished(caller, tmp_path) == 0
    assert counts("ANSWERED", 1, live) == (1,)
    kamailio.wait_for_output(f"worker down: {dead.uri}", timeout=WAIT)


def sip_request(method: str, uri: str, source: socket.socket, port: int) -> bytes:
    host, local_port = source.getsockname()[:2]
    tag = os.urandom(4).hex()
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{tag};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Scanner" <sip:100@{host}>;tag={tag}\r\n'
        f"To: <{uri}>\r\n"
        f"Call-ID: {tag}@{host}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:100@{host}:{local_port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def ask(source: socket.socket, port: int, method: str, uri: str, timeout: float) -> str | None:
    """The reply's status line and header names, or None if nothing came back in time."""
    source.sendto(sip_request(method, uri, source, port), ("127.0.0.1", port))
    source.settimeout(timeout)
    try:
        reply = source.recv(65535).decode()
    except TimeoutError:
        return None
    status, *headers = reply.split("\r\n\r\n")[0].split("\r\n")
    return " ".join([status, *sorted(h.split(":")[0].lower() for h in headers)])


def test_a_source_not_allowed_gets_one_uniform_403_then_silence(
    tmp_path: Path, kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path, allowed_sources=["10.0.0.0/8"], throttle_after_failures=3)
    kamailio = Kamailio(sip, [("127.0.0.1", free_port())])
    kamailios.append(kamailio)
    kamailio.start()
    port = sip.port
    uris = [f"sip:12345@127.0.0.1:{port}", f"sip:admin@127.0.0.1:{port}", f"sip:127.0.0.1:{port}"]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as scanner:
        scanner.bind(("127.0.0.1", 0))
        replies = [ask(scanner, port, "INVITE", uri, timeout=WAIT) for uri in uris]
        after_limit = ask(scanner, port, "INVITE", uris[0], timeout=1)
        options_after_limit = ask(scanner, port, "OPTIONS", uris[2], timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as neighbour:
        neighbour.bind(("127.0.0.2", 0))
        other_source = ask(neighbour, port, "INVITE", uris[0], timeout=WAIT)

    assert replies[0] is not None and replies[0].startswith("SIP/2.0 403 Forbidden ")
    assert replies == [replies[0]] * 3
    # Only the configured name (test_kamailio_answers_as_one_server_that_names_no_software).
    assert "server" in replies[0].split()
    assert (after_limit, options_after_limit) == (None, None)
    assert other_source == replies[0]
    kamailio.wait_for_output("throttling 127.0.0.1 after 3 refusals", timeout=WAIT)


@pytest.mark.parametrize(
    ("host", "transports"),
    [
        ("127.0.0.1", ["udp", "tcp"]),
        ("127.0.0.1", ["udp"]),
        ("127.0.0.1", ["tcp"]),
        ("::1", ["udp", "tcp"]),
    ],
    ids=["udp-and-tcp", "udp-only", "tcp-only", "ipv6"],
)
def test_the_rendered_config_passes_kamailio_check(
    kamailio_binary: str, tmp_path: Path, host: str, transports: list[str]
) -> None:
    sip = settings(tmp_path, host=host, transports=transports)
    config, dispatcher = render(sip, [("127.0.0.1", 5071), ("127.0.0.1", 5072)])
    sip.kamailio.run_dir.mkdir(parents=True)
    (sip.kamailio.run_dir / "kamailio.cfg").write_text(config)
    (sip.kamailio.run_dir / "dispatcher.list").write_text(dispatcher)

    checked = subprocess.run(
        [kamailio_binary, "-c", "-f", str(sip.kamailio.run_dir / "kamailio.cfg")],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("host", "transports", "socket_attr"),
    [
        ("127.0.0.1", ["udp", "tcp"], ""),
        # Workers take UDP on 127.0.0.1: Kamailio gets a socket there to reach them.
        ("::1", ["udp", "tcp"], ";socket=udp:127.0.0.1:5060"),
        ("127.0.0.1", ["tcp"], ";socket=udp:127.0.0.1:5060"),
    ],
    ids=["same-address", "ipv6-front-door", "tcp-only-front-door"],
)
def test_the_dispatcher_list_has_one_line_per_worker_in_order(
    tmp_path: Path, host: str, transports: list[str], socket_attr: str
) -> None:
    sip = settings(tmp_path, host=host, port=5060, transports=transports, calls_per_worker=3)

    config, dispatcher = render(sip, [("127.0.0.1", 5071), ("127.0.0.1", 5072)])

    assert [line for line in dispatcher.splitlines() if not line.startswith("#")] == [
        f"1 sip:127.0.0.1:5071 9 1 duid=w1;maxload=3{socket_attr}",
        f"1 sip:127.0.0.1:5072 9 0 duid=w2;maxload=3{socket_attr}",
    ]
    assert "listen=udp:127.0.0.1:5060" in config.splitlines()


@pytest.mark.parametrize(
    ("changes", "workers", "key"),
    [
        ({"allowed_sources": ["10.0.0.0/33"]}, [("127.0.0.1", 5071)], "allowed_sources"),
        ({"allowed_sources": []}, [("127.0.0.1", 5071)], "allowed_sources"),
        ({"transports": []}, [("127.0.0.1", 5071)], "transports"),
        ({}, [], "channels.sip"),
    ],
    ids=["bad-network", "nobody-allowed", "no-transport", "no-worker"],
)
def test_settings_kamailio_cannot_use_are_refused_before_it_runs(
    tmp_path: Path, changes: dict[str, object], workers: list[tuple[str, int]], key: str
) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Kamailio(settings(tmp_path, **changes), workers)


@pytest.mark.parametrize(
    ("host", "squatted", "kamailio_said"),
    [
        ("127.0.0.1", True, "Address already in use"),
        # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
        ("192.0.2.1", False, "Cannot assign requested address"),
        # .invalid never resolves (RFC 2606): refused by kamailio -c already.
        ("no-such-host.invalid", False, "could not resolve"),
    ],
    ids=["port-taken", "address-not-ours", "unresolvable-host"],
)
def test_a_broken_setting_fails_start_with_kamailios_own_words(
    tmp_path: Path, kamailios: list[Kamailio], host: str, squatted: bool, kamailio_said: str
) -> None:
    sip = settings(tmp_path, host=host, transports=["udp"])
    kamailio = Kamailio(sip, [("127.0.0.1", free_port())])
    kamailios.append(kamailio)

    with contextlib.ExitStack() as held:
        if squatted:
            squatter = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            squatter.bind((host, sip.port))
        with pytest.raises(ConfigurationError, match=kamailio_said):
            kamailio.start()

    assert not kamailio.alive()


def test_stop_leaves_no_kamailio_process_behind(tmp_path: Path, kamailios: list[Kamailio]) -> None:
    kamailio = Kamailio(settings(tmp_path), [("127.0.0.1", free_port())])
    kamailios.append(kamailio)
    kamailio.start()
    group = kamailio.pid
    assert group is not None and kamailio.alive()

    kamailio.stop()

    assert not kamailio.alive()
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


def invite(source: socket.socket, port: int, contact: str, *extra: str) -> tuple[bytes, str]:
    """An INVITE from ``source`` to Kamailio with this Contact; the bytes and its Call-ID."""
    host, local_port = source.getsockname()[:2]
    tag = os.urandom(4).hex()
    call_id = f"{tag}@{host}"
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        "m=audio 9 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    lines = [
        f"INVITE sip:12345@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{tag};rport",
        "Max-Forwards: 70",
        f'From: "Citizen" <sip:13800138000@{host}>;tag={tag}',
        f"To: <sip:12345@127.0.0.1:{port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: {contact}",
        *extra,
        "Content-Type: application/sdp",
        f"Content-Length: {len(sdp)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode(), call_id


def final_status(source: socket.socket, call_id: str, timeout: float = WAIT) -> str:
    """The status line of the first final response for this Call-ID."""
    source.settimeout(timeout)
    while True:
        reply = source.recv(65535).decode("utf-8", "replace")
        status = reply.split("\r\n", 1)[0]
        if call_id in reply and status.startswith("SIP/2.0 ") and status[8] != "1":
            return status


@pytest.mark.parametrize(
    "contact",
    [
        # .invalid never resolves (RFC 2606): t_relay() of the BYE fails at once.
        "<sip:13800138000@no-such-host.invalid>",
        # A TCP port nobody listens on: the BYE's transaction fails after sending.
        "<sip:13800138000@127.0.0.1:1;transport=tcp>",
    ],
    ids=["unresolvable-contact", "unreachable-contact"],
)
def test_a_worker_bye_that_cannot_be_relayed_still_frees_the_slot(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio], contact: str
) -> None:
    # One worker, one slot: the second call is answered only if the first one's slot came
    # back when the worker hung up, not after call_slot_expire_seconds.
    sip = settings(tmp_path, calls_per_worker=1)
    worker = start_worker(workers, sipp, tmp_path, "kamailio_uas_hangs_up_unacked.xml")
    front_door(kamailios, sip, [worker])

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", 0))
        request, call_id = invite(caller, sip.port, contact)
        caller.sendto(request, ("127.0.0.1", sip.port))
        # Answered, never acknowledged: the worker's BYE goes to a Contact out of reach.
        assert final_status(caller, call_id) == "SIP/2.0 200 OK"
    worker.wait_for("HUNG-UP", 1)

    again = place_calls(sipp, sip, tmp_path, calls=1, scenario=HUNG_UP)

    assert finished(again, tmp_path) == 0
    assert counts("HUNG-UP", 2, worker) == (2,)


def test_an_identity_asserted_by_an_untrusted_source_never_reaches_the_worker(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    # 127.0.0.1 may call (allowed_sources) but is not in the trust domain (RFC 3325).
    sip = settings(tmp_path, trusted_identity_sources=["10.0.0.0/8"])
    worker = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [worker])

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", 0))
        request, call_id = invite(
            caller,
            sip.port,
            "<sip:13800138000@127.0.0.1:9>",
            'P-Asserted-Identity: "tel:120" <sip:120@trunk.example>',
            "p-preferred-identity: <sip:110@trunk.example>",
        )
        caller.sendto(request, ("127.0.0.1", sip.port))
        assert final_status(caller, call_id) == "SIP/2.0 200 OK"

    [seen] = worker.seen("INVITE")
    assert '"Citizen" <sip:13800138000@127.0.0.1>' in seen
    assert "120" not in seen and "110" not in seen


def test_a_trusted_source_keeps_its_asserted_identity(
    sipp: str, tmp_path: Path, workers: list[Worker], kamailios: list[Kamailio]
) -> None:
    sip = settings(tmp_path, trusted_identity_sources=["127.0.0.0/8"])
    worker = start_worker(workers, sipp, tmp_path, "kamailio_uas.xml")
    front_door(kamailios, sip, [worker])

    assert finished(place_calls(sipp, sip, tmp_path, calls=1), tmp_path) == 0

    [seen] = worker.seen("INVITE")
    assert "<sip:+8613800138000@trunk.example>" in seen


@pytest.mark.parametrize(
    ("method", "uri", "status"),
    [
        ("OPTIONS", "nobodyKnowsThisScheme:totallyopaquecontent", "416"),
        ("INVITE", "soap.beep://192.0.2.103:3002", "416"),
        ("OPTIONS", "sip:127.0.0.1:{port}", "200"),
        ("REGISTER", "sip:127.0.0.1:{port}", "403"),
    ],
    ids=["unknown-scheme", "novel-scheme", "options-to-us", "register"],
)
def test_kamailio_answers_as_one_server_that_names_no_software(
    tmp_path: Path, kamailios: list[Kamailio], method: str, uri: str, status: str
) -> None:
    sip = settings(tmp_path, user_agent="12345-hotline")
    kamailio = Kamailio(sip, [("127.0.0.1", free_port())])
    kamailios.append(kamailio)
    kamailio.start()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as scanner:
        scanner.bind(("127.0.0.1", 0))
        scanner.sendto(
            sip_request(method, uri.format(port=sip.port), scanner, sip.port),
            ("127.0.0.1", sip.port),
        )
        scanner.settimeout(WAIT)
        reply = scanner.recv(65535).decode()

    head = reply.split("\r\n\r\n")[0].split("\r\n")
    assert head[0].split()[1] == status
    named = [h for h in head[1:] if h.split(":")[0].lower() in ("server", "user-agent")]
    assert named == ["Server: 12345-hotline"]
    assert "kamailio" not in reply.lower()
