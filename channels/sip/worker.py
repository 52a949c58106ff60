"""A SIP worker process: one pjsua2 endpoint holding `calls_per_worker` calls, storing letters.

`hotline sip worker --index N` runs it; `hotline serve` keeps the pool running. With one
worker it listens on the SIP port itself; with more, each listens on its own loopback
port behind Kamailio, which then does the admission of sources and spreads the calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pjsua2 as pj

from channels.sip import recovery
from channels.sip.bridge import Bridge
from channels.sip.closing import ClosedFiles
from channels.sip.identity import parties
from channels.sip.kamailio import admitted_fronts
from channels.sip.line import Line, LineEvent, answer
from channels.sip.pjthread import PjThread
from channels.sip.pool import worker_addresses
from channels.sip.queueing import QueueCall, QueueLink
from channels.sip.registrations import RegistrarUnavailable, registered_seats
from channels.sip.session import CallFacts, CallSession
from gateway.contract import call_tokens
from gateway.contract.addresses import in_networks
from gateway.contract.call_tokens import CallTokenError
from gateway.contract.config import Config
from gateway.contract.contact import (
    CALL_RECORDING,
    Accept,
    Accepted,
    AttachFile,
    Attachment,
    Channel,
    RecordMissed,
)
from gateway.contract.kinds import TRANSCRIBE
from gateway.contract.limits import RateLimiter
from gateway.contract.logs import log_event
from gateway.core.callqueue import CallQueue
from gateway.engine.keys import load_secret
from ivr import flow
from ivr.call_letters import call_letter
from ivr.prompts import prompt_path

log = logging.getLogger(__name__)


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 ships no types
    def __init__(self, worker: SipWorker) -> None:
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: Any) -> None:
        self.worker.incoming(self, prm)


class SipWorker:
    def __init__(
        self,
        config: Config,
        index: int,
        accept: Accept,
        write_missed: RecordMissed,
        queue: CallQueue | None = None,
        attach: AttachFile | None = None,
    ) -> None:
        """``attach``: for the recordings of calls seats answered (acd.record_calls)."""
        self.config = config
        self.attach = attach
        self.settings = settings = config.channels.sip
        self.index = index
        self.accept = accept
        self.write_missed = write_missed
        self.host, self.port = worker_addresses(config)[index]
        # Behind Kamailio only Kamailio may call, from its forwarding socket (this node's, or
        # another node's that fronts this pool too): it checks the trunks' addresses and
        # strips identities they may not assert.
        self.fronts = frozenset() if settings.workers == 1 else admitted_fronts(settings, self.host)
        self.refusals = RateLimiter(settings.throttle_after_failures, 60)
        # The site's secret signs web calls' tokens (gateway/contract/call_tokens.py).
        web = config.channels.web
        self.web_secret = (
            load_secret(web.secret, web.secret_file) if settings.webcall.enabled else None
        )
        self.recordings = settings.recordings_dir / f"worker-{index}"
        self.closed: ClosedFiles | None = None
        self.pjsip = PjThread(
            name=f"pjsip-{index}", log_level=settings.log_level, user_agent=settings.user_agent
        )
        self.bridge = Bridge(self.pjsip)
        self.calls: dict[int, CallSession] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        # pjsua2 calls in use or promised. With the seats' queue each caller is taken with
        # two: theirs and the one to the seat's phone, should they ask for a person; a
        # worker never holds a caller it could not put through (docs/acd.md, Capacity).
        self.busy = 0
        self.per_caller = 2 if queue is not None else 1
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failed = False  # a loop the worker cannot run without died
        # The seats' call queue, with ivr.agent.queue: this worker's callers in it are known
        # by the machine and the worker's number, which a restarted worker keeps.
        owner = f"{socket.gethostname()}:sip-{index}"
        self.queue = (
            None
            if queue is None
            else QueueLink(queue, owner, self._registered, self.recordings / "queued", write_missed)
        )

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.closed = ClosedFiles(self.recordings)
        self.closed.start(self.loop)
        await self.recover()
        self.pjsip.start()
        ports = [
            self.pjsip.add_transport(t, self.host, self.port) for t in self.settings.transports
        ]
        await self.pjsip.run(self._create_account)
        if self.queue is not None:
            ticking = asyncio.create_task(self.queue.run(stop), name="queue")
            self.tasks.add(ticking)
            ticking.add_done_callback(self.tasks.discard)
            ticking.add_done_callback(lambda task: self._queue_ended(task, stop))
        log_event(log, "sip.worker.ready", index=self.index, host=self.host, port=ports[0])
        await stop.wait()
        for number in list(self.calls):
            await self.bridge.hang_up(number)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)
        self.pjsip.stop(before=self.bridge.hang_up_all)
        self.closed.stop()
        log_event(log, "sip.worker.stopped", index=self.index)

    def _create_account(self) -> None:
        config = pj.AccountConfig()
        config.idUri = f"sip:hotline@{self.host}:{self.port}"
        media = self.settings.media_address or self.settings.host
        if media not in ("0.0.0.0", "::", ""):
            config.mediaConfig.transportConfig.boundAddress = media
        # An answer naming several codecs would make pjsua re-INVITE to lock one; agents'
        # phones and trunks need not cope with that.
        config.mediaConfig.lockCodecEnabled = False
        account = _Account(self)
        account.create(config, True)
        self.bridge.account = account

    def _queue_ended(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        """The queue's loop ends only with the worker: if it died, so does the worker, with
        an error, and the pool restarts it (health shows it down meanwhile)."""
        if stop.is_set() or task.cancelled():
            return
        log.error("sip.queue.died index=%s", self.index, exc_info=task.exception())
        self.failed = True
        stop.set()

    def _registered(self) -> set[str] | None:
        """The seats whose phones are registered at this node's Kamailio; None when it does
        not answer (the queue then keeps what it knew) or does not run (one worker)."""
        if self.settings.workers == 1:
            return None
        try:
            return registered_seats(self.settings.kamailio.run_dir, timeout=1.0)
        except RegistrarUnavailable:
            log_event(log, "sip.queue.registrar_unavailable", logging.WARNING)
            return None

    def _seat_uri(self, seat: str) -> str:
        """A seat's phone, reached through Kamailio, where it registered."""
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "") else "127.0.0.1"
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"sip:{seat}@{host}:{self.settings.port}"

    # -- on the PJSIP thread -----------------------------------------------------------

    def incoming(self, account: pj.Account, prm: Any) -> None:
        assert self.loop is not None
        line = Line(account, prm.callId, self.loop, lambda e: None)
        number = self.bridge.adopt(line)
        line.on_event = lambda event: self._event(number, event)
        source, port = _host_port(str(prm.rdata.srcAddress))
        if not self._admitted(source, port):
            # One answer for every refused INVITE, whatever it asked for: nothing to probe.
            throttled = self.refusals.blocked(source)
            self.refusals.hit(source)
            if not throttled:
                log_event(log, "sip.refused", logging.WARNING, source=source)
            answer(line, 403)
            return
        # Behind Kamailio the identity was vetted there (RFC 3325 trust boundary).
        trusted = bool(self.fronts) or in_networks(source, self.settings.trusted_identity_sources)
        who = parties(str(prm.rdata.wholeMsg), trust_asserted=trusted)
        caller = who.caller
        web = who.web and bool(self.fronts)  # only Kamailio says so (it strips the header)
        if web:
            try:
                caller = self._web_caller(who.token)
            except CallTokenError as exc:
                log_event(log, "sip.webcall_refused", logging.WARNING, reason=str(exc))
                answer(line, 403)
                return
        with self.lock:
            full = self.busy + self.per_caller > self.settings.calls_per_worker
            if not full:
                self.busy += self.per_caller
        if full:
            log_event(log, "sip.busy", logging.WARNING, index=self.index)
            answer(line, 486)
            return
        call_id = str(line.getInfo().callIdString)
        facts = CallFacts(
            number, call_id, who.dialog or call_id, caller, who.called, time.time(), web
        )
        self.loop.call_soon_threadsafe(self._begin, facts)
        # 200 at once, no 180: Kamailio's processes may forward a 180 after the 200, and
        # an IVR has no ringing to announce.
        answer(line, 200)

    def _web_caller(self, token: str | None) -> str | None:
        """A browser's call needs the site's token (rate-limited there); the caller is the
        number the citizen typed on the page, or nobody: the From is the browser's."""
        if self.web_secret is None:
            raise CallTokenError("web calls are off (channels.sip.webcall)")
        if not token:
            raise CallTokenError("no token")
        webcall = self.settings.webcall
        return call_tokens.check(self.web_secret, token, webcall.token_seconds).phone

    def _source(self, facts: CallFacts) -> str:
        return self.settings.webcall.source if facts.web else self.settings.source

    def _admitted(self, source: str, port: int) -> bool:
        if not self.fronts:
            return in_networks(source, self.settings.allowed_sources)
        return (source, port) in self.fronts

    # -- on the asyncio loop ------------------------------------------------------------

    def _event(self, number: int, event: LineEvent) -> None:
        session = self.calls.get(number)
        if session is not None:
            session.post(event)

    def _begin(self, facts: CallFacts) -> None:
        local = datetime.now(UTC).astimezone(self.config.zone)
        session = CallSession(
            facts,
            self.bridge,
            self.config.ivr,
            lambda name: prompt_path(self.settings.prompts_dir, name),
            self.recordings,
            self.config.ivr.agent.available(local),
            self._outcome,
            None if self.queue is None else self._queue_call,
        )
        self.calls[facts.number] = session
        log_event(log, "sip.call", call=facts.call_id, index=self.index)
        task = asyncio.create_task(self._run(session), name=f"call-{facts.number}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _queue_call(self, session: CallSession) -> QueueCall:
        assert self.queue is not None
        recording = self.config.acd.record_calls and self.attach is not None
        return QueueCall(
            session, self.queue, self._seat_uri, self._keep_talk if recording else None
        )

    async def _keep_talk(self, session: CallSession, recording: Path) -> None:
        """The talk's recording onto the call's letter, once pjmedia closed it, without
        holding the call: the file stays on disk (and in the log) if it cannot be kept."""

        async def keep() -> None:
            assert self.attach is not None
            facts = session.facts
            data = await self._whole(recording)
            file = Attachment(CALL_RECORDING, "audio/wav", data)
            try:
                kept = await asyncio.to_thread(self.attach, self._source(facts), facts.dialog, file)
            except Exception:
                log.exception("sip.talk_not_kept call=%s file=%s", facts.call_id, recording.name)
                return
            if not kept:
                log_event(log, "sip.talk_not_kept", logging.ERROR, file=recording.name)
                return
            self._discard(recording)
            log_event(log, "sip.talk_kept", call=facts.call_id, seconds=recovery.wav_seconds(data))

        task = asyncio.create_task(keep())
        self.tasks.add(task)  # a stopping worker lets it finish
        task.add_done_callback(self.tasks.discard)

    async def _run(self, session: CallSession) -> None:
        try:
            await session.run()
        except Exception:
            log.exception("sip.call_failed call=%s", session.facts.call_id)
            await self.bridge.hang_up(session.facts.number, 500)
        finally:
            self.calls.pop(session.facts.number, None)
            with self.lock:
                self.busy -= self.per_caller

    async def _outcome(
        self, facts: CallFacts, action: flow.Outcome, recording: Path | None, seconds: float
    ) -> flow.Stored | None:
        if isinstance(action, flow.MarkMissed):
            await asyncio.to_thread(
                self.write_missed, facts.dialog, facts.caller, facts.called, action.reason
            )
            if recording is not None:
                self._discard(recording)
            return None
        if isinstance(action, flow.StoreAgentStub):
            await self._store(facts, None, None, seconds)
            return None
        assert recording is not None
        if not action.tell_number:  # the caller hung up: nobody waits for the number
            await self._keep(facts, action.category, recording)
            return None
        keeping = asyncio.create_task(self._keep_or_log(facts, action.category, recording))
        self.tasks.add(keeping)  # a stopping worker lets it finish
        keeping.add_done_callback(self.tasks.discard)
        return await self._in_time(facts, keeping)

    async def _keep(self, facts: CallFacts, category: str, recording: Path) -> Accepted:
        data = await self._whole(recording)
        accepted = await self._store(facts, category, data, recovery.wav_seconds(data))
        self._discard(recording)
        return accepted

    async def _keep_or_log(
        self, facts: CallFacts, category: str, recording: Path
    ) -> Accepted | None:
        try:
            return await self._keep(facts, category, recording)
        except Exception:
            # The recording and its note stay on disk: recovery stores them at the next start.
            log.exception("sip.store_failed call=%s", facts.call_id)
            return None

    async def _in_time(
        self, facts: CallFacts, keeping: asyncio.Task[Accepted | None]
    ) -> flow.Stored | None:
        """What intake answered, if it answered within ``number_timeout_seconds``: a slow
        store (the database down, the spool) keeps nobody on the line, and a caller who is
        told the number later is never told a wrong one. The store itself runs on."""
        started = time.monotonic()
        timeout = self.config.ivr.voicemail.number_timeout_seconds
        try:
            accepted = await asyncio.wait_for(asyncio.shield(keeping), timeout)
        except TimeoutError:
            log_event(log, "sip.number_late", logging.WARNING, call=facts.call_id)
            return None
        if accepted is None or accepted.tracking_number is None:
            return None  # failed (logged) or spooled (sip.stored says so): no number yet
        log_event(
            log,
            "sip.number_ready",
            call=facts.call_id,
            tracking_number=accepted.tracking_number,
            seconds=round(time.monotonic() - started, 3),
        )
        return flow.Stored(accepted.tracking_number, accepted.verification_code)

    async def _whole(self, recording: Path) -> bytes:
        """The recording once pjmedia has written its last samples and closed it."""
        assert self.closed is not None
        timeout = self.settings.recording_close_timeout_seconds
        if not await self.closed.wait(recording, timeout):
            # Stored as far as it got rather than lost; the log says it may be short.
            log_event(log, "sip.recording_not_closed", logging.ERROR, file=recording.name)
        # The header is made from the audio: right for a closed file and a cut one alike.
        return await asyncio.to_thread(recovery.repaired, recording)

    def _discard(self, recording: Path) -> None:
        if self.closed is not None:
            self.closed.forget(recording)
        recovery.discard(recording)

    async def _store(
        self,
        facts: CallFacts,
        category: str | None,
        wav: bytes | None,
        seconds: float,
    ) -> Accepted:
        raw = {"called": facts.called, "seconds": round(seconds, 3), "call_id": facts.call_id}
        contact = call_letter(
            self._source(facts),
            facts.dialog,
            datetime.fromtimestamp(facts.started, UTC),
            facts.caller,
            category,
            voicemail=wav is not None,
            attachments=(Attachment("voicemail.wav", "audio/wav", wav),) if wav else (),
            jobs=(TRANSCRIBE,) if wav else (),
            raw=json.dumps(raw, ensure_ascii=False),
            channel=Channel.WEBCALL if facts.web else Channel.PHONE,
        )
        accepted = await self.accept(contact)
        log_event(
            log,
            "sip.stored",
            call=facts.call_id,
            tracking_number=accepted.tracking_number,
            spooled=accepted.spooled,
        )
        return accepted

    async def recover(self) -> None:
        """Store what a killed predecessor recorded (as far as it got)."""
        for left in recovery.leftovers(self.recordings):
            note = left.note
            facts = CallFacts(
                -1,
                note["call_id"],
                note.get("dialog") or note["call_id"],
                note.get("caller"),
                note.get("called"),
                float(note.get("started") or time.time()),
                bool(note.get("web")),
            )
            seconds = left.seconds
            if seconds < self.config.ivr.voicemail.min_seconds:
                await asyncio.to_thread(
                    self.write_missed, facts.dialog, facts.caller, facts.called, "short_recording"
                )
            else:
                wav = await asyncio.to_thread(recovery.repaired, left.wav)
                await self._store(facts, note.get("category") or "other", wav, seconds)
            recovery.discard(left.wav)
            log_event(log, "sip.recovered", call=facts.call_id, seconds=round(seconds, 1))


def _host_port(address: str) -> tuple[str, int]:
    """pjsip's "1.2.3.4:5060" or "[::1]:5060"."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0
