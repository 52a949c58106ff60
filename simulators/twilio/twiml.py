"""TwiML as Twilio reads it: the voice verbs the simulated caller plays, and <Message> replies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

# Attribute defaults are Twilio's (twilio.com/docs/voice/twiml/<verb>).
RECORD_KEYS = "1234567890*#"
KEYS = frozenset(RECORD_KEYS)
# Valid TwiML the simulated caller cannot follow: refused loudly rather than skipped.
NOT_SIMULATED = frozenset(
    {"Connect", "Echo", "Enqueue", "Leave", "Pay", "Prompt", "Refer", "Start", "Stop", "Queue"}
)


class TwimlError(ValueError):
    """Not a TwiML document Twilio would run (Twilio's error 12100, document parse failure)."""


@dataclass(frozen=True)
class Say:
    text: str
    voice: str | None = None
    language: str | None = None
    loop: int = 1


@dataclass(frozen=True)
class Play:
    url: str
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    length: int = 1


@dataclass(frozen=True)
class Gather:
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    action_on_empty_result: bool = False
    prompts: tuple[Say | Play | Pause, ...] = ()


@dataclass(frozen=True)
class Record:
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = RECORD_KEYS
    max_length: int = 3600
    play_beep: bool = True
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"


@dataclass(frozen=True)
class Dial:
    targets: tuple[str, ...]
    action: str | None = None
    method: str = "POST"
    timeout: int = 30
    caller_id: str | None = None


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Reject:
    reason: str = "rejected"


Verb = Say | Play | Pause | Gather | Record | Dial | Redirect | Hangup | Reject


def parse_voice(document: str) -> list[Verb]:
    """The verbs of a voice TwiML document, in order; raises TwimlError for anything else."""
    return [_verb(element) for element in _response(document)]


def parse_messages(document: str) -> list[str]:
    """The bodies of the <Message> replies in a messaging TwiML document."""
    bodies = []
    for element in _response(document):
        if element.tag != "Message":
            continue
        body = element.find("Body")
        bodies.append(_text(body if body is not None else element))
    return bodies


def _response(document: str) -> ET.Element:
    if not document.strip():
        raise TwimlError("an empty document is not TwiML")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise TwimlError(f"not XML: {error}") from error
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, TwiML's is <Response>")
    return root


def _verb(element: ET.Element) -> Verb:
    tag = element.tag
    if tag == "Say":
        return Say(_text(element), element.get("voice"), element.get("language"), _loop(element))
    if tag == "Play":
        return Play(_text(element), _loop(element))
    if tag == "Pause":
        return Pause(_int(element, "length", 1, minimum=0))
    if tag == "Gather":
        return _gather(element)
    if tag == "Record":
        return Record(
            action=element.get("action"),
            method=_method(element),
            timeout=_int(element, "timeout", 5, minimum=0),
            finish_on_key=_keys(element, RECORD_KEYS),
            max_length=_int(element, "maxLength", 3600, minimum=1),
            play_beep=_bool(element, "playBeep", True),
            recording_status_callback=element.get("recordingStatusCallback"),
            recording_status_callback_method=_method(element, "recordingStatusCallbackMethod"),
        )
    if tag == "Dial":
        return _dial(element)
    if tag == "Redirect":
        url = _text(element)
        if not url:
            raise TwimlError("<Redirect> without a URL")
        return Redirect(url, _method(element))
    if tag == "Hangup":
        return Hangup()
    if tag == "Reject":
        reason = element.get("reason", "rejected")
        if reason not in ("rejected", "busy"):
            raise TwimlError(f"<Reject reason={reason!r}>: rejected or busy")
        return Reject(reason)
    if tag in NOT_SIMULATED:
        raise TwimlError(f"<{tag}> is TwiML, but the simulated caller does not follow it")
    raise TwimlError(f"<{tag}> is not a TwiML voice verb")


def _gather(element: ET.Element) -> Gather:
    inputs = element.get("input", "dtmf").split()
    if "dtmf" not in inputs:
        raise TwimlError(f"<Gather input={' '.join(inputs)!r}>: only DTMF is simulated")
    prompts = []
    for child in element:
        nested = _verb(child)
        if not isinstance(nested, Say | Play | Pause):
            raise TwimlError(f"<Gather> may nest <Say>, <Play> and <Pause>, not <{child.tag}>")
        prompts.append(nested)
    num_digits = element.get("numDigits")
    return Gather(
        action=element.get("action"),
        method=_method(element),
        timeout=_int(element, "timeout", 5, minimum=1),
        finish_on_key=_keys(element, "#"),
        num_digits=_int(element, "numDigits", 1, minimum=1) if num_digits is not None else None,
        action_on_empty_result=_bool(element, "actionOnEmptyResult", False),
        prompts=tuple(prompts),
    )


def _dial(element: ET.Element) -> Dial:
    own = (element.text or "").strip()  # a number written straight inside <Dial>
    targets = [own] if own else []
    for child in element:
        if child.tag not in ("Number", "Sip", "Client"):
            raise TwimlError(f"<Dial><{child.tag}> is not simulated (Number, Sip, Client are)")
        targets.append(_text(child))
        if child.tail and child.tail.strip():
            raise TwimlError("<Dial> mixes text with nouns")
    if not targets or not all(targets):
        raise TwimlError("<Dial> without a number or address")
    return Dial(
        targets=tuple(targets),
        action=element.get("action"),
        method=_method(element),
        timeout=_int(element, "timeout", 30, minimum=1),
        caller_id=element.get("callerId"),
    )


def _text(element: ET.Element) -> str:
    # A <Say> may hold SSML elements: what is said is all of its text.
    return "".join(element.itertext()).strip()


def _loop(element: ET.Element) -> int:
    return _int(element, "loop", 1, minimum=0)  # 0: until the call moves on


def _int(element: ET.Element, name: str, default: int, *, minimum: int) -> int:
    raw = element.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TwimlError(f"<{element.tag} {name}={raw!r}> is not an integer") from None
    if value < minimum:
        raise TwimlError(f"<{element.tag} {name}={raw!r}> is below {minimum}")
    return value


def _bool(element: ET.Element, name: str, default: bool) -> bool:
    raw = element.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise TwimlError(f"<{element.tag} {name}={raw!r}>: true or false")
    return raw == "true"


def _method(element: ET.Element, name: str = "method") -> str:
    method = element.get(name, "POST")
    if method not in ("GET", "POST"):
        raise TwimlError(f"<{element.tag} {name}={method!r}>: GET or POST")
    return method


def _keys(element: ET.Element, default: str) -> str:
    keys = element.get("finishOnKey", default)
    if not set(keys) <= KEYS:
        raise TwimlError(f"<{element.tag} finishOnKey={keys!r}>: digits, * and # only")
    return keys
