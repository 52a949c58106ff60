"""A SIP worker's side of the seats' call queue (gateway/core/callqueue.py, docs/acd.md).

``QueueLink`` is the worker's one link to the queue: it says the worker is alive, gives up a
dead worker's callers, ticks the queue's timers and hands each action to the call it is
for. ``QueueCall`` is one caller's wait, performing those actions on the line: the hold
prompt, their position, ringing the seat the queue chose (through Kamailio, where the
seat's phone registered) and bridging the two once the seat answers.

A bridged caller holds two of the worker's pjsua2 calls; docs/acd.md says what that costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from channels.sip.bridge import NoFreeLine
from channels.sip.line import Connected, Disconnected, LineEvent
from channels.sip.session import CallSession, HungUp
from gateway.contract.contact import RecordMissed
from gateway.contract.logs import log_event
from gateway.core import acd
from gateway.core.callqueue import CallQueue
from ivr import flow
from ivr.menu import PromptName

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5  # ring timeouts, the maximum wait and positions are this late at most
HOLD_PAUSE_SECONDS = 1.0  # between two plays of the hold prompt
MESSAGE_KEY = "1"  # after the maximum wait: 1 a message; anything else, or none, a callback
CHOICE_SECONDS = 8.0  # to press it
# How long an offer waits for a call slot of this worker to come free, and how often it looks.
SLOT_WAIT_SECONDS, SLOT_POLL_SECONDS = 3.0, 0.1
_AHEAD: dict[int, PromptName] = {
    1: "ahead_1",
    2: "ahead_2",
    3: "ahead_3",
    4: "ahead_4",
    5: "ahead_5",
    6: "ahead_6",
    7: "ahead_7",
    8: "ahead_8",
    9: "ahead_9",
}
Registered = Callable[[], set[str] | None]  # the registrar's seats; None: not known now
# Keeps a talk's recording with the call's letter (the worker's: its file, its store).
KeepTalk = Callable[[CallSession, Path], Awaitable[None]]


@dataclass(frozen=True)
class SeatLine:
    """An event on the call to the seat's phone."""

    number: int
    event: LineEvent


Item = acd.Action | SeatLine


class QueueLink:
    """``notes``: a file per waiting caller (who called), so the callers a killed worker
    held are put on the callback list by the worker started in its place."""

    def __init__(
        self,
        queue: CallQueue,
        owner: str,
        registered: Registered,
        notes: Path,
        missed: RecordMissed,
    ) -> None:
        self.queue = queue
        self.owner = owner
        self.registered = registered
        self.notes = notes
        self.missed = missed
        self.inboxes: dict[str, asyncio.Queue[Item]] = {}
        # Events the queue must learn (a caller gone, a talk over) that found the database
        # down: told again, in order, at each tick, so no seat stays taken.
        self.owed: list[acd.Event] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: the calls a predecessor of this name held are given up first,
        and their callers are owed a callback; then a tick while this worker has callers
        in the queue (an idle worker costs the database and Kamailio nothing)."""
        restarted = False
        while not stop.is_set():
            try:
                if not restarted:
                    await self._restart()
                    restarted = True
                elif self.inboxes or self.owed:
                    await self._tick()
            except Exception:  # the database down: the calls wait, the next tick tries again
                log.exception("sip.queue.tick_failed owner=%s", self.owner)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_SECONDS)

    async def _restart(self) -> None:
        lost = await asyncio.to_thread(self.queue.restart, self.owner)
        await asyncio.to_thread(self._owe_callbacks)
        if lost:
            log_event(log, "sip.queue.restarted", logging.WARNING, lost=len(lost))

    async def _tick(self) -> None:
        while self.owed:
            self._hand_out(await asyncio.to_thread(self.queue.handle, self.owed[0], self.owner))
            self.owed.pop(0)
        registered = await asyncio.to_thread(self.registered)
        lost = await asyncio.to_thread(self.queue.sweep, registered=registered)
        if lost:
            log_event(log, "sip.queue.swept", logging.WARNING, lost=len(lost))
        tick = acd.Tick(self.queue.now())
        actions = await asyncio.to_thread(
            self.queue.handle, tick, self.owner, registered=registered
        )
        self._hand_out(actions)

    async def send(self, event: acd.Event) -> list[acd.Action]:
        """Step the queue with this worker's event; every action is handed to its call, and
        returned. A joining caller brings the registrar's seats with them: an idle worker
        does not tick, so the queue's copy may be old, and a seat whose phone signed off
        while no one waited would be offered the call (and marked not answering)."""
        registered = None
        if isinstance(event, acd.CallerJoined):
            registered = await asyncio.to_thread(self.registered)
        actions = await asyncio.to_thread(
            self.queue.handle, event, self.owner, registered=registered
        )
        self._hand_out(actions)
        return actions

    async def tell(self, event: acd.Event) -> None:
        """An event the queue must learn but nobody waits on: sent now, or at a later tick
        if the database is down (the worker's log says so)."""
        if not self.owed:
            try:
                await self.send(event)
                return
            except Exception:
                log.exception("sip.queue.told_later owner=%s", self.owner)
        self.owed.append(event)

    def join(self, call_id: str, who: dict[str, str | None]) -> asyncio.Queue[Item]:
        inbox: asyncio.Queue[Item] = asyncio.Queue()
        self.inboxes[call_id] = inbox
        self.notes.mkdir(parents=True, exist_ok=True)
        self._note(call_id).write_text(json.dumps(who, ensure_ascii=False), "utf-8")
        return inbox

    def leave(self, call_id: str) -> None:
        """The caller is out of the queue (put through, chose, hung up): no callback owed."""
        self.inboxes.pop(call_id, None)
        self._note(call_id).unlink(missing_ok=True)

    def leave_queue(self, call_id: str) -> None:
        """Put through: the call's events still come here, but no callback is owed."""
        self._note(call_id).unlink(missing_ok=True)

    def _note(self, call_id: str) -> Path:
        return self.notes / f"{hashlib.sha256(call_id.encode()).hexdigest()[:32]}.json"

    def _owe_callbacks(self) -> None:
        for note in sorted(self.notes.glob("*.json")):
            try:
                who = json.loads(note.read_text("utf-8"))
                self.missed(who["dialog"], who.get("caller"), who.get("called"), "lost")
            except (OSError, ValueError, KeyError, TypeError):
                log.exception("sip.queue.note_unreadable file=%s", note.name)
                continue
            note.unlink(missing_ok=True)

    def _hand_out(self, actions: list[acd.Action]) -> None:
        for action in actions:
            inbox = self.inboxes.get(getattr(action, "call_id", ""))
            if inbox is not None:
                inbox.put_nowait(action)


class QueueCall:
    """One caller in the queue, from ``Enqueue`` to ``QueueEnded`` or a hang-up, and then,
    if a seat answered, their talk until one of them hangs up."""

    def __init__(
        self,
        session: CallSession,
        link: QueueLink,
        seat_uri: Callable[[str], str],
        keep_talk: KeepTalk | None = None,
    ) -> None:
        """``keep_talk``: record each talk (acd.record_calls) and keep it this way."""
        self.session = session
        self.link = link
        self.seat_uri = seat_uri
        self.keep_talk = keep_talk
        self.recording: Path | None = None
        self.call_id = session.facts.dialog  # the letter's key: the desk finds it by this
        self.seat: str | None = None  # offered or talking
        self.leg: int | None = None  # the call to that seat's phone
        facts = session.facts
        who = {"dialog": facts.dialog, "caller": facts.caller, "called": facts.called}
        self.inbox = link.join(self.call_id, who)  # the queue's actions and the seat's line

    async def wait(self, enqueue: flow.Enqueue) -> flow.Event:
        try:
            await self.link.send(acd.CallerJoined(self.call_id, enqueue.priority, self._at()))
        except Exception:  # the queue's database is down: a message, not a dead line
            log.exception("sip.queue.join_failed call=%s", self.session.facts.call_id)
            self._leave()
            return flow.QueueEnded("message")
        try:
            if self.keep_talk is not None:
                await self.session._play("recording_notice")
            return await self._waiting()
        except HungUp:
            self._leave()
            await self._drop_offer()
            await self.link.tell(acd.CallerHungUp(self.call_id, self._at()))
            return flow.HungUp()
        except BaseException:
            self._leave()  # whatever cut the wait short, the worker's log says why
            raise
        finally:
            await self.session.bridge.stop_playing(self.session.facts.number)

    async def talk(self) -> flow.Event:
        """Bridged until either side hangs up; the seat is then free for the next caller."""
        with contextlib.suppress(HungUp):
            while True:
                item = await self.session._until_gone(self.inbox.get())
                seat_hung_up = isinstance(item, SeatLine) and isinstance(item.event, Disconnected)
                if seat_hung_up and item.number == self.leg:
                    break
        assert self.leg is not None and self.seat is not None
        if self.recording is not None and self.keep_talk is not None:
            for number in (self.session.facts.number, self.leg):
                await self.session.bridge.stop_recording(number)
            await self.keep_talk(self.session, self.recording)
        await self.session.bridge.hang_up(self.leg)
        await self.link.tell(acd.CallEnded(self.call_id, self.seat, self._at()))
        self._leave()
        log_event(log, "sip.queue.talk_ended", call=self.session.facts.call_id, seat=self.seat)
        return flow.TalkEnded()

    async def _waiting(self) -> flow.Event:
        loop = asyncio.get_running_loop()
        hold_ends = 0.0
        while True:
            if loop.time() >= hold_ends:
                hold_ends = loop.time() + await self._hold() + HOLD_PAUSE_SECONDS
            try:
                item = await self.session._until_gone(
                    self.inbox.get(), timeout=max(hold_ends - loop.time(), 0.05)
                )
            except TimeoutError:
                continue
            match item:
                case acd.AnnouncePosition(ahead=ahead):
                    await self._announce(ahead)
                    hold_ends = 0.0
                case acd.Offer(seat_id=seat):
                    await self._offer(seat, loop)
                case acd.CancelOffer(seat_id=seat) if seat == self.seat:
                    await self._drop_offer()
                case SeatLine(number=number, event=event) if number == self.leg:
                    if isinstance(event, Connected) and await self._answered():
                        return flow.QueueEnded("answered")
                    if isinstance(event, Disconnected):
                        await self._refused(event.status)
                case acd.OfferMessageOrCallback():
                    return await self._choose()
                case acd.MarkMissed():
                    # Given up by the queue: this worker was taken for dead. A callback, so
                    # the caller is not left without an answer.
                    await self._drop_offer()
                    self._leave()
                    return flow.QueueEnded("callback")

    async def _hold(self) -> float:
        number = self.session.facts.number
        await self.session.bridge.stop_playing(number)
        return await self.session.bridge.play(number, self.session.prompts("queue_hold"))

    async def _announce(self, ahead: int) -> None:
        if ahead <= 0:
            return
        await self.session.bridge.stop_playing(self.session.facts.number)
        await self.session._play(_AHEAD.get(ahead, "ahead_many"))

    async def _offer(self, seat: str, loop: asyncio.AbstractEventLoop) -> None:
        self.seat = seat
        waited = 0.0
        while True:
            try:
                self.leg = await self.session.bridge.dial(
                    self.seat_uri(seat), lambda n, e: self.inbox.put_nowait(SeatLine(n, e)), loop
                )
                break
            except RuntimeError as exc:
                # A leg to a seat offered before, still being torn down (its CANCEL not
                # answered yet), may hold the slot this one needs: free within a round
                # trip. The seat now offered is not to blame for that.
                if isinstance(exc, NoFreeLine) and waited < SLOT_WAIT_SECONDS:
                    # A caller hanging up meanwhile ends the wait: no seat rings for them.
                    await self.session._until_gone(asyncio.sleep(SLOT_POLL_SECONDS))
                    waited += SLOT_POLL_SECONDS
                    continue
                log.warning("sip.queue.dial_failed call=%s error=%s", self.call_id, exc)
                await self._refused(None)
                return
        log_event(log, "sip.queue.offered", call=self.session.facts.call_id, seat=seat)

    async def _answered(self) -> bool:
        """The seat picked up: the queue says whether the offer still stands (a ring timeout
        may have withdrawn it a moment before); if it does, caller and seat are bridged."""
        assert self.seat is not None and self.leg is not None
        actions = await self.link.send(acd.OfferAnswered(self.call_id, self.seat, self._at()))
        if not any(isinstance(a, acd.Connected) and a.call_id == self.call_id for a in actions):
            await self._drop_offer()
            return False
        self.link.leave_queue(self.call_id)
        await self.session.bridge.stop_playing(self.session.facts.number)
        await self.session.bridge.connect(self.session.facts.number, self.leg)
        if self.keep_talk is not None:
            facts = self.session.facts
            path = self.session.recordings / f"talk-{int(facts.started * 1000)}-{facts.number}.wav"
            if await self.session.bridge.record_talk(facts.number, self.leg, path):
                self.recording = path
        log_event(log, "sip.queue.answered", call=self.session.facts.call_id, seat=self.seat)
        return True

    async def _refused(self, status: int | None) -> None:
        """The seat's phone rejected, failed or rang out: the queue offers the next seat."""
        seat, self.seat, self.leg = self.seat, None, None
        if seat is None:
            return
        log_event(log, "sip.queue.not_answered", call=self.call_id, seat=seat, status=status)
        await self.link.send(acd.OfferTimedOut(self.call_id, seat, self._at()))

    async def _drop_offer(self) -> None:
        if self.leg is not None:
            await self.session.bridge.hang_up(self.leg, 487)
        self.seat, self.leg = None, None

    async def _choose(self) -> flow.Event:
        """Past the maximum wait: a message (1) or a callback (anything else, or silence;
        a hang-up now is a callback too, the caller waited long enough to be owed one)."""
        await self.session.bridge.stop_playing(self.session.facts.number)
        self.session._clear_digits()  # a key pressed while waiting is no choice
        gathered = await self.session._gather(flow.Gather(("queue_choice",), CHOICE_SECONDS))
        choice: acd.Choice = (
            "message"
            if isinstance(gathered, flow.Digit) and gathered.digit == MESSAGE_KEY
            else "callback"
        )
        await self.link.send(acd.CallerChose(self.call_id, choice, self._at()))
        self._leave()
        return flow.QueueEnded(choice)

    def _leave(self) -> None:
        """Out of the queue for good (hung up, chose, talked): no callback owed for it."""
        self.link.leave(self.call_id)

    def _at(self) -> float:
        return self.link.queue.now()
