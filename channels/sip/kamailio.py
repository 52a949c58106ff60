"""Kamailio in front of the SIP workers: its generated config and its child process.

With more than one pjsua2 worker, Kamailio 5.6 listens on ``channels.sip.host:port`` and
hands each call to the worker with the fewest calls (dispatcher algorithm 10, ``maxload``
= ``calls_per_worker``), fails over on 486/503/408, pings the workers with OPTIONS and
refuses every source outside ``allowed_sources``. It may front other nodes' workers too
(``kamailio.peer_workers``): one front door over several nodes' pools, each worker dropping
out when it stops answering pings. docs/channels/sip-kamailio.md says why.
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
from pathlib import Path
from types import TracebackType

from gateway.contract.config import SipConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import log_event
from gateway.engine.processes import die_with_parent

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


def render(settings: SipConfig, workers: list[Worker]) -> tuple[str, str]:
    """The kamailio.cfg text and the dispatcher.list text for this node's ``workers`` and
    the other nodes' ones in ``kamailio.peer_workers``.

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
    return (
        _config(settings, run_dir / "dispatcher.list", sorted(listened)),
        _dispatcher_list(settings, workers, sockets),
    )


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


def _trusted_identity(settings: SipConfig) -> str:
    """The #!define naming the RFC 3325 trust domain; none at all trusts nobody."""
    networks = _networks("trusted_identity_sources", settings.trusted_identity_sources)
    if not networks:
        return "# (empty: every P-Asserted-Identity from outside is removed)"
    return f'#!define TRUSTED_IDENTITY "{networks}"'


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


def _dispatcher_list(settings: SipConfig, workers: list[Worker], sockets: dict[str, str]) -> str:
    peers = settings.kamailio.peer_workers
    total = len(workers) + len(peers)
    lines = [
        "# Generated by channels/sip/kamailio.py; edits are lost at the next start.",
        "# setid destination flags priority attrs",
        "# flags 9 = inactive + probing: a worker takes calls once it has answered a ping.",
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
        lines.append(f"1 sip:{_sip_host(host)}:{port} 9 {total - n} {attrs}")
    if peers:
        socket = _peer_socket(settings)
        for n, (host, port) in enumerate(peers, start=1):
            attrs = f"duid=p{n};maxload={settings.calls_per_worker};socket={socket}"
            priority = len(peers) - n
            lines.append(f"1 sip:{_sip_host(host)}:{port} 9 {priority} {attrs}")
    return "\n".join(lines) + "\n"


def _config(settings: SipConfig, dispatcher_list: Path, worker_sockets: list[str]) -> str:
    k = settings.kamailio
    host = _sip_host(settings.host)
    listen = [f"listen={proto}:{host}:{settings.port}" for proto in settings.transports]
    if worker_sockets:
        listen.append("# The workers' side, on their own address (dispatcher.list socket=).")
        listen += [f"listen={socket}" for socket in worker_sockets]
    if "tcp" not in settings.transports:
        listen.append("disable_tcp=yes")
    listen_lines = "\n".join(listen)
    throttle = max(1, math.ceil(settings.throttle_seconds))
    user_agent = _user_agent(settings)
    values = f"""\
#!KAMAILIO
#
# The 12345 hotline's SIP front door: Kamailio in front of the pjsua2 workers.
# Generated by channels/sip/kamailio.py from config.yaml (channels.sip); edits are lost at
# the next start. docs/channels/sip-kamailio.md explains the choices.

####### Values from config.yaml #######

#!define DISPATCHER_LIST "{dispatcher_list}"
# channels.sip.allowed_sources: who may call, checked on the packet's source address.
#!define ALLOWED_SOURCES "{_allowed_networks(settings)}"
# channels.sip.trusted_identity_sources: whose P-Asserted-Identity is believed (RFC 3325).
{_trusted_identity(settings)}
# channels.sip.throttle_after_failures / throttle_seconds.
#!define THROTTLE_AFTER {settings.throttle_after_failures}
#!define THROTTLED_TABLE "throttled=>size=8;autoexpire={throttle};"
# channels.sip.kamailio.ping_interval_seconds: OPTIONS to every worker this often; a
# worker silent for as long is dead (they are on loopback and answer in milliseconds).
#!define PING_INTERVAL {k.ping_interval_seconds}
#!define WORKER_TIMEOUT_MS {k.ping_interval_seconds * 1000}
# channels.sip.kamailio.call_slot_expire_seconds: a call slot whose BYE never came.
#!define CALL_SLOT_EXPIRE {k.call_slot_expire_seconds}

####### Global parameters #######

# Kamailio runs as the gateway's child (-DD -E) and the gateway reads its stderr;
# debug=2 is INFO: start-up and errors, nothing per message.
log_stderror=yes
debug=2
fork=yes
children={k.children}
{listen_lines}
# Only the addresses above are "myself" (OPTIONS to us, loose_route); no DNS lookups.
auto_aliases=no
dns=no
rev_dns=no
# A scanner learns nothing about the software: replies and our own requests (pings) carry
# channels.sip.user_agent, the name the workers give too; no Warning header.
server_signature=yes
server_header="Server: {user_agent}"
user_agent_header="User-Agent: {user_agent}"
sip_warning=0
# A caller's idle TCP connection is kept as long as the longest call: the worker's BYE
# goes back on it.
tcp_connection_lifetime={k.call_slot_expire_seconds}
"""
    return values + _LOGIC


# The fixed part of kamailio.cfg: the values it uses are #!define'd above it.
_LOGIC = r"""
####### Modules #######

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ipops.so"
loadmodule "htable.so"
loadmodule "dispatcher.so"

# ----- tm -----
# Requests to workers (and the OPTIONS pings) time out after a ping interval; requests
# toward callers get RFC 3261's 64*T1 instead (route[IN_DIALOG]).
modparam("tm", "fr_timer", WORKER_TIMEOUT_MS)
# After a failover the caller gets the last worker's answer, not an earlier one's.
modparam("tm", "failure_reply_mode", 3)

# ----- dispatcher: set 1 is the workers -----
modparam("dispatcher", "list_file", DISPATCHER_LIST)
# 2 = failover: the other workers are kept in $xavp(_dsdst_) for ds_next_dst().
modparam("dispatcher", "flags", 2)
# Algorithm 10 (call load) counts calls by Call-ID in a table of 2^9 slots.
modparam("dispatcher", "ds_hash_size", 9)
# A killed worker's calls never send their BYE through us: their slots are counted until
# this expiry, so it sits near the longest call (too long blocks the restarted worker).
modparam("dispatcher", "ds_hash_expire", CALL_SLOT_EXPIRE)
modparam("dispatcher", "ds_hash_initexpire", CALL_SLOT_EXPIRE)
modparam("dispatcher", "ds_hash_check_interval", 10)
# Every worker is pinged (probing mode 1); one missed answer takes it out, one answer
# brings it back.
modparam("dispatcher", "ds_ping_interval", PING_INTERVAL)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_from", "sip:kamailio@hotline.invalid")

# ----- htable: refusals per source, and the sources being ignored -----
# A fixed one-minute window from the first refusal: updateexpire=0 keeps the first expiry.
# initval=0 lets $shtinc create the counter (5.6 does not increment a missing key).
modparam("htable", "htable", "refused=>size=8;autoexpire=60;updateexpire=0;initval=0;")
modparam("htable", "htable", THROTTLED_TABLE)
# Expired entries are swept every second so a throttle ends when it should.
modparam("htable", "timer_interval", 1)

####### Routing #######

request_route {
	# A source that kept failing is ignored: no answer at all, nothing to learn.
	if ($sht(throttled=>$si) != $null) {
		exit;
	}

	# Answers go back where the request came from, whatever its Via says: a Via without
	# rport (RFC 4475's messages, many trunks behind NAT) would send them to port 5060.
	force_rport();

	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}

	# A Request-URI we cannot even read (RFC 3261 8.2.2.1; RFC 4475 unkscm, novelsc).
	if (!is_method("ACK") && !($ru =~ "^(sip|sips|tel):")) {
		sl_send_reply("416", "Unsupported URI Scheme");
		exit;
	}

	# Liveness checks of Kamailio itself (the gateway's start, monitoring): from anyone.
	if (is_method("OPTIONS") && uri == myself && !has_totag()) {
		sl_send_reply("200", "OK");
		exit;
	}

	# Only trunks and PBXs (by packet source, never by headers) and our own workers (their
	# BYEs) get further; everyone else gets the same 403 whatever they asked for.
	if (!is_in_subnet("$si", ALLOWED_SOURCES) && !ds_is_from_list("1")) {
		# An ACK is never answered; the one for our 403 is simply absorbed.
		if (is_method("ACK")) {
			exit;
		}
		route(REFUSE);
	}

	# Malformed requests get their 400 from sanity itself.
	if (!sanity_check()) {
		exit;
	}

	# RFC 3325: an asserted identity is believed only from the trust domain; from anyone
	# else the caller is the From, so a forged one never reaches a worker.
#!ifdef TRUSTED_IDENTITY
	if (!ds_is_from_list("1") && !is_in_subnet("$si", TRUSTED_IDENTITY)) {
#!else
	if (!ds_is_from_list("1")) {
#!endif
		remove_hf("P-Asserted-Identity");
		remove_hf("P-Preferred-Identity");
	}

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}

	# Retransmissions are answered by their transaction.
	if (!is_method("ACK")) {
		if (t_precheck_trans()) {
			t_check_trans();
			exit;
		}
		t_check_trans();
	}

	if (has_totag()) {
		route(IN_DIALOG);
	}

	# No extension is supported here (RFC 3261 16.3 item 3; RFC 4475 bext01).
	if (is_present_hf("Proxy-Require") && !is_method("ACK|CANCEL")) {
		append_to_reply("Unsupported: $hdr(Proxy-Require)\r\n");
		sl_send_reply("420", "Bad Extension");
		exit;
	}

	# We take calls, nothing else: no REGISTER, MESSAGE, SUBSCRIBE or stray ACK.
	if (!is_method("INVITE")) {
		if (!is_method("ACK")) {
			sl_send_reply("403", "Forbidden");
		}
		exit;
	}

	route(DISPATCH);
}

# One uniform answer, and a count: THROTTLE_AFTER refusals within a minute and the source
# is ignored for throttle_seconds (the refusal reaching the limit is still answered).
route[REFUSE] {
	if ($shtinc(refused=>$si) >= THROTTLE_AFTER) {
		$sht(throttled=>$si) = 1;
		xlog("L_NOTICE", "throttling $si after $sht(refused=>$si) refusals\n");
	}
	sl_send_reply("403", "Forbidden");
	exit;
}

# ACK, BYE, INFO, re-INVITE: they follow the route set we recorded on the INVITE.
route[IN_DIALOG] {
	if (loose_route()) {
		if (is_method("BYE")) {
			# A call's slot is freed when its BYE is answered: freed on the request, a
			# worker still tearing the call down was given a fifth one.
			t_on_reply("BYE_REPLY");
			t_on_failure("BYE_FAILED");
		}
		if (ds_is_from_list("1")) {
			# From a worker toward the caller, across a real network: 64*T1.
			t_set_fr(0, 32000);
		}
		if (!t_relay()) {
			# Not even sent (a caller's Contact that does not resolve or refuses the
			# connection): no failure route runs, and the call is over all the same.
			if (is_method("BYE")) {
				ds_load_unset();
			}
			sl_reply_error();
		}
		exit;
	}
	if (is_method("ACK")) {
		# The ACK for a negative reply belongs to its INVITE transaction.
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	sl_send_reply("481", "Call/Transaction Does Not Exist");
	exit;
}

route[DISPATCH] {
	# Algorithm 10: the answering worker with the fewest calls, below its maxload.
	if (!ds_select_dst("1", "10")) {
		# Every worker is full or dead.
		sl_send_reply("486", "Busy Here");
		exit;
	}
	# Every later request of the call comes through us, so its BYE frees the slot.
	record_route();
	t_on_reply("INVITE_REPLY");
	t_on_failure("INVITE_FAILED");
	if (!t_relay()) {
		ds_load_unset();
		sl_reply_error();
	}
	exit;
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

# A response belongs to one of our transactions or to nobody: stray ones (RFC 4475 bcast,
# with a Via to 255.255.255.255) are dropped, never forwarded along their Via.
reply_route {
	if (!t_check_trans()) {
		drop;
	}
}

onreply_route[INVITE_REPLY] {
	# Answered: the slot is kept until the BYE (or ds_hash_expire).
	if ($rs =~ "^2") {
		ds_load_update();
	}
}

failure_route[INVITE_FAILED] {
	if (t_is_canceled()) {
		ds_load_unset();
		exit;
	}
	# No answer at all: the worker died between pings. Out now; a ping brings it back.
	if (t_branch_timeout() && !t_branch_replied()) {
		ds_mark_dst("ip");
	}
	# Busy, overloaded or silent: the next worker that had room when the call came in.
	# ds_next_dst() moves the call's slot there; it is called only when there is a next
	# worker, because a failed ds_next_dst() drops the record ds_load_unset() needs.
	if (t_check_status("486|503|408") && $xavp(_dsdst_[1]=>uri) != $null) {
		if (ds_next_dst()) {
			t_on_reply("INVITE_REPLY");
			t_on_failure("INVITE_FAILED");
			if (t_relay()) {
				exit;
			}
		}
	}
	ds_load_unset();
	if (t_check_status("486|503|408")) {
		t_reply("486", "Busy Here");
	}
}

onreply_route[BYE_REPLY] {
	if ($rs =~ "^2") {
		ds_load_unset();
	}
}

failure_route[BYE_FAILED] {
	# A BYE refused or unanswered ends the call all the same.
	ds_load_unset();
}

# Run for a ping (the worker's URI is $ru) or for ds_mark_dst() in a call's failure route
# ($ru is the call's; the worker is the dispatcher's current destination record).
event_route[dispatcher:dst-down] {
	if ($xavp(_dsdst_=>uri) != $null) {
		xlog("L_NOTICE", "worker down: $xavp(_dsdst_=>uri)\n");
	} else {
		xlog("L_NOTICE", "worker down: $ru\n");
	}
}

event_route[dispatcher:dst-up] {
	xlog("L_NOTICE", "worker up: $ru\n");
}
"""


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
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.workers = list(workers)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.config_text, self.dispatcher_text = render(settings, self.workers)
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

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        self.dispatcher_path.write_text(self.dispatcher_text)
        self._check(binary)
        # -DD: the process we start stays the main one (no daemon) and forks the children;
        # -E: logs on stderr; -Y: its runtime files go to run_dir, not /run/kamailio.
        args = [binary, "-DD", "-E", "-f", str(self.config_path)]
        args += ["-m", str(self.settings.kamailio.shared_memory_mb)]
        args += ["-P", str(self.pid_path), "-Y", str(self.run_dir)]
        with self._seen:
            self._lines.clear()
            self._ended = False
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            process_group=0,
            # A gateway killed with -9 takes Kamailio along, or it would hold the SIP port
            # against the restarted gateway.
            preexec_fn=die_with_parent,
        )
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
        if self._pidfd is None:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
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
