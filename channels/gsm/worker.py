"""One GSM modem behind its own thread: connect, sweep the SIM, send, reconnect.

python-gsmmodem-new gives the serial and AT layers; its receiving logic is not used (it
swallows +CMTI that arrive during a command and deletes messages before they are
handled). Here a +CMTI only wakes the sweep; every sweep lists the SIM with AT+CMGL, hands
each whole message to the event loop, and deletes its parts with AT+CMGD only after the
letter is committed (or spooled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gsmmodem.exceptions import CommandError, GsmModemException
from gsmmodem.modem import GsmModem
from gsmmodem.pdu import encodeSmsSubmitPdu
from serial import SerialException

from channels.gsm.assembly import Stored, parse_listing, sort_out
from gateway.contract.config import GsmConfig, ModemConfig
from gateway.contract.contact import Accept
from gateway.contract.errors import TransientError
from gateway.contract.logs import log_event
from store.attachments import write_durably

log = logging.getLogger(__name__)
CTRL_Z = "\x1a"
ESC = b"\x1b"
ESC_SETTLE_SECONDS = 0.2

# (modem name, message reference, TP-Status) of a delivery report (TS 23.040 §9.2.3.15).
ReportDelivery = Callable[[str, int, int], Coroutine[Any, Any, None]]


class _Modem(GsmModem):  # type: ignore[misc]
    """The library's modem, with unsolicited lines reduced to a wake-up call, and a device
    that vanishes (its reader thread fails) ending the command in flight at once rather
    than after its timeout."""

    def __init__(self, device: str, baud: int, wake: threading.Event) -> None:
        # ds=2: status reports are stored (+CDSI) and reach the sweep like messages.
        super().__init__(device, baud, AT_CNMI="2,1,0,2,0", fatalErrorCallbackFunc=self._gone)
        self._wake = wake
        self.failure: Exception | None = None
        self._fresh = True  # no command written on this connection yet

    def _handleModemNotification(self, lines: list[str]) -> None:
        self._wake.set()

    def _gone(self, error: Exception) -> None:
        self.failure = error
        waiting = self._responseEvent  # the command in flight: stop waiting for its answer
        if waiting is not None:
            waiting.set()

    def _end_message_entry(self) -> None:
        """A process killed between AT+CMGS and the message body leaves the modem taking
        every byte as that body: our AT commands would vanish into it and each connect time
        out. ESC abandons the entry and sends nothing (TS 27.005 §3.5.1; Gammu starts the
        same way); a modem in command mode ignores it. Its OK, if any, comes before our
        first command, so it is not taken for that command's answer."""
        self.serial.write(ESC)
        time.sleep(ESC_SETTLE_SECONDS)

    def write(self, data: str, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            raise SerialException(f"the modem is gone: {self.failure}")
        try:
            if self._fresh:
                self._fresh = False
                self._end_message_entry()
            return super().write(data, *args, **kwargs)
        except Exception as exc:
            if self.failure is not None:  # cut off mid-answer: that, not the half answer
                raise SerialException(f"the modem is gone: {self.failure}") from exc
            raise


@dataclass
class Outgoing:
    number: str
    text: str
    done: Future[list[int]]


class ModemWorker:
    def __init__(
        self,
        settings: ModemConfig,
        common: GsmConfig,
        device: str,
        loop: asyncio.AbstractEventLoop,
        accept: Accept,
        report: ReportDelivery | None,
    ) -> None:
        self.settings = settings
        self.common = common
        self.device = device
        self.loop = loop
        self.accept = accept
        self.report = report
        self.name = settings.name
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.outgoing: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self.failures = 0
        self.set_aside = 0  # messages kept on disk instead of stored, since the start
        self.signal = -1  # the last +CSQ reading (0-31, 99 unknown), -1 before one
        self.first_seen: dict[str, datetime] = {}
        self._last_send = 0.0
        self._reference = 0
        self._thread = threading.Thread(target=self._run, name=f"gsm-{self.name}", daemon=True)

    @property
    def healthy(self) -> bool:
        return self.failures < self.common.max_failures

    @property
    def up(self) -> bool:
        """Reading its SIM: the thread runs and the modem answers."""
        return self._thread.is_alive() and self.connected.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self._thread.join(timeout=self.common.command_timeout_seconds + 5)

    def send(self, number: str, text: str) -> Future[list[int]]:
        """Queue an SMS (split into concatenated UCS2 parts as needed); the future gives
        the message references the network assigned."""
        done: Future[list[int]] = Future()
        self.outgoing.put(Outgoing(number, text, done))
        self.wake.set()
        return done

    # -- the modem thread -------------------------------------------------------------

    def _run(self) -> None:
        delay = self.common.reconnect_min_seconds
        while not self.stopping.is_set():
            modem = None
            try:
                modem = _Modem(self.device, self.settings.baud, self.wake)
                modem.connect(pin=self.settings.pin)
                if self.settings.smsc:
                    modem.smsc = self.settings.smsc  # AT+CSCA
                self.failures, delay = 0, self.common.reconnect_min_seconds
                self.connected.set()
                self._log_status(modem)
                self._serve(modem)
            except Exception as exc:  # the thread's boundary: it reconnects, never ends
                self.connected.clear()  # down now, not after the backoff below
                self.failures += 1
                if not isinstance(exc, GsmModemException | SerialException | OSError):
                    log.exception("gsm.modem_crashed modem=%s", self.name)  # a bug: traceback
                log_event(
                    log,
                    "gsm.modem_failed",
                    logging.WARNING,
                    modem=self.name,
                    error=repr(exc),
                    failures=self.failures,
                    retry_in=delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, self.common.reconnect_max_seconds)
            finally:
                self.connected.clear()
                if modem is not None:
                    # Closing a modem that already vanished fails in several ways.
                    with contextlib.suppress(
                        GsmModemException, SerialException, OSError, AttributeError
                    ):
                        modem.close()

    def _serve(self, modem: _Modem) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            self._sweep(modem)
            # One SMS per round, each after a sweep: reading comes before sending, so a
            # queue of receipts never leaves the citizens' messages unread on the SIM.
            self.wake.wait(self._send_next(modem))

    def _write(self, modem: _Modem, command: str, **options: object) -> list[str]:
        lines: list[str] = modem.write(
            command, timeout=self.common.command_timeout_seconds, **options
        )
        return lines

    def _sweep(self, modem: _Modem) -> None:
        lines = self._write(modem, "AT+CMGL=4")
        used, total = self._storage(modem)
        now = datetime.now(UTC)
        found = sort_out(
            parse_listing(lines),
            self.first_seen,
            now,
            timedelta(seconds=self.common.incomplete_after_seconds),
            storage_full=total > 0 and used >= total,
        )
        for entry, reason in found.malformed:
            self._set_aside(modem, [entry], reason)
        for message in found.messages:
            try:
                contact = message.contact(self.name, now)
                # Hand the letter to the event loop and wait for the commit before deleting.
                accepted = asyncio.run_coroutine_threadsafe(self.accept(contact), self.loop).result(
                    timeout=self.common.command_timeout_seconds * 6
                )
            except (TimeoutError, TransientError):
                raise  # not the message's fault: it stays on the SIM for the next sweep
            except Exception as exc:  # this message only: kept aside, the rest go on
                entries = [Stored(index, 1, pdu) for index, _, pdu in message.parts]
                self._set_aside(modem, entries, f"not stored: {exc!r}")
                continue
            for index in message.indexes:
                self._write(modem, f"AT+CMGD={index},0")
            log_event(
                log,
                "gsm.received",
                modem=self.name,
                parts=len(message.indexes),
                complete=message.complete,
                tracking_number=accepted.tracking_number,
                spooled=accepted.spooled,
            )
        for index, sms in found.reports:
            if self.report is not None and sms.message_reference is not None:
                asyncio.run_coroutine_threadsafe(
                    self.report(self.name, sms.message_reference, sms.status or 0), self.loop
                ).result(timeout=self.common.command_timeout_seconds * 6)
            self._write(modem, f"AT+CMGD={index},0")

    def _storage(self, modem: _Modem) -> tuple[int, int]:
        for line in self._write(modem, "AT+CPMS?"):
            if line.startswith("+CPMS:"):
                fields = line.split(":", 1)[1].split(",")
                try:
                    return int(fields[1]), int(fields[2])
                except (IndexError, ValueError):
                    break
        return 0, 0

    def _set_aside(self, modem: _Modem, entries: list[Stored], reason: str) -> None:
        """Keep what could not become a letter on disk for inspection (fsynced), then free
        its SIM slots. One file per event, never overwritten: named by time and a random
        part, as several may be set aside in the same second."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{self.name}-{stamp}-{uuid.uuid4().hex[:12]}.pdu"
        path = Path(self.common.malformed_dir) / name
        pdus = "".join(f"{entry.pdu}\n" for entry in entries)
        write_durably(path, f"{pdus}# {reason}\n".encode())
        for entry in entries:
            self._write(modem, f"AT+CMGD={entry.index},0")
        self.set_aside += 1
        log_event(
            log, "gsm.malformed", logging.ERROR, modem=self.name, file=str(path), reason=reason
        )

    def _send_next(self, modem: _Modem) -> float:
        """Send the next queued SMS when the rate limit allows (carriers block modems that
        flood); the seconds until the loop should look again (a +CMTI wakes it sooner)."""
        interval = self.common.sweep_interval_seconds
        if self.outgoing.empty():
            return interval
        wait = self._last_send + 60 / self.common.send_per_minute - time.monotonic()
        if wait > 0:
            return min(wait, interval)
        job = self.outgoing.get()
        try:
            references = self._send(modem, job.number, job.text)
        except CommandError as exc:  # +CMS ERROR: the outbox retries later
            job.done.set_exception(exc)
        except (GsmModemException, SerialException, OSError) as exc:
            job.done.set_exception(exc)
            raise
        else:
            job.done.set_result(references)
        finally:
            self._last_send = time.monotonic()
        return 0

    def _send(self, modem: _Modem, number: str, text: str) -> list[int]:
        # PDU mode with the library's encoder: no AT+CSCS, which some modems lack.
        references: list[int] = []
        # One concatenation reference per message, so the phone joins the right parts.
        self._reference = (self._reference + 1) % 256
        for pdu in encodeSmsSubmitPdu(number, text, reference=self._reference):
            self._write(modem, f"AT+CMGS={pdu.tpduLength}", expectedResponseTermSeq="> ")
            reply = self._write(modem, str(pdu), writeTerm=CTRL_Z)
            for line in reply:
                if line.startswith("+CMGS:"):
                    references.append(int(line.split(":")[1]))
        return references

    def _log_status(self, modem: _Modem) -> None:
        try:
            signal = modem.signalStrength
            network = modem.networkName
        except (GsmModemException, ValueError):
            signal, network = -1, None
        self.signal = signal
        log_event(
            log,
            "gsm.connected",
            modem=self.name,
            device=self.device,
            signal=signal,
            network=network,
        )
