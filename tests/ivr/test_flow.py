"""The IVR call flow: every path a 12345 caller can take, and states that survive a URL."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ivr.flow import (
    STEPS,
    Action,
    Answered,
    CallState,
    Digit,
    Enqueue,
    Event,
    Gather,
    Hangup,
    HungUp,
    MarkMissed,
    NoInput,
    Outcome,
    Play,
    QueueEnded,
    Record,
    RecordingEnded,
    StoreAgentStub,
    Stored,
    StoreVoicemail,
    Talk,
    TalkEnded,
    Transfer,
    TransferEnded,
    start,
    step,
)
from ivr.menu import CATEGORIES, IvrConfig, PromptName, Prompts

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUEUE = "sip:12345-queue@callcentre.example"

MENU = IvrConfig.model_validate({"agent": {"uri": QUEUE}})
NO_AGENTS = IvrConfig()
DIRECT = IvrConfig.model_validate({"mode": "direct", "agent": {"uri": QUEUE}})
DIRECT_NO_AGENTS = IvrConfig(mode="direct")
SEATS = IvrConfig.model_validate({"agent": {"queue": True}})
DIRECT_SEATS = IvrConfig.model_validate({"mode": "direct", "agent": {"queue": True}})
IMPATIENT = IvrConfig.model_validate(
    {"agent": {"uri": QUEUE}, "no_input_repeats": 0, "invalid_retries": 0}
)
CONFIGS = {
    "menu": MENU,
    "menu-no-agents": NO_AGENTS,
    "direct": DIRECT,
    "direct-no-agents": DIRECT_NO_AGENTS,
    "impatient": IMPATIENT,
    "seats": SEATS,
    "direct-seats": DIRECT_SEATS,
}

# Events and replies as the default config words them.
STAFFED, UNSTAFFED = Answered(agents_available=True), Answered(agents_available=False)
SPOKE = RecordingEnded(seconds=42.0, reason="key")
WELCOME = (Gather(("welcome", "menu"), 6),)
RECORD = Record(max_seconds=180, silence_seconds=5, finish_key="#")
LEAVE_MESSAGE = (Play("record"), RECORD)
TRANSFER = (Play("transferring"), Transfer(QUEUE, 20))
NO_AGENT = (Play("agent_unavailable"), RECORD)
ENQUEUE = (Play("transferring"), Enqueue("normal"))


def stored(category: Any) -> tuple[Action, ...]:
    return (StoreVoicemail(category), Play("thanks"), Hangup())


Script = list[tuple[Event, tuple[Action, ...]]]


def chose(digit: str, category: str) -> Script:
    intro = (Play("report_notice"),) if category == "report" else ()
    return [
        (STAFFED, WELCOME),
        (Digit(digit), (*intro, *LEAVE_MESSAGE)),
        (SPOKE, stored(category)),
    ]


CALLS: dict[str, tuple[IvrConfig, Script]] = {
    **{
        f"{digit}-is-{category}": (MENU, chose(digit, category))
        for digit, category in MENU.categories.items()
    },
    "0-repeats-the-menu-without-counting-as-invalid": (
        IMPATIENT,
        [
            (STAFFED, WELCOME),
            (Digit("0"), (Gather(("menu",), 6),)),
            (Digit("0"), (Gather(("menu",), 6),)),
            (Digit("3"), LEAVE_MESSAGE),
            (SPOKE, stored("suggestion")),
        ],
    ),
    "an-invalid-key-then-a-valid-one": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("8"), (Gather(("invalid", "menu"), 6),)),
            (Digit("2"), LEAVE_MESSAGE),
            (SPOKE, stored("help")),
        ],
    ),
    "invalid-keys-past-the-retries-leave-a-message-as-other": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("8"), (Gather(("invalid", "menu"), 6),)),
            (Digit("*"), (Gather(("invalid", "menu"), 6),)),
            (Digit("#"), (Gather(("invalid", "menu"), 6),)),
            (Digit("8"), LEAVE_MESSAGE),
            (SPOKE, stored("other")),
        ],
    ),
    "silence-after-two-repeats-leaves-a-message-as-other": (
        MENU,
        [
            (STAFFED, WELCOME),
            (NoInput(), (Gather(("no_input", "menu"), 6),)),
            (NoInput(), (Gather(("no_input", "menu"), 6),)),
            (NoInput(), LEAVE_MESSAGE),
            (SPOKE, stored("other")),
        ],
    ),
    "9-reaches-an-agent-and-the-call-becomes-a-stub": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("9"), TRANSFER),
            (TransferEnded("answered"), (StoreAgentStub(), Hangup())),
        ],
    ),
    **{
        f"9-{outcome}-leaves-a-message-as-other": (
            MENU,
            [
                (STAFFED, WELCOME),
                (Digit("9"), TRANSFER),
                (TransferEnded(outcome), NO_AGENT),
                (SPOKE, stored("other")),
            ],
        )
        for outcome in ("busy", "no_answer", "failed")
    },
    "9-outside-working-hours-leaves-a-message": (
        MENU,
        [
            (UNSTAFFED, WELCOME),
            (Digit("9"), NO_AGENT),
            (SPOKE, stored("other")),
        ],
    ),
    "9-without-an-agent-queue-leaves-a-message": (
        NO_AGENTS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), NO_AGENT),
            (SPOKE, stored("other")),
        ],
    ),
    "a-too-short-message-is-a-missed-call": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("1"), LEAVE_MESSAGE),
            (
                RecordingEnded(1.5, "silence"),
                (MarkMissed("short_recording"), Play("goodbye"), Hangup()),
            ),
        ],
    ),
    "hanging-up-right-after-the-tone-is-a-missed-call": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("1"), LEAVE_MESSAGE),
            (RecordingEnded(0.4, "hangup"), (MarkMissed("short_recording"),)),
        ],
    ),
    "hanging-up-while-recording-keeps-the-message": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("5"), (Play("report_notice"), *LEAVE_MESSAGE)),
            (HungUp(), ()),
            (RecordingEnded(61.0, "hangup"), (StoreVoicemail("report"),)),
        ],
    ),
    "a-message-cut-at-the-maximum-is-kept": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("6"), LEAVE_MESSAGE),
            (RecordingEnded(180.0, "max"), stored("opinion")),
        ],
    ),
    "hanging-up-in-the-menu-is-a-missed-call": (
        MENU,
        [(STAFFED, WELCOME), (HungUp(), (MarkMissed("hung_up_in_menu"),))],
    ),
    "hanging-up-before-the-answer-is-a-missed-call": (
        MENU,
        [(HungUp(), (MarkMissed("hung_up_before_answer"),))],
    ),
    "hanging-up-while-the-agent-rings-is-a-missed-call": (
        MENU,
        [
            (STAFFED, WELCOME),
            (Digit("9"), TRANSFER),
            (HungUp(), (MarkMissed("hung_up_in_transfer"),)),
        ],
    ),
    "9-joins-the-seats-queue-and-a-seat-answers": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (QueueEnded("answered"), (StoreAgentStub(), Talk())),
            (TalkEnded(), (Hangup(),)),
        ],
    ),
    "the-caller-hanging-up-on-the-seat-ends-the-call": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (QueueEnded("answered"), (StoreAgentStub(), Talk())),
            (HungUp(), (Hangup(),)),
        ],
    ),
    "past-the-maximum-wait-a-message": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (QueueEnded("message"), LEAVE_MESSAGE),
            (SPOKE, stored("other")),
        ],
    ),
    "past-the-maximum-wait-a-callback": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (
                QueueEnded("callback"),
                (MarkMissed("queue_timeout"), Play("queue_callback"), Hangup()),
            ),
        ],
    ),
    "hanging-up-in-the-queue-is-abandoned": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (HungUp(), (MarkMissed("abandoned"),)),
        ],
    ),
    "the-seats-queue-outside-working-hours-leaves-a-message": (
        SEATS,
        [(UNSTAFFED, WELCOME), (Digit("9"), NO_AGENT), (SPOKE, stored("other"))],
    ),
    "the-queue-entry-goes-straight-to-the-seats": (
        SEATS,
        [
            (Answered(agents_available=True, to_person=True), ENQUEUE),
            (QueueEnded("answered"), (StoreAgentStub(), Talk())),
            (TalkEnded(), (Hangup(),)),
        ],
    ),
    "a-priority-line-goes-straight-to-the-seats-in-its-class": (
        SEATS,
        [
            (
                Answered(agents_available=True, to_person=True, priority="elderly"),
                (Play("transferring"), Enqueue("elderly")),
            ),
            (HungUp(), (MarkMissed("abandoned"),)),
        ],
    ),
    "handed-over-to-the-sip-sides-queue-ends-here-with-no-outcome": (
        SEATS,
        [
            (STAFFED, WELCOME),
            (Digit("9"), ENQUEUE),
            (QueueEnded("handed_over"), (Hangup(),)),
        ],
    ),
    "direct-with-seats-greets-and-queues": (
        DIRECT_SEATS,
        [
            (STAFFED, (Play("welcome"), *ENQUEUE)),
            (QueueEnded("answered"), (StoreAgentStub(), Talk())),
            (TalkEnded(), (Hangup(),)),
        ],
    ),
    "direct-greets-and-transfers": (
        DIRECT,
        [
            (STAFFED, (Play("welcome"), *TRANSFER)),
            (TransferEnded("answered"), (StoreAgentStub(), Hangup())),
        ],
    ),
    "direct-leaves-a-message-when-no-agent-answers": (
        DIRECT,
        [
            (STAFFED, (Play("welcome"), *TRANSFER)),
            (TransferEnded("no_answer"), NO_AGENT),
            (SPOKE, stored("other")),
        ],
    ),
    "direct-outside-working-hours-leaves-a-message": (
        DIRECT,
        [
            (UNSTAFFED, (Play("welcome"), *NO_AGENT)),
            (SPOKE, stored("other")),
        ],
    ),
    "direct-without-an-agent-queue-leaves-a-message": (
        DIRECT_NO_AGENTS,
        [
            (STAFFED, (Play("welcome"), *NO_AGENT)),
            (RecordingEnded(0.0, "hangup"), (MarkMissed("short_recording"),)),
        ],
    ),
}


@pytest.mark.parametrize(("config", "script"), CALLS.values(), ids=CALLS.keys())
def test_each_call_gets_the_replies_of_its_script(config: IvrConfig, script: Script) -> None:
    state = start()
    for event, expected in script:
        state, actions = step(config, state, event)
        assert actions == expected, event
        # As the Twilio channel does it: the state travels in the next callback URL.
        state = CallState.decode(state.encode())
    assert state.step == "done"


def test_the_menu_offers_every_category_and_the_default_keys() -> None:
    assert sorted(MENU.categories.values()) == sorted(CATEGORIES)
    assert (MENU.agent_digit, MENU.repeat_digit) == ("9", "0")


def state_after(config: IvrConfig, *events: Event) -> CallState:
    state = start()
    for event in events:
        state, _ = step(config, state, event)
    return state


MOOT = {
    "a-key-while-recording": (state_after(MENU, STAFFED, Digit("1")), Digit("2")),
    "silence-while-recording": (state_after(MENU, STAFFED, Digit("1")), NoInput()),
    "a-second-answer": (state_after(MENU, STAFFED), UNSTAFFED),
    "a-recording-in-the-menu": (state_after(MENU, STAFFED), SPOKE),
    "a-transfer-result-in-the-menu": (state_after(MENU, STAFFED), TransferEnded("answered")),
    "a-key-while-the-agent-rings": (state_after(MENU, STAFFED, Digit("9")), Digit("1")),
    "a-key-before-the-answer": (start(), Digit("1")),
    "a-hang-up-after-the-end": (state_after(MENU, STAFFED, HungUp()), HungUp()),
    "a-recording-after-the-end": (state_after(MENU, STAFFED, Digit("1"), SPOKE), SPOKE),
    "an-answer-after-the-end": (state_after(MENU, HungUp()), STAFFED),
}


# A channel that tells the caller their number (SIP): the voicemail is stored while the
# call is up, and what intake answered is spoken.

TOLD = RecordingEnded(seconds=42.0, reason="key", tell_number=True)
NUMBER, CODE = "20261205000017X", "040919"
DIGIT_NAMES = {**{str(d): f"digit_{d}" for d in range(10)}, "X": "digit_x"}


def storing() -> CallState:
    return state_after(MENU, STAFFED, Digit("1"), TOLD)


def spelt(number: str) -> list[str]:
    return [DIGIT_NAMES[c] for c in number]


def test_a_message_is_stored_first_and_the_call_waits_for_its_number() -> None:
    state, actions = step(MENU, state_after(MENU, STAFFED, Digit("1")), TOLD)

    assert actions == (StoreVoicemail("complaint", tell_number=True),)
    assert (state.step, state.category) == ("storing", "complaint")
    assert CallState.decode(state.encode()) == state


def test_the_caller_hears_the_number_and_the_code_digit_by_digit_twice() -> None:
    state, actions = step(MENU, storing(), Stored(NUMBER, CODE))

    said = ["number_is", *spelt(NUMBER), "code_is", *spelt(CODE)]
    assert state.step == "done"
    assert actions[-1] == Hangup()
    assert [a.prompt for a in actions[:-1] if isinstance(a, Play)] == [
        "stored",
        *said,
        "number_again",
        *said,
        "write_down",
        "goodbye",
    ]
    assert len(actions) == 1 + 2 * (2 + 15 + 6) + 4


@pytest.mark.parametrize(
    "stored",
    [
        Stored(None, None),
        Stored(NUMBER, None),
        Stored(None, CODE),
        Stored("", ""),
        Stored("2026-1205", CODE),
    ],
    ids=["spooled-or-late", "no-code", "no-number", "empty", "not-digits"],
)
def test_without_a_number_in_hand_the_caller_hears_it_will_follow(stored: Stored) -> None:
    state, actions = step(MENU, storing(), stored)

    assert state.step == "done"
    assert actions == (Play("number_later"), Play("goodbye"), Hangup())


def test_a_caller_gone_while_storing_hears_nothing_and_the_letter_stands() -> None:
    state, actions = step(MENU, storing(), HungUp())

    assert (state.step, actions) == ("done", ())


@pytest.mark.parametrize(
    ("ended", "expected"),
    [
        (RecordingEnded(61.0, "hangup", tell_number=True), (StoreVoicemail("complaint"),)),
        (
            RecordingEnded(0.5, "silence", tell_number=True),
            (MarkMissed("short_recording"), Play("goodbye"), Hangup()),
        ),
    ],
    ids=["hung-up-while-recording", "too-short"],
)
def test_no_number_is_awaited_for_a_caller_gone_or_a_missed_call(
    ended: RecordingEnded, expected: tuple[Action, ...]
) -> None:
    state, actions = step(MENU, state_after(MENU, STAFFED, Digit("1")), ended)

    assert (state.step, actions) == ("done", expected)


MOOT = {
    **MOOT,
    "a-key-while-storing": (storing(), Digit("1")),
    "a-recording-while-storing": (storing(), TOLD),
    "a-number-before-storing": (state_after(MENU, STAFFED, Digit("1")), Stored(NUMBER, CODE)),
    "a-number-after-the-end": (state_after(MENU, STAFFED, HungUp()), Stored(NUMBER, CODE)),
}


@pytest.mark.parametrize(("state", "event"), MOOT.values(), ids=MOOT.keys())
def test_an_event_that_makes_no_sense_now_is_ignored(state: CallState, event: Event) -> None:
    assert step(MENU, state, event) == (state, ())


# Call states in callback URLs


def reachable_states() -> set[CallState]:
    events: list[Event] = [
        STAFFED,
        UNSTAFFED,
        *(Digit(key) for key in "0123456789*#"),
        NoInput(),
        SPOKE,
        TOLD,
        Stored(NUMBER, CODE),
        Stored(None, None),
        RecordingEnded(0.5, "hangup"),
        *(TransferEnded(outcome) for outcome in ("answered", "busy", "no_answer", "failed")),
        *(QueueEnded(outcome) for outcome in ("answered", "message", "callback")),
        TalkEnded(),
        HungUp(),
    ]
    seen = {start()}
    todo = list(seen)
    while todo:
        state = todo.pop()
        for config in CONFIGS.values():
            for event in events:
                following, _ = step(config, state, event)
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
    return seen


def test_every_reachable_state_survives_a_url() -> None:
    states = reachable_states()
    texts = {state: state.encode() for state in states}

    assert {state.step for state in states} == set(STEPS)  # the walk did reach every step
    assert [text for text in texts.values() if not re.fullmatch(r"[a-z0-9.-]{1,30}", text)] == []
    assert [text for state, text in texts.items() if CallState.decode(text) != state] == []


def test_an_encoded_state_reads_plainly() -> None:
    waiting = CallState(step="menu", no_inputs=1, agents_available=True)
    recording = CallState(step="recording", category="report", invalid_digits=2)

    assert waiting.encode() == "menu.-.n1.i0.a1"
    assert recording.encode() == "recording.report.n0.i2.a0"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "menu",
        "menu.-.n1.i0",
        "menu.-.n1.i0.a1.x",
        "ringing.-.n0.i0.a0",
        "menu.spam.n0.i0.a0",
        "menu.-.n-1.i0.a0",
        "menu.-.n01.i0.a0",
        "menu.-.n1000.i0.a0",
        "menu.-.n١.i0.a0",
        "menu.-.n0.i0.a2",
        "MENU.-.n0.i0.a0",
        "menu.-.n0.i0.a0\n",
        "recording.-.n0.i0.a1",
        "menu%2E-.n0.i0.a0",
    ],
    ids=[
        "empty",
        "step-only",
        "missing-field",
        "extra-field",
        "unknown-step",
        "unknown-category",
        "negative",
        "leading-zero",
        "too-large",
        "arabic-digit",
        "agents-not-a-flag",
        "upper-case",
        "trailing-newline",
        "recording-without-category",
        "percent-encoded",
    ],
)
def test_junk_is_not_a_call_state(text: str) -> None:
    with pytest.raises(ValueError):
        CallState.decode(text)


# Any sequence of events

EVENTS = st.one_of(
    st.builds(Answered, st.booleans(), st.booleans()),
    st.builds(Digit, st.sampled_from(list("0123456789*#")) | st.text(max_size=3)),
    st.just(NoInput()),
    st.builds(
        RecordingEnded,
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["key", "silence", "max", "hangup"]),
        st.booleans(),
    ),
    st.builds(Stored, st.sampled_from([None, "20261205000017X"]), st.sampled_from([None, "12"])),
    st.builds(TransferEnded, st.sampled_from(["answered", "busy", "no_answer", "failed"])),
    st.builds(QueueEnded, st.sampled_from(["answered", "message", "callback", "handed_over"])),
    st.just(TalkEnded()),
    st.just(HungUp()),
)
WAITS = (Gather, Record, Transfer, Enqueue, Talk)


def is_wait(action: Action) -> bool:
    return isinstance(action, WAITS) or (isinstance(action, StoreVoicemail) and action.tell_number)


def check_reply(state: CallState, actions: tuple[Action, ...]) -> None:
    """The channel always knows what to wait for, and a finished call waits for nothing."""
    waits = [action for action in actions if is_wait(action)]
    if state.step == "done":
        assert not waits
        assert not actions or isinstance(actions[-1], Hangup | Outcome)
    elif actions:
        assert len(waits) == 1 and actions[-1] == waits[0]


@settings(max_examples=300, deadline=None, database=None)
@given(
    config=st.sampled_from(list(CONFIGS.values())),
    events=st.lists(EVENTS, max_size=25),
    seconds=st.floats(min_value=0, max_value=300),
)
def test_any_events_end_in_exactly_one_outcome_once_the_caller_is_gone(
    config: IvrConfig, events: list[Event], seconds: float
) -> None:
    state = start()
    outcomes: list[Outcome] = []
    handed_over = False  # to the SIP side's queue, whose call has the outcome
    for event in events:
        before = state
        state, actions = step(config, state, event)
        handed_over |= before.step == "queue" and event == QueueEnded("handed_over")
        outcomes += [action for action in actions if isinstance(action, Outcome)]
        check_reply(state, actions)
        finished = state.step in ("storing", "talking", "done") and not handed_over
        assert len(outcomes) == (1 if finished else 0)
        assert CallState.decode(state.encode()) == state

    # The caller hangs up, reported as the channel contract says.
    gone = RecordingEnded(seconds, "hangup") if state.step == "recording" else HungUp()
    state, actions = step(config, state, gone)
    outcomes += [action for action in actions if isinstance(action, Outcome)]

    assert state.step == "done"
    assert len(outcomes) == (0 if handed_over else 1)


# Settings


def test_every_prompt_the_flow_can_name_has_a_text() -> None:
    assert set(get_args(PromptName)) == set(Prompts.model_fields)


def test_yaml_keys_may_be_unquoted_digits() -> None:
    section = yaml.safe_load(
        """
        categories: {1: complaint, 2: report, "*": other}
        agent_digit: 0
        repeat_digit: 8
        voicemail: {finish_key: "*"}
        """
    )
    config = IvrConfig.model_validate(section)

    assert config.categories == {"1": "complaint", "2": "report", "*": "other"}
    assert (config.agent_digit, config.repeat_digit) == ("0", "8")


BAD_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-category": ({"categories": {"1": "praise"}}, "categories.1"),
    "two-keys-as-one-digit": ({"categories": {"12": "help"}}, "categories.12"),
    "a-letter-as-digit": ({"agent_digit": "a"}, "agent_digit"),
    "category-on-the-agent-key": ({"categories": {"9": "help"}}, "agent_digit"),
    "category-on-the-repeat-key": ({"categories": {"0": "help"}}, "repeat_digit"),
    "agent-and-repeat-on-one-key": ({"agent_digit": "0"}, "repeat_digit"),
    "unknown-key": ({"menu_timeout": 5}, "menu_timeout"),
    "unknown-prompt": ({"prompts": {"hold_music": "..."}}, "hold_music"),
    "unknown-mode": ({"mode": "speech"}, "mode"),
    "weekday-out-of-range": ({"agent": {"working_hours": {"days": [7]}}}, "days"),
    "minimum-above-maximum": ({"voicemail": {"min_seconds": 200}}, "min_seconds"),
    "bad-finish-key": ({"voicemail": {"finish_key": "##"}}, "finish_key"),
    "no-timeout": ({"menu_timeout_seconds": 0}, "menu_timeout_seconds"),
    # What YAML makes of an unquoted `end: 20:00`.
    "sexagesimal-time": ({"agent": {"working_hours": {"end": 1200}}}, "end"),
    "time-with-offset": ({"agent": {"working_hours": {"start": "08:00+08:00"}}}, "start"),
}


@pytest.mark.parametrize(("section", "named"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_setting_is_an_error_naming_it(section: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(named)):
        IvrConfig.model_validate(section)


def shanghai(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


WEEKDAYS, MONDAY = [0, 1, 2, 3, 4], [0]
STAFFING = {
    # 2025-06-02 is a Monday.
    "daytime": ({}, "2025-06-02T09:30", True),
    "at-opening": ({}, "2025-06-02T08:00", True),
    "before-opening": ({}, "2025-06-02T07:59", False),
    "at-closing": ({}, "2025-06-02T20:00", False),
    "sunday-staffed-by-default": ({}, "2025-06-08T12:00", True),
    "sunday-on-weekdays-only": ({"days": WEEKDAYS}, "2025-06-08T12:00", False),
    "night-shift-evening": ({"start": "20:00", "end": "08:00"}, "2025-06-02T23:00", True),
    "night-shift-noon": ({"start": "20:00", "end": "08:00"}, "2025-06-02T12:00", False),
    "night-shift-belongs-to-its-start-day": (
        {"start": "20:00", "end": "08:00", "days": MONDAY},
        "2025-06-03T03:00",
        True,
    ),
    "night-shift-of-an-unstaffed-day": (
        {"start": "20:00", "end": "08:00", "days": MONDAY},
        "2025-06-02T03:00",
        False,
    ),
    "around-the-clock": ({"start": "00:00", "end": "00:00"}, "2025-06-02T03:00", True),
}


@pytest.mark.parametrize(("hours", "local", "expected"), STAFFING.values(), ids=STAFFING.keys())
def test_agents_are_available_in_working_hours(
    hours: dict[str, Any], local: str, expected: bool
) -> None:
    config = IvrConfig.model_validate({"agent": {"uri": QUEUE, "working_hours": hours}})

    assert config.agent.available(shanghai(local)) is expected


def test_no_agent_is_available_without_a_queue() -> None:
    assert not NO_AGENTS.agent.available(shanghai("2025-06-02T09:30"))
