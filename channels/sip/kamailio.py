"""Kamailio in front of the SIP workers: its config rendered from kamailio.cfg.j2, and its
child process.

With more than one pjsua2 worker, Kamailio 5.6 listens on ``channels.sip.host:port`` and
hands each call to the worker with the fewest calls (dispatcher algorithm 10, ``maxload``
= ``calls_per_worker``), fails over on 486/503/408, pings the workers with OPTIONS and
refuses every source outside ``allowed_sources``. It may front other nodes' workers too
(``kamailio.peer_workers``): one front door over several nodes' pools, each worker dropping
out when it stops answering pings. docs/channels/sip-kamailio.md says why.

With ``seats.registrar`` it is also the operators' registrar: desk phones REGISTER with
digest auth over the gateway's own ``seats`` table, and a worker reaches a registered seat
at ``sip:<seat>@host:port`` (docs/channels/sip-kamailio.md, "Seats register here").
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType

import jinja2

from channels.sip.kamailio_db import kamailio_db
from gateway.contract import call_tokens
from gateway.contract.config import SeatsConfig, SipConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import log_event
from gateway.engine.processes import start_helper

log = logging.getLogger(__name__)

Worker = tuple[str, int]

# Kamailio's log levels (as written with -E) mapped onto ours; NOTICE is what the script logs.
_LEVELS = {
    "ALERT": logging.ERROR,
    "BUG": logging.ERROR,
    "CRITICAL": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
}
# How much of Kamailio's output is kept for error messages and wait_for_output().
_KEPT_LINES = 2000
# The readiness probe is retransmitted like a SIP request (RFC 3261 §17.1.2.2), T1 capped.
_PROBE_FIRST_WAIT = 0.05
_PROBE_MAX_WAIT = 0.5
# What Server and User-Agent may say: RFC 3261 product tokens and comments, no quotes or
# line breaks (the value goes into a quoted core parameter of kamailio.cfg).
_USER_AGENT = re.compile(r"[A-Za-z0-9!%*_+`'~./() -]{1,64}")
# A page's Origin as browsers send it (RFC 6454): nothing that could leave a quoted string.
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
# The whole kamailio.cfg in one file an operator can read; render() fills in config.yaml.
TEMPLATE = Path(__file__).with_name("kamailio.cfg.j2")
_JINJA = jinja2.Environment(
    # Not HTML: render() checks what goes into the config instead of escaping it.
    autoescape=False,
    # A value the template names but render() does not give fails, never renders empty.
    undefined=jinja2.StrictUndefined,
    # A line holding only {% if %} or {# #} leaves nothing behind in the output.
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


# The FIFO Kamailio's jsonrpcs takes commands on (channels/sip/registrations.py), in run_dir.
RPC_FIFO = "kamailio_rpc.fifo"


def render(
    settings: SipConfig,
    workers: list[Worker],
    seats: SeatsConfig | None = None,
    database_url: str = "",
) -> tuple[str, str]:
    """The kamailio.cfg text (``TEMPLATE`` filled in) and the dispatcher.list text for this
    node's ``workers`` and the other nodes' ones in ``kamailio.peer_workers``; with
    ``seats`` (and its ``registrar`` on) the seats' registrar over ``database_url`` too.

    Raises ConfigurationError, naming the key, for settings Kamailio would choke on.
    """
    if not workers:
        raise ConfigurationError("channels.sip: Kamailio needs at least one worker")
    if not settings.transports:
        raise ConfigurationError("channels.sip.transports: no transport to listen on")
    if settings.host in ("", "0.0.0.0", "::"):
        # Kamailio writes its address in Via and Record-Route: callers must reach it there.
        raise ConfigurationError(
            f"channels.sip.host: {settings.host!r} is not an address callers can reach"
        )
    if settings.worker_host in ("", "0.0.0.0", "::"):
        # It is the dispatcher's destination, and the socket peers' workers are sent from.
        raise ConfigurationError(
            f"channels.sip.worker_host: {settings.worker_host!r} is not an address Kamailio"
            " can send to"
        )
    run_dir = settings.kamailio.run_dir.absolute()
    if '"' in str(run_dir):
        raise ConfigurationError(f"channels.sip.kamailio.run_dir: no quotes allowed: {run_dir}")
    sockets = _worker_sockets(settings, workers)
    listened = set(sockets.values())
    if settings.kamailio.peer_workers:
        listened.add(_peer_socket(settings))
    # The callers' sockets are listened on already.
    host = _sip_host(settings.host)
    listened -= {f"{proto}:{host}:{settings.port}" for proto in settings.transports}
    config = _JINJA.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        sip=settings,
        host=host,
        worker_sockets=sorted(listened),
        dispatcher_list=run_dir / "dispatcher.list",
        # htable's autoexpire takes whole seconds.
        throttle_seconds=max(1, math.ceil(settings.throttle_seconds)),
        user_agent=_user_agent(settings),
        allowed_sources=_allowed_networks(settings),
        trusted_identity=_networks("trusted_identity_sources", settings.trusted_identity_sources),
        seats=_registrar(seats, database_url, run_dir),
        webcall=_webcall(settings),
    )
    return config, _dispatcher_list(settings, workers, sockets)


def _webcall(settings: SipConfig) -> dict[str, object] | None:
    """The template's values for browsers' calls (channels.sip.webcall), or None."""
    webcall = settings.webcall
    if not webcall.enabled:
        return None
    for origin in webcall.allowed_origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigurationError(
                f"channels.sip.webcall.allowed_origins: {origin!r} is not scheme://host[:port]"
            )
    if webcall.ws_port == settings.port:
        raise ConfigurationError("channels.sip.webcall.ws_port: the SIP port is taken")
    return {
        "number": webcall.number,
        "ws_port": webcall.ws_port,
        "ng_port": webcall.rtpengine_ng_port,
        "origins": webcall.allowed_origins,
        "token_header": call_tokens.HEADER,
        "token_seconds": webcall.token_seconds,
    }


def _registrar(
    seats: SeatsConfig | None, database_url: str, run_dir: Path
) -> dict[str, str] | None:
    """The template's values for the seats' registrar, or None when there is none."""
    if seats is None or not seats.registrar:
        return None
    db = kamailio_db(database_url)
    phones = []
    for entry in seats.phone_sources:
        try:
            phones.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError as exc:
            raise ConfigurationError(f"seats.phone_sources: {exc}") from None
    if not phones:
        raise ConfigurationError("seats.phone_sources is empty: no desk phone could register")
    return {
        "realm": seats.realm,
        "phone_sources": ",".join(phones),
        "db_module": db.module,
        "db_url": db.url,
        "rpc_fifo": str(run_dir / RPC_FIFO),
        "rpc_reply_dir": str(run_dir),
    }


def _worker_sockets(settings: SipConfig, workers: list[Worker]) -> dict[str, str]:
    """The socket each worker host is reached from, when it is not the callers' one.

    Workers take UDP on loopback. A front door on another address (a public one, or IPv6
    in front of 127.0.0.1) or on TCP only gets a UDP socket on the workers' own address,
    so their traffic, and the Via and Record-Route they see, stay on loopback.
    """
    sockets = {}
    for host, _ in workers:
        if "udp" not in settings.transports or not _same_loopback(settings.host, host):
            sockets[host] = f"udp:{_sip_host(host)}:{settings.port}"
    return sockets


def front_address(settings: SipConfig, worker_host: str) -> tuple[str, int]:
    """Where Kamailio's requests reach a worker from: the only source a worker behind it
    admits (another local process must not call a worker port directly)."""
    if "udp" in settings.transports and _same_loopback(settings.host, worker_host):
        return settings.host, settings.port
    return worker_host, settings.port


def admitted_fronts(settings: SipConfig, worker_host: str) -> frozenset[Worker]:
    """Every source a worker behind Kamailio takes calls from: its own node's Kamailio and
    the other nodes' ones that front it too (``kamailio.peer_fronts``)."""
    return frozenset([front_address(settings, worker_host), *settings.kamailio.peer_fronts])


def _peer_socket(settings: SipConfig) -> str:
    """The UDP socket other nodes' workers are sent to from: the one this node's own workers
    see (worker_host:port), so the peers admit one address per front, as their own does."""
    host, port = front_address(settings, settings.worker_host)
    for peer, _ in settings.kamailio.peer_workers:
        if ipaddress.ip_address(peer).version != ipaddress.ip_address(host).version:
            raise ConfigurationError(
                f"channels.sip.kamailio.peer_workers: {peer} cannot be reached from"
                f" {host}:{port} (channels.sip.worker_host): one IP version for all pools"
            )
    return f"udp:{_sip_host(host)}:{port}"


def _same_loopback(front: str, worker: str) -> bool:
    try:
        a, b = ipaddress.ip_address(front), ipaddress.ip_address(worker)
    except ValueError:
        return front == worker
    return a == b or (a.is_loopback and b.is_loopback and a.version == b.version)


def _allowed_networks(settings: SipConfig) -> str:
    networks = _networks("allowed_sources", settings.allowed_sources)
    if not networks:
        raise ConfigurationError("channels.sip.allowed_sources is empty: no trunk could call")
    return networks


def _networks(key: str, entries: list[str]) -> str:
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError as exc:
            raise ConfigurationError(f"channels.sip.{key}: {exc}") from None
    return ",".join(networks)


def _user_agent(settings: SipConfig) -> str:
    if not _USER_AGENT.fullmatch(settings.user_agent):
        raise ConfigurationError(
            f"channels.sip.user_agent: {settings.user_agent!r} must be 1-64 characters of"
            " letters, digits, spaces and !%*_+`'~./()-"
        )
    return settings.user_agent


def _sip_host(host: str) -> str:
    """An IPv6 literal goes in brackets in listen= and SIP URIs (RFC 3261 §19.1.1)."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host  # a host name


def _dispatcher_list(
    settings: SipConfig,
    workers: list[Worker],
    sockets: dict[str, str],
    answering: Collection[int] = (),
) -> str:
    """``answering``: the numbers (from 0) of this node's workers the gateway saw answer."""
    peers = settings.kamailio.peer_workers
    total = len(workers) + len(peers)
    lines = [
        "# Generated by channels/sip/kamailio.py; edits are lost at the next start.",
        "# setid destination flags priority attrs",
        "# flags 9 = inactive + probing: a worker takes calls once it has answered a ping;",
        "# 8 = active + probing: one the gateway saw answering when Kamailio was restarted.",
        "# Priority falls with the worker's number: Kamailio keeps the set ordered by it",
        "# (equal priorities come out reversed), and ties in load go to the first worker,",
        "# this node's own before other nodes' (kamailio.peer_workers, duid p<n>).",
        f"# maxload = channels.sip.calls_per_worker ({settings.calls_per_worker}): a worker",
        "# answers 486 past it.",
    ]
    for n, (host, port) in enumerate(workers, start=1):
        attrs = f"duid=w{n};maxload={settings.calls_per_worker}"
        if host in sockets:
            attrs += f";socket={sockets[host]}"
        flags = 8 if n - 1 in answering else 9
        lines.append(f"1 sip:{_sip_host(host)}:{port} {flags} {total - n} {attrs}")
    if peers:
        socket = _peer_socket(settings)
        for n, (host, port) in enumerate(peers, start=1):
            attrs = f"duid=p{n};maxload={settings.calls_per_worker};socket={socket}"
            priority = len(peers) - n
            lines.append(f"1 sip:{_sip_host(host)}:{port} 9 {priority} {attrs}")
    return "\n".join(lines) + "\n"


class Kamailio:
    """Kamailio as the gateway's child: config written and checked, started, supervised.

    It runs in its own process group (``fork=yes`` makes children) without root: no -u/-g,
    everything it writes goes to ``channels.sip.kamailio.run_dir``. Its stderr is read all
    along, passed to our log and kept for error messages.
    """

    def __init__(
        self,
        settings: SipConfig,
        workers: list[Worker],
        *,
        seats: SeatsConfig | None = None,
        database_url: str = "",
        answering: Callable[[], Collection[int]] = tuple,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """``answering``: the numbers of the workers known to answer now. A Kamailio
        started again (channels/sip/pool.py) sends them calls at once, rather than
        answering 486 until its first ping."""
        self.settings = settings
        self.workers = list(workers)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.config_text, self.dispatcher_text = render(settings, self.workers, seats, database_url)
        self.answering = answering
        registrar = seats is not None and seats.registrar
        # What Kamailio's db_url cannot carry (a PostgreSQL password): its environment only.
        self._env = {**os.environ, **(kamailio_db(database_url).env if registrar else {})}
        self.run_dir = settings.kamailio.run_dir.absolute()
        self.config_path = self.run_dir / "kamailio.cfg"
        self.dispatcher_path = self.run_dir / "dispatcher.list"
        self.pid_path = self.run_dir / "kamailio.pid"
        self._proc: subprocess.Popen[str] | None = None
        self._pidfd: int | None = None
        self._reader: threading.Thread | None = None
        self._lines: deque[str] = deque(maxlen=_KEPT_LINES)
        self._ended = False
        self._seen = threading.Condition()

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the files, check them with ``kamailio -c``, start it, wait for its 200.

        Raises ConfigurationError with Kamailio's own words when any step fails; nothing
        is left running then.
        """
        if self._proc is not None:
            raise RuntimeError("Kamailio is already started")
        binary = shutil.which(self.settings.kamailio.binary)
        if binary is None:
            raise ConfigurationError(
                f"channels.sip.kamailio.binary: {self.settings.kamailio.binary} not found"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        sockets = _worker_sockets(self.settings, self.workers)
        self.dispatcher_path.write_text(
            _dispatcher_list(self.settings, self.workers, sockets, self.answering())
        )
        self._check(binary)
        # -DD: the process we start stays the main one (no daemon) and forks the children;
        # -E: logs on stderr; -Y: its runtime files go to run_dir, not /run/kamailio.
        args = [binary, "-DD", "-E", "-f", str(self.config_path)]
        args += ["-m", str(self.settings.kamailio.shared_memory_mb)]
        args += ["-P", str(self.pid_path), "-Y", str(self.run_dir)]
        with self._seen:
            self._lines.clear()
            self._ended = False
        self._proc = start_helper(args, self._env)
        self._pidfd = os.pidfd_open(self._proc.pid)
        self._reader = threading.Thread(target=self._read, name="kamailio-stderr", daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log_event(
            log,
            "kamailio.started",
            pid=self._proc.pid,
            workers=len(self.workers),
            peer_workers=len(self.settings.kamailio.peer_workers),
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group after ``stop_timeout``; reaped."""
        proc, pidfd = self._proc, self._pidfd
        if proc is None or pidfd is None:
            return
        try:
            if not self._exited(0):
                # The main process shuts its children down itself.
                proc.send_signal(signal.SIGTERM)
                if not self._exited(self.stop_timeout):
                    log_event(log, "kamailio.kill", logging.WARNING, pid=proc.pid)
            # The main process has exited but is not reaped yet, so its pid (the group id)
            # cannot have been reused: whatever is left of the group goes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self._group_gone(proc.pid)
        finally:
            os.close(pidfd)
            self._pidfd = None
            if self._reader is not None:
                self._reader.join(timeout=self.stop_timeout)
            if proc.stdout is not None:
                proc.stdout.close()
            self._proc = None
            self._reader = None
        log_event(log, "kamailio.stopped", pid=proc.pid, returncode=proc.returncode)

    def _group_gone(self, group: int) -> None:
        """Wait until the children killed with the group are reaped too (by init, now
        that their parent is gone): until then they hold Kamailio's ports, and a
        Kamailio started at once on them would fail to bind."""
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        log_event(log, "kamailio.children_left", logging.WARNING, group=group)

    def alive(self) -> bool:
        """Whether Kamailio's main process is running (it exits if a child dies)."""
        return self._proc is not None and not self._exited(0)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def output(self) -> str:
        """What Kamailio has written to stderr (the last lines of it)."""
        with self._seen:
            return "".join(self._lines)

    def wait_for_output(self, needle: str, timeout: float) -> str:
        """The first kept line containing ``needle``; TimeoutError if it never comes."""

        def found() -> str | None:
            for line in self._lines:
                if needle in line:
                    return line
            return "" if self._ended else None

        with self._seen:
            line = self._seen.wait_for(found, timeout=timeout)
        if not line:
            raise TimeoutError(f"Kamailio never said {needle!r}; it said:\n{self.output}")
        return line

    def _check(self, binary: str) -> None:
        try:
            checked = subprocess.run(
                [binary, "-c", "-f", str(self.config_path)],
                env=self._env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.start_timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConfigurationError(f"kamailio -c {self.config_path} did not finish") from exc
        if checked.returncode != 0:
            raise ConfigurationError(
                f"kamailio -c refused {self.config_path}:\n{checked.stdout}{checked.stderr}"
            )

    def _wait_ready(self) -> None:
        """Until Kamailio answers an OPTIONS on its own port, or exits, or time runs out."""
        host = self.settings.host
        proto = "udp" if "udp" in self.settings.transports else "tcp"
        deadline = time.monotonic() + self.start_timeout
        wait = _PROBE_FIRST_WAIT
        while True:
            if self._exited(0):
                raise ConfigurationError(self._failure("exited while starting"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfigurationError(
                    self._failure(f"did not answer OPTIONS within {self.start_timeout} s")
                )
            if _options_ok(proto, host, self.settings.port, min(wait, remaining)):
                return
            # Wait out the rest of the retransmission interval, waking if it exits.
            self._exited(min(wait, max(0.0, deadline - time.monotonic())))
            wait = min(wait * 2, _PROBE_MAX_WAIT)

    def _failure(self, what: str) -> str:
        if self._exited(0) and self._reader is not None:
            self._reader.join(timeout=self.stop_timeout)  # all it said, up to its end
        listen = f"{self.settings.host}:{self.settings.port}"
        return f"Kamailio on {listen} {what} (channels.sip); it said:\n{self.output}"

    def _exited(self, timeout: float) -> bool:
        """Whether the main process has exited, waiting up to ``timeout``; never reaps it."""
        pidfd = self._pidfd
        if pidfd is None:
            return True
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        except (OSError, ValueError):  # closed meanwhile by stop() (health asks any time)
            return True
        return bool(ready)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._seen:
                self._lines.append(line)
                self._seen.notify_all()
            log_event(log, "kamailio.output", _level(line), line=line.strip())
        with self._seen:
            self._ended = True
            self._seen.notify_all()


def _level(line: str) -> int:
    # " 0(1452) NOTICE: <script>: worker up: sip:127.0.0.1:15071"
    if "exited normally" in line:
        return logging.DEBUG  # each child at shutdown, logged as ALERT
    head = line.split(":", 1)[0].split()
    return _LEVELS.get(head[-1], logging.DEBUG) if head else logging.DEBUG


def _options_ok(proto: str, host: str, port: int, timeout: float) -> bool:
    """Whether Kamailio answers 200 to an OPTIONS sent to itself over ``proto``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            local_host, local_port = sock.getsockname()[:2]
            request, call_id = _options_request(proto, host, port, local_host, local_port)
            sock.sendall(request)
            reply = sock.recv(65535)
    except OSError:  # refused (not listening yet) or timed out: not ready
        return False
    head = reply.decode("utf-8", "replace")
    return head.startswith("SIP/2.0 200 ") and call_id in head


def _options_request(
    proto: str, host: str, port: int, local_host: str, local_port: int
) -> tuple[bytes, str]:
    token = secrets.token_hex(8)
    call_id = f"{token}@hotline-probe"
    target = f"sip:{_sip_host(host)}:{port}"
    request = (
        f"OPTIONS {target} SIP/2.0\r\n"
        f"Via: SIP/2.0/{proto.upper()} {_sip_host(local_host)}:{local_port}"
        f";branch=z9hG4bK{token};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{_sip_host(local_host)}>;tag={token}\r\n"
        f"To: <{target}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return request.encode(), call_id
