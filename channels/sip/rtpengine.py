"""rtpengine as the gateway's child, for 网上呼叫 (channels.sip.webcall).

Browsers send DTLS-SRTP over ICE; the workers answer plain RTP. Kamailio hands each web
call's SDP to rtpengine (its ``rtpengine`` module, the ng protocol on loopback), which
relays the media between the two in userspace (``--table=-1``: no kernel module).
"""

from __future__ import annotations

import glob
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque

from gateway.contract.config import SipConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.logs import log_event
from gateway.engine.processes import start_helper

log = logging.getLogger(__name__)

_KEPT_LINES = 500


# Where Debian (and a source build) put Kamailio's modules; websocket.so is a package of its
# own (kamailio-websocket-modules).
_KAMAILIO_MODULES = (
    "/usr/lib/*/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib*/kamailio/modules",
)


def missing_parts(settings: SipConfig) -> list[str]:
    """What web calls need and this machine lacks (the Debian packages to install)."""
    missing = []
    if shutil.which(settings.webcall.rtpengine_binary) is None:
        missing.append("rtpengine-daemon")
    if not any(glob.glob(f"{where}/websocket.so") for where in _KAMAILIO_MODULES):
        missing.append("kamailio-websocket-modules")
    return missing


def ng_ping(port: int, timeout: float = 1.0) -> bool:
    """Whether rtpengine answers the ng protocol's ping on 127.0.0.1:``port``."""
    cookie = secrets.token_hex(6).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(cookie + b" d7:command4:pinge", ("127.0.0.1", port))
            reply = sock.recv(4096)
        except OSError:
            return False
    return reply == cookie + b" d6:result4:ponge"


class RtpEngine:
    """Started with the SIP channel when web calls are on; its output goes to our log."""

    def __init__(self, settings: SipConfig, start_timeout: float = 10.0) -> None:
        self.settings = settings.webcall
        self.interface = self.settings.media_interface or settings.media_address or settings.host
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: deque[str] = deque(maxlen=_KEPT_LINES)

    def command(self, binary: str) -> list[str]:
        webcall = self.settings
        return [
            binary,
            "--config-file=none",  # this command line only, not /etc/rtpengine
            "--foreground",
            "--log-stderr",
            "--log-level=5",  # NOTICE: start, stop and trouble, not every packet
            "--table=-1",  # userspace forwarding: no kernel module, no root
            f"--interface={self.interface}",
            f"--listen-ng=127.0.0.1:{webcall.rtpengine_ng_port}",
            f"--port-min={webcall.rtp_port_min}",
            f"--port-max={webcall.rtp_port_max}",
        ]

    def start(self) -> None:
        binary = shutil.which(self.settings.rtpengine_binary)
        if binary is None:
            raise ConfigurationError(
                f"channels.sip.webcall.rtpengine_binary: {self.settings.rtpengine_binary}"
                " not found (Debian package rtpengine-daemon)"
            )
        self._proc = start_helper(self.command(binary))
        threading.Thread(target=self._read, name="rtpengine-output", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not ng_ping(self.settings.rtpengine_ng_port, 0.2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = "".join(self._lines)
                raise ConfigurationError(f"rtpengine did not start; it said:\n{said}")
        log_event(log, "rtpengine.started", pid=self._proc.pid, interface=self.interface)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_event(log, "rtpengine.stopped", pid=proc.pid, returncode=proc.returncode)

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line)
            level = logging.WARNING if "ERR" in line or "CRIT" in line else logging.DEBUG
            log_event(log, "rtpengine.output", level, line=line.strip())
