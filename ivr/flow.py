"""The IVR call flow, shared by the SIP and Twilio channels. Pure: events in, actions out.

A channel starts with ``start()``, feeds each event to ``step()``, performs the actions in
order and keeps the new state (in memory for SIP, in the callback URL for Twilio, via
``CallState.encode``). Each reply ends with at most one wait — ``Gather``, ``Record``,
``Transfer``, ``Enqueue`` or ``Talk`` — whose result is the next event; a call that reaches
"done" has had exactly one outcome (``StoreVoicemail``, ``StoreAgentStub`` or ``MarkMissed``),
but for one handed over to the SIP side's queue (``QueueEnded("handed_over")``), whose
call there has it.

A channel that can tell the caller their letter's number says so in ``RecordingEnded``
(``tell_number``); the voicemail is then stored while the call is up, a
``StoreVoicemail(tell_number=True)`` ends the reply as its wait, and the channel answers
with ``Stored`` (what intake gave, or nothing if it was not stored in time).

Contract for hang-ups: a hang-up during ``Record`` is reported as
``RecordingEnded(reason="hangup")`` (what was recorded is kept), and once an agent has
answered a ``Transfer`` as ``TransferEnded("answered")``, whoever hangs up. A seat that answers
an ``Enqueue`` gives ``QueueEnded("answered")``: the call's letter is stored then, for the
operator's screen, and ``Talk`` waits for either side to hang up (``TalkEnded``). Any other
hang-up is ``HungUp()`` (while storing, in place of ``Stored``). Events that make no sense
in a state are ignored, never raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal, get_args

from ivr.menu import CATEGORIES, Category, IvrConfig, PromptName

Step = Literal["start", "menu", "recording", "storing", "transfer", "queue", "talking", "done"]
STEPS: tuple[Step, ...] = get_args(Step)
RecordingEndReason = Literal["key", "silence", "max", "hangup"]
TransferOutcome = Literal["answered", "busy", "no_answer", "failed"]
# How a wait in the call queue (gateway/core/acd.py) ended, if the caller is still there:
# a seat answered, or past the maximum wait the caller chose a message or a callback; or
# the call was handed over whole to the SIP side's queue (Twilio), which stores its outcome.
QueueOutcome = Literal["answered", "message", "callback", "handed_over"]
MissedReason = Literal[
    "hung_up_before_answer",
    "hung_up_in_menu",
    "hung_up_in_transfer",
    "short_recording",
    "abandoned",
    "queue_timeout",
]


# Events


@dataclass(frozen=True)
class Answered:
    agents_available: bool  # from IvrConfig.agent.available() and the channel's clock
    # The call came in for a person straight away (the seats' queue entry, which Twilio
    # dials for its callers, or a priority line): no greeting, no menu; in the queue as
    # ``priority``.
    to_person: bool = False
    priority: str = "normal"


@dataclass(frozen=True)
class Digit:
    digit: str


@dataclass(frozen=True)
class NoInput:
    pass


@dataclass(frozen=True)
class RecordingEnded:
    seconds: float
    reason: RecordingEndReason
    # The channel will answer the StoreVoicemail with Stored and play the number (SIP).
    tell_number: bool = False


@dataclass(frozen=True)
class Stored:
    """The voicemail's letter as intake answered it; both None when it is not known in time
    (spooled while the database is down, too slow, failed: the recording is kept)."""

    tracking_number: str | None
    verification_code: str | None


@dataclass(frozen=True)
class TransferEnded:
    outcome: TransferOutcome


@dataclass(frozen=True)
class QueueEnded:
    outcome: QueueOutcome


@dataclass(frozen=True)
class TalkEnded:
    """The caller and the seat were talking and one of them hung up."""


@dataclass(frozen=True)
class HungUp:
    pass


Event = (
    Answered
    | Digit
    | NoInput
    | RecordingEnded
    | Stored
    | TransferEnded
    | QueueEnded
    | TalkEnded
    | HungUp
)


# Actions: what the channel does, in order


@dataclass(frozen=True)
class Play:
    prompt: PromptName


@dataclass(frozen=True)
class Gather:
    """Play the prompts, interruptible by a key; the first key is a Digit, none a NoInput."""

    prompts: tuple[PromptName, ...]
    timeout_seconds: float


@dataclass(frozen=True)
class Record:
    """A tone, then record until the finish key, silence or the maximum: RecordingEnded."""

    max_seconds: float
    silence_seconds: float
    finish_key: str


@dataclass(frozen=True)
class Transfer:
    uri: str
    timeout_seconds: float


@dataclass(frozen=True)
class Enqueue:
    """Wait in the city-wide call queue for a seat (hold prompt, position), until
    ``QueueEnded`` or a hang-up (``HungUp``: the caller abandoned)."""

    priority: str


@dataclass(frozen=True)
class Talk:
    """The caller and the seat that answered are bridged until one hangs up: TalkEnded."""


@dataclass(frozen=True)
class Hangup:
    pass


# Outcomes: what the channel stores, before it plays anything that follows


@dataclass(frozen=True)
class StoreVoicemail:
    category: Category
    # A wait: the channel answers with Stored once intake has (or the time is up).
    tell_number: bool = False


@dataclass(frozen=True)
class StoreAgentStub:
    """A letter for the transferred call (caller, time, call id) that the agent completes."""


@dataclass(frozen=True)
class MarkMissed:
    """Onto the missed-call callback list (漏接回拨)."""

    reason: MissedReason


Outcome = StoreVoicemail | StoreAgentStub | MarkMissed
Action = Play | Gather | Record | Transfer | Enqueue | Talk | Hangup | Outcome

_STEP_NAMED: dict[str, Step] = {name: name for name in STEPS}
_CATEGORY_NAMED: dict[str, Category | None] = {"-": None} | {name: name for name in CATEGORIES}
_NUMBER = r"(0|[1-9][0-9]{0,2})"
_ENCODED = re.compile(
    rf"(?P<step>[a-z]+)\.(?P<category>[a-z]+|-)"
    rf"\.n(?P<no_inputs>{_NUMBER})\.i(?P<invalid_digits>{_NUMBER})\.a(?P<agents>[01])"
)


@dataclass(frozen=True)
class CallState:
    step: Step = "start"
    category: Category | None = None  # set from the moment the caller is recording
    no_inputs: int = 0
    invalid_digits: int = 0
    agents_available: bool = False

    def __post_init__(self) -> None:
        if self.step in ("recording", "storing") and self.category is None:
            raise ValueError("a recording needs a category")

    def encode(self) -> str:
        """A short URL-safe text, e.g. ``menu.-.n1.i0.a1``."""
        return (
            f"{self.step}.{self.category or '-'}"
            f".n{self.no_inputs}.i{self.invalid_digits}.a{int(self.agents_available)}"
        )

    @classmethod
    def decode(cls, text: str) -> CallState:
        found = _ENCODED.fullmatch(text)
        if not (found and found["step"] in _STEP_NAMED and found["category"] in _CATEGORY_NAMED):
            raise ValueError(f"not a call state: {text!r}")
        return cls(
            step=_STEP_NAMED[found["step"]],
            category=_CATEGORY_NAMED[found["category"]],
            no_inputs=int(found["no_inputs"]),
            invalid_digits=int(found["invalid_digits"]),
            agents_available=found["agents"] == "1",
        )


Reply = tuple[CallState, tuple[Action, ...]]


def start() -> CallState:
    return CallState()


def step(config: IvrConfig, state: CallState, event: Event) -> Reply:
    """The next state and the actions for ``event``; the state is unchanged if it is moot."""
    match state.step, event:
        case "start", Answered(agents_available=agents, to_person=True, priority=priority):
            return _to_agent(config, replace(state, agents_available=agents), priority)
        case "start", Answered(agents_available=agents):
            return _answer(config, replace(state, agents_available=agents))
        case "start", HungUp():
            return _missed(state, "hung_up_before_answer")
        case "menu", Digit(digit=digit):
            return _choose(config, state, digit)
        case "menu", NoInput():
            return _no_input(config, state)
        case "menu", HungUp():
            return _missed(state, "hung_up_in_menu")
        case "recording", RecordingEnded() as ended if state.category is not None:
            return _recorded(config, state, state.category, ended)
        case "storing", Stored() as stored:
            return replace(state, step="done"), _tell_number(stored)
        case "storing", HungUp():
            # The letter is stored all the same; there is nobody to tell.
            return replace(state, step="done"), ()
        case "transfer", TransferEnded(outcome="answered"):
            return replace(state, step="done"), (StoreAgentStub(), Hangup())
        case "transfer", TransferEnded():
            return _voicemail(config, state, "other", ("agent_unavailable",))
        case "transfer", HungUp():
            return _missed(state, "hung_up_in_transfer")
        case "queue", QueueEnded(outcome="answered"):
            return replace(state, step="talking"), (StoreAgentStub(), Talk())
        case "talking", TalkEnded() | HungUp():
            return replace(state, step="done"), (Hangup(),)
        case "queue", QueueEnded(outcome="message"):
            return _voicemail(config, state, "other")
        case "queue", QueueEnded(outcome="handed_over"):
            return replace(state, step="done"), (Hangup(),)
        case "queue", QueueEnded(outcome="callback"):
            done = replace(state, step="done")
            return done, (MarkMissed("queue_timeout"), Play("queue_callback"), Hangup())
        case "queue", HungUp():
            return _missed(state, "abandoned")
    return state, ()


def _answer(config: IvrConfig, state: CallState) -> Reply:
    if config.mode == "direct":
        state, actions = _to_agent(config, state)
        return state, (Play("welcome"), *actions)
    return _gather(config, replace(state, step="menu"), "welcome", "menu")


def _choose(config: IvrConfig, state: CallState, digit: str) -> Reply:
    if digit == config.repeat_digit:
        return _gather(config, state, "menu")
    if digit == config.agent_digit:
        return _to_agent(config, state)
    category = config.categories.get(digit)
    if category == "report":
        # 举报 is taken only with the reporter's real identity.
        return _voicemail(config, state, category, ("report_notice", "record"))
    if category is not None:
        return _voicemail(config, state, category)
    state = replace(state, invalid_digits=state.invalid_digits + 1)
    if state.invalid_digits > config.invalid_retries:
        return _voicemail(config, state, "other")
    return _gather(config, state, "invalid", "menu")


def _no_input(config: IvrConfig, state: CallState) -> Reply:
    state = replace(state, no_inputs=state.no_inputs + 1)
    if state.no_inputs > config.no_input_repeats:
        return _voicemail(config, state, "other")
    return _gather(config, state, "no_input", "menu")


def _to_agent(config: IvrConfig, state: CallState, priority: str = "normal") -> Reply:
    uri = config.agent.uri
    if state.agents_available and config.agent.queue:
        return replace(state, step="queue"), (Play("transferring"), Enqueue(priority))
    if not (state.agents_available and uri):
        return _voicemail(config, state, "other", ("agent_unavailable",))
    transfer = Transfer(uri, config.agent.answer_timeout_seconds)
    return replace(state, step="transfer"), (Play("transferring"), transfer)


def _gather(config: IvrConfig, state: CallState, *prompts: PromptName) -> Reply:
    return state, (Gather(prompts, config.menu_timeout_seconds),)


def _voicemail(
    config: IvrConfig,
    state: CallState,
    category: Category,
    intro: tuple[PromptName, ...] = ("record",),
) -> Reply:
    voicemail = config.voicemail
    record = Record(voicemail.max_seconds, voicemail.silence_seconds, voicemail.finish_key)
    state = replace(state, step="recording", category=category)
    return state, (*(Play(prompt) for prompt in intro), record)


def _recorded(
    config: IvrConfig, state: CallState, category: Category, ended: RecordingEnded
) -> Reply:
    done = replace(state, step="done")
    outcome: Outcome
    if ended.seconds >= config.voicemail.min_seconds:
        outcome, farewell = StoreVoicemail(category), Play("thanks")
    else:
        # Nothing to thank for: the caller goes onto the callback list instead.
        outcome, farewell = MarkMissed("short_recording"), Play("goodbye")
    if ended.reason == "hangup":
        return done, (outcome,)
    if isinstance(outcome, StoreVoicemail) and ended.tell_number:
        return replace(state, step="storing"), (StoreVoicemail(category, tell_number=True),)
    return done, (outcome, farewell, Hangup())


_DIGIT_PROMPTS: dict[str, PromptName] = {
    "0": "digit_0",
    "1": "digit_1",
    "2": "digit_2",
    "3": "digit_3",
    "4": "digit_4",
    "5": "digit_5",
    "6": "digit_6",
    "7": "digit_7",
    "8": "digit_8",
    "9": "digit_9",
    "X": "digit_x",
}


def _tell_number(stored: Stored) -> tuple[Action, ...]:
    """The number and the code digit by digit, said twice; or that the number follows."""
    number, code = stored.tracking_number, stored.verification_code
    if not (number and code and set(number + code) <= _DIGIT_PROMPTS.keys()):
        # Never a number we do not hold: the citizen gets it by SMS or by calling again.
        return Play("number_later"), Play("goodbye"), Hangup()
    said = (
        Play("number_is"),
        *(Play(_DIGIT_PROMPTS[digit]) for digit in number),
        Play("code_is"),
        *(Play(_DIGIT_PROMPTS[digit]) for digit in code),
    )
    return (
        Play("stored"),
        *said,
        Play("number_again"),
        *said,
        Play("write_down"),
        Play("goodbye"),
        Hangup(),
    )


def _missed(state: CallState, reason: MissedReason) -> Reply:
    # The caller is gone: nothing to play, nothing to hang up.
    return replace(state, step="done"), (MarkMissed(reason),)
