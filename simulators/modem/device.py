"""A simulated GSM modem on a pseudo-terminal: the AT interpreter served by one thread."""

from __future__ import annotations

import array
import contextlib
import fcntl
import logging
import os
import select
import termios
import threading
import tty
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo

from simulators.modem.at import AtModem, ModemProfile, SentMessage
from simulators.modem.pdu import Encoding, deliver_pdus, status_report_pdu

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Output nobody reads (no terminal attached) is dropped past this, as a serial line loses it.
MAX_BACKLOG = 1 << 20
FILLER_SENDER = "10086"


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


class ModemSimulator:
    """A GSM modem speaking AT commands (TS 27.007 / 27.005, PDU mode) on a pty.

    ``start()`` returns the device path a client opens (``GsmModem(path)``, pyserial, minicom).
    Every public method may be called from any thread while the pty thread serves.
    ``disconnect()`` makes the device vanish under the client; ``reconnect()`` (or
    ``start()`` again) powers the modem up on a new pty, whose path may differ, while the SIM
    (storage, SMSC, message reference) is kept. ``symlink`` points at the current pty and is
    removed while the modem is unplugged.
    """

    def __init__(
        self,
        profile: ModemProfile | None = None,
        *,
        clock: Callable[[], datetime] = shanghai_now,
        symlink: str | os.PathLike[str] | None = None,
    ) -> None:
        self.profile = profile or ModemProfile()
        self._clock = clock
        self._symlink = Path(symlink) if symlink is not None else None
        self._modem = AtModem(self.profile, clock)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._out = bytearray()
        self._concat_reference = 0
        self._device: str | None = None
        self._fds: tuple[int, int, int, int] | None = None  # master, slave, wake read, write
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def device(self) -> str | None:
        """The pty path clients open, None while disconnected."""
        return self._device

    def start(self) -> str:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the modem is already running")
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no CR/LF translation by the line discipline
            os.set_blocking(master, False)
            wake_read, wake_write = os.pipe()
            os.set_blocking(wake_write, False)
            self._fds = (master, slave, wake_read, wake_write)
            self._device = os.ttyname(slave)
            self._modem.power_on()
            self._out.clear()
            self._stopping = False
            self._thread = threading.Thread(
                target=self._serve, name=f"modem {self._device}", daemon=True
            )
            self._thread.start()
            if self._symlink is not None:
                _point(self._symlink, self._device)
            log.info("modem on %s", self._device)
            return self._device

    def disconnect(self) -> None:
        """Unplug: close the pty so the client's reads and writes fail (EIO), and remove
        the symlink, as udev removes a USB modem's links."""
        with self._lock:
            thread, self._stopping = self._thread, True
            self._wake()
        if thread is not None:
            thread.join()
        with self._lock:
            if self._fds is not None:
                for fd in self._fds:
                    os.close(fd)
            if self._symlink is not None and self._device is not None:
                with contextlib.suppress(OSError):
                    if os.readlink(self._symlink) == self._device:
                        self._symlink.unlink()
            self._fds = self._thread = self._device = None

    def reconnect(self) -> str:
        self.disconnect()
        return self.start()

    def stop(self) -> None:
        self.disconnect()

    def __enter__(self) -> ModemSimulator:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the network side --------------------------------------------------------------------

    def deliver_text(
        self,
        sender: str,
        text: str,
        *,
        timestamp: datetime | None = None,
        encoding: Encoding = "auto",
        concat_ref: int | None = None,
        ref_bits: int = 8,
        part_order: Sequence[int] | None = None,
        duplicate_parts: Sequence[int] = (),
    ) -> list[int]:
        """Deliver ``text`` as SMS-DELIVER PDUs, split and concatenated if long.

        Parts go in ``part_order`` (1-based part numbers, a permutation), then the parts in
        ``duplicate_parts`` once more. Returns the storage index of each part stored, in
        delivery order; parts held back because the SIM is full are not listed (see
        :attr:`pending`) and are stored, with their +CMTI, as soon as records free up.
        """
        with self._lock:
            if concat_ref is None:
                self._concat_reference = (self._concat_reference + 1) % (1 << ref_bits)
                concat_ref = self._concat_reference
            pdus = deliver_pdus(
                smsc=self._modem.smsc,
                sender=sender,
                text=text,
                timestamp=timestamp or self._clock(),
                encoding=encoding,
                reference=concat_ref,
                ref_bits=ref_bits,
            )
            numbers = list(part_order) if part_order is not None else list(range(1, len(pdus) + 1))
            if sorted(numbers) != list(range(1, len(pdus) + 1)):
                raise ValueError(f"part_order must order the parts 1..{len(pdus)}: {numbers}")
            if any(not 1 <= n <= len(pdus) for n in duplicate_parts):
                raise ValueError(f"duplicate_parts must be part numbers 1..{len(pdus)}")
            numbers += duplicate_parts
            indexes = [self._modem.deliver(pdus[n - 1]) for n in numbers]
            self._wake()
            return [i for i in indexes if i is not None]

    def deliver_pdu(self, pdu_hex: str) -> int | None:
        """Store a PDU exactly as given (broken ones too) and announce it; the index, or
        None while the SIM is full (it is stored when a record frees up)."""
        with self._lock:
            index = self._modem.deliver(pdu_hex)
            self._wake()
            return index

    def send_status_report(self, mr: int, status: int = 0) -> int | None:
        """The SMSC reports on the sent message with TP-MR ``mr`` (TP-ST ``status``, 0 =
        delivered), routed per +CNMI <ds>: stored with +CDSI (its index is returned) or
        shown with +CDS; dropped when <ds> is 0."""
        with self._lock:
            matches = [s for s in self._modem.sent if s.reference == mr]
            if not matches:
                raise ValueError(f"no sent message has reference {mr}")
            pdu = status_report_pdu(
                smsc=self._modem.smsc,
                reference=mr,
                recipient=matches[-1].destination,
                sent=matches[-1].at,
                done=self._clock(),
                status=status,
            )
            index = self._modem.status_report(pdu)
            self._wake()
            return index

    def fill_storage(self) -> int:
        """Fill every free SIM record with an old, read message; returns how many."""
        with self._lock:
            free = self._modem.free_count()
            when = self._clock()
            fillers = [
                deliver_pdus(
                    smsc=self._modem.smsc, sender=FILLER_SENDER, text=f"old {i}", timestamp=when
                )[0]
                for i in range(free)
            ]
            return self._modem.fill(fillers)

    # -- faults ------------------------------------------------------------------------------

    def fail_next(self, command_prefix: str, reply: str, times: int = 1) -> None:
        """Answer the next ``times`` command lines starting with ``command_prefix`` (case
        ignored) with ``reply`` instead of their result, e.g. ``"+CMS ERROR: 500"``. For
        AT+CMGS the reply replaces +CMGS/OK after the PDU, and nothing is sent."""
        with self._lock:
            self._modem.add_fault(command_prefix, reply, times)

    def hang_next(self, command_prefix: str, times: int = 1) -> None:
        """Never answer the next matching command line. A hung AT+CMGS did send the SMS."""
        with self._lock:
            self._modem.add_fault(command_prefix, None, times)

    # -- introspection -----------------------------------------------------------------------

    def stored(self) -> dict[int, str]:
        """SIM storage: index -> PDU hex."""
        with self._lock:
            return {i: slot.pdu for i, slot in sorted(self._modem.slots.items())}

    @property
    def pending(self) -> int:
        """Messages the network holds back until the SIM has room (or the PIN is entered)."""
        with self._lock:
            return len(self._modem.pending)

    @property
    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._modem.sent)

    @property
    def commands(self) -> list[str]:
        """Every command line received, in order, as typed (after the ignored prefix)."""
        with self._lock:
            return list(self._modem.commands)

    def wait_for_command(self, prefix: str, *, after: int = 0, timeout: float = 5.0) -> int:
        """Block until a command line starting with ``prefix`` was received at position
        ``after`` or later in :attr:`commands`; its position. TimeoutError otherwise."""

        def seen() -> int | None:
            for i, line in enumerate(self._modem.commands[after:], start=after):
                if line.upper().startswith(prefix.upper()):
                    return i
            return None

        with self._changed:
            found = self._changed.wait_for(seen, timeout)
        if found is None:
            raise TimeoutError(f"no {prefix!r} command within {timeout} s")
        return found

    # -- the pty thread ----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._fds is not None:
            with contextlib.suppress(BlockingIOError):
                os.write(self._fds[3], b"!")

    def _serve(self) -> None:
        assert self._fds is not None
        master, _, wake, _ = self._fds
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        poller.register(master, select.POLLIN)
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    want = select.POLLIN | (select.POLLOUT if self._out else 0)
                poller.modify(master, want)
                events = dict(poller.poll())
                if wake in events:
                    os.read(wake, 4096)
                state = events.get(master, 0)
                data = os.read(master, 4096) if state & select.POLLIN else b""
                if not data and state & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    raise OSError(f"poll reported {state:#x} on the pty")
                with self._lock:
                    if data:
                        log.debug("<< %r", data)
                        self._out += self._modem.feed(data)
                        self._changed.notify_all()
                    if self._modem.idle and self._modem.unsolicited and not _unread(master):
                        self._out += self._modem.take_unsolicited()
                    self._flush(master)
        except OSError as error:  # the pty went away under us
            log.warning("modem pty failed: %s", error)

    def _flush(self, master: int) -> None:
        try:
            written = os.write(master, self._out) if self._out else 0
        except BlockingIOError:
            written = 0
        if written:
            log.debug(">> %r", bytes(self._out[:written]))
            del self._out[:written]
        if len(self._out) > MAX_BACKLOG:
            self._out.clear()


def _unread(master: int) -> int:
    """Bytes the terminal wrote that the modem has not read yet (URCs wait for them)."""
    count = array.array("i", [0])
    fcntl.ioctl(master, termios.FIONREAD, count)
    return count[0]


def _point(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` atomically (a client never sees it missing)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    temporary.replace(link)
