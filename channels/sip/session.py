"""One call through the IVR: ivr/flow.py decides, this performs its actions on pjsua2.

Waits race the caller's hang-up: a hang-up while recording ends the recording (what was
said is kept), once an agent has answered it ends the bridge, anywhere else it is a
missed call. The recording goes to disk as it is made, with a note beside it naming the
call, so a worker killed mid-message leaves something ``recovery`` can still store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.sip.bridge import FRAME_SECONDS, Bridge
from channels.sip.line import Connected, Disconnected, DtmfDigit, LineEvent, MediaReady
from ivr import flow
from ivr.menu import IvrConfig

if TYPE_CHECKING:
    from channels.sip.queueing import QueueCall

log = logging.getLogger(__name__)
# The caller's level (0-255) under which the line counts as silent while recording.
SILENCE_LEVEL = 2  # speech measured 7-13 on G.711 from SIPp's sample message
LEVEL_POLL_SECONDS = 0.2
# The longest a key waits for the jitter buffer to empty (pjmedia's buffer holds < 0.5 s).
DRAIN_LIMIT_SECONDS = 1.0


@dataclass(frozen=True)
class CallFacts:
    number: int  # the bridge's own number for the call in this worker
    call_id: str  # SIP Call-ID, for the logs
    dialog: str  # the letter's idempotency key (identity.dialog_key)
    caller: str | None
    called: str | None
    started: float  # time.time() when answered
    web: bool = False  # 网上呼叫: from a browser, through Kamailio and rtpengine


class HungUp(Exception):
    """The caller hung up while we waited."""


# What the worker does with an outcome: store a voicemail, a stub, or a missed call. For a
# voicemail whose number the caller is to hear, what intake answered in time, else None.
Outcomes = Callable[[CallFacts, flow.Outcome, Path | None, float], Awaitable[flow.Stored | None]]
# The seats' call queue for a session (channels/sip/queueing.py); None without one.
Queueing = Callable[["CallSession"], "QueueCall"] | None


class CallSession:
    def __init__(
        self,
        facts: CallFacts,
        bridge: Bridge,
        ivr: IvrConfig,
        prompts: Callable[[str], Path],
        recordings: Path,
        agents_available: bool,
        outcomes: Outcomes,
        queueing: Queueing = None,
    ) -> None:
        self.facts = facts
        self.bridge = bridge
        self.ivr = ivr
        self.prompts = prompts
        self.recordings = recordings
        self.agents_available = agents_available
        self.outcomes = outcomes
        self.queueing = queueing
        self.queued: QueueCall | None = None
        self.events: asyncio.Queue[LineEvent] = asyncio.Queue()
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.media = asyncio.Event()
        self.state = flow.start()
        self.recording: Path | None = None
        self.recorded_seconds = 0.0

    def post(self, event: LineEvent) -> None:
        if isinstance(event, DtmfDigit):
            self.digits.put_nowait(event.digit)
        elif isinstance(event, Disconnected):
            self.gone.set()
        elif isinstance(event, MediaReady):
            self.media.set()

    async def run(self) -> None:
        state = self.state
        try:
            await self._until_gone(self.media.wait(), timeout=10)
            # Dialled at the seats' queue entry (Twilio hands its callers over there) or a
            # priority line.
            agent, called = self.ivr.agent, self.facts.called or ""
            to_person = agent.queue and (called == agent.queue_entry or called in agent.lines)
            event: flow.Event = flow.Answered(
                self.agents_available, to_person, agent.lines.get(called, "normal")
            )
        except (HungUp, TimeoutError):
            event = flow.HungUp()
        while True:
            state, actions = flow.step(self.ivr, state, event)
            self.state = state
            next_event = await self._perform(actions)
            if next_event is None:
                break
            event = next_event
        await self.bridge.hang_up(self.facts.number)

    async def _perform(self, actions: tuple[flow.Action, ...]) -> flow.Event | None:
        """Do the actions in order: the event their wait produced, or None at the end."""
        for action in actions:
            if isinstance(action, flow.StoreVoicemail | flow.StoreAgentStub | flow.MarkMissed):
                stored = await self.outcomes(
                    self.facts, action, self.recording, self.recorded_seconds
                )
                if isinstance(action, flow.StoreVoicemail) and action.tell_number:
                    if self.gone.is_set():
                        return flow.HungUp()
                    return stored or flow.Stored(None, None)
            elif isinstance(action, flow.Play):
                if self.gone.is_set():
                    continue  # a number's thirty-odd prompts to nobody
                with contextlib.suppress(HungUp):
                    await self._play(action.prompt)
            elif isinstance(action, flow.Gather):
                return await self._gather(action)
            elif isinstance(action, flow.Record):
                return await self._record(action)
            elif isinstance(action, flow.Transfer):
                return await self._transfer(action)
            elif isinstance(action, flow.Enqueue):
                if self.queueing is None:  # no queue in this worker: a message, not silence
                    return flow.QueueEnded("message")
                self.queued = self.queueing(self)
                return await self.queued.wait(action)
            elif isinstance(action, flow.Talk):
                assert self.queued is not None
                return await self.queued.talk()
            elif isinstance(action, flow.Hangup):
                return None
        # No wait among them: the flow is done with the call (a live call always ends its
        # reply with one wait).
        return None

    # -- waits -------------------------------------------------------------------------

    async def _until_gone(self, waited: Awaitable[Any], timeout: float | None = None) -> Any:
        task = asyncio.ensure_future(waited)
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            done, _ = await asyncio.wait(
                {task, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if gone in done:
            raise HungUp
        raise TimeoutError

    async def _play(self, prompt: str) -> None:
        seconds = await self.bridge.play(self.facts.number, self.prompts(prompt))
        try:
            await self._until_gone(asyncio.sleep(seconds))
        finally:
            await self.bridge.stop_playing(self.facts.number)

    async def _gather(self, gather: flow.Gather) -> flow.Event:
        """Play the prompts; a digit stops them (barge-in), then wait for one. A key
        pressed before the menu began counts: callers who know the menu type ahead."""
        try:
            for prompt in gather.prompts:
                seconds = await self.bridge.play(self.facts.number, self.prompts(prompt))
                try:
                    digit = await self._until_gone(self.digits.get(), timeout=seconds)
                    return flow.Digit(digit)
                except TimeoutError:
                    continue
                finally:
                    await self.bridge.stop_playing(self.facts.number)
            digit = await self._until_gone(self.digits.get(), timeout=gather.timeout_seconds)
            return flow.Digit(digit)
        except TimeoutError:
            return flow.NoInput()
        except HungUp:
            return flow.HungUp()

    async def _record(self, record: flow.Record) -> flow.Event:
        with contextlib.suppress(HungUp):
            await self._play("beep")
        if self.gone.is_set():
            return flow.RecordingEnded(0, "hangup")
        # Named by the worker's own call number and time: two callers may send one Call-ID.
        path = self.recordings / f"{int(self.facts.started * 1000)}-{self.facts.number}.wav"
        self._write_note(path)
        self._clear_digits()
        started = time.monotonic()
        if not await self.bridge.record(self.facts.number, path):
            return flow.RecordingEnded(0, "hangup")
        self.recording = path
        reason = await self._recording_ends(record)
        self.recorded_seconds = time.monotonic() - started
        await self.bridge.stop_recording(self.facts.number)
        return flow.RecordingEnded(self.recorded_seconds, reason, tell_number=True)

    async def _recording_ends(self, record: flow.Record) -> flow.RecordingEndReason:
        deadline = time.monotonic() + record.max_seconds
        quiet_since = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "max"
            try:
                digit = await self._until_gone(
                    self.digits.get(), timeout=min(LEVEL_POLL_SECONDS, left)
                )
                if digit == record.finish_key:
                    with contextlib.suppress(HungUp):
                        await self._until_gone(self._drain())
                    return "key"
            except HungUp:
                return "hangup"
            except TimeoutError:
                pass
            if await self.bridge.level(self.facts.number) > SILENCE_LEVEL:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= record.silence_seconds:
                return "silence"

    async def _drain(self) -> None:
        """What was said just before the key is still in the jitter buffer (RFC 4733 events
        skip it): wait until the bridge has taken its last frame, then one tick more for the
        recorder to get it. Polled, not estimated once: a busy machine's bridge clock runs
        late, and a one-shot wait cut the last frame of a message (CI, once)."""
        limit = time.monotonic() + DRAIN_LIMIT_SECONDS
        while time.monotonic() < limit:
            buffered = await self.bridge.buffered_seconds(self.facts.number)
            if buffered <= 0:
                break
            await asyncio.sleep(buffered)
        await asyncio.sleep(2 * FRAME_SECONDS)

    async def _transfer(self, transfer: flow.Transfer) -> flow.Event:
        """Bridged: we call the agent and connect the two legs (REFER is not honoured by
        every trunk). Busy, no answer or failure comes back for the voicemail."""
        agent_events: asyncio.Queue[LineEvent] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        try:
            agent = await self.bridge.dial(
                transfer.uri, lambda _n, e: agent_events.put_nowait(e), loop
            )
        except RuntimeError as exc:
            log.warning("sip.transfer_failed call=%s error=%s", self.facts.call_id, exc)
            return flow.TransferEnded("failed")
        try:
            outcome = await self._agent_answers(agent_events, transfer.timeout_seconds)
        except HungUp:
            await self.bridge.hang_up(agent, 487)
            return flow.HungUp()
        if outcome != "answered":
            await self.bridge.hang_up(agent, 487)
            return flow.TransferEnded(outcome)
        await self.bridge.connect(self.facts.number, agent)
        with contextlib.suppress(HungUp):
            await self._until_gone(_until_disconnected(agent_events))
        await self.bridge.hang_up(agent)
        return flow.TransferEnded("answered")

    async def _agent_answers(
        self, events: asyncio.Queue[LineEvent], timeout: float
    ) -> flow.TransferOutcome:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "no_answer"
            try:
                event = await self._until_gone(events.get(), timeout=left)
            except TimeoutError:
                return "no_answer"
            if isinstance(event, Connected):
                return "answered"
            if isinstance(event, Disconnected):
                return (
                    "busy"
                    if event.status in (486, 600)
                    else ("no_answer" if event.status in (408, 480, 487) else "failed")
                )

    def _clear_digits(self) -> None:
        while not self.digits.empty():
            self.digits.get_nowait()

    def _write_note(self, wav: Path) -> None:
        """Beside the recording: whose call it is, for recovery after a crash."""
        note = {
            "call_id": self.facts.call_id,
            "dialog": self.facts.dialog,
            "caller": self.facts.caller,
            "called": self.facts.called,
            "category": self.state.category,
            "started": self.facts.started,
            "web": self.facts.web,
        }
        wav.with_suffix(".json").write_text(json.dumps(note, ensure_ascii=False), "utf-8")


async def _until_disconnected(events: asyncio.Queue[LineEvent]) -> None:
    while not isinstance(await events.get(), Disconnected):
        pass
