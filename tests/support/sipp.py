"""SIPp for the SIP tests and benchmarks: the IVR's callers as scenarios, a driver, a UAS.

The scenarios under ``tests/channels/sip/scenarios/call_*.xml`` are written by this module
(``python -m tests.support.sipp``) and checked in, so they can be run by hand too. SIPp 3.6
reads a ``play_pcap_audio`` file when it loads the scenario, so a key cannot choose which
DTMF pcap to play: a scenario that presses other digits is rendered into a directory of its
own by ``scenario(name, out_dir, digit="3")``. Timings are ``-key`` values read into
variables at the start of a call; ``run_sipp`` passes ``DEFAULT_KEYS`` under the caller's.
"""

from __future__ import annotations

import csv
import os
import pty
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "channels" / "sip" / "scenarios"
PCAPS = Path("/usr/share/sip-tester")
# g711a.pcap: 236 RTP packets of 30 ms PCMA (payload type 8), sent over 7.05 s: 7.08 s of
# speech. Each dtmf_2833_*.pcap is one RFC 4733 event (payload type 101) over 140 ms.
MESSAGE_PCAP = PCAPS / "g711a.pcap"
MESSAGE_MS = 7100
DTMF_MS = 200
Transport = Literal["u1", "t1"]

# What the shipped prompts (ivr/prompts/) and the default IvrConfig take, in milliseconds.
DEFAULT_KEYS: dict[str, str] = {
    "caller": "13800138000",
    # The From's display name: only a name, whatever it looks like.
    "display": "13800138000",
    # The number the P-Asserted-Identity names (believed from a trusted source only).
    "asserted": "13800138000",
    # Into welcome (3.6 s) and menu (13.3 s) before the first key: the menu takes a key
    # while it plays.
    "menu_wait": "1000",
    # After a wrong key, into "invalid" (3.3 s) and the menu again, before the right one.
    "retry_wait": "1000",
    # After the category key, before speaking: the record prompt (4.7 s) and the beep
    # (0.3 s). Key 5 (举报) plays report_notice (7.3 s) first: pass about 13500.
    "record_wait": "6000",
    # No key at all: welcome + menu + 6 s, twice no_input + menu + 6 s, record + beep.
    "silent_wait": "73000",
    "hangup_wait": "500",
    # call_hangup_in_recording speaks this long, then hangs up (min_seconds is 2 s).
    "speak_ms": "1000",
    # call_agent_uas: "200" answers, "none" rings until CANCEL, one of AGENT_REFUSALS
    # (403, 480, 486, 503, 603) refuses.
    "agent_reply": "200",
    "agent_ring": "500",
    # How long the agent talks before hanging up; "0" waits for the other side's BYE.
    "agent_talk": "0",
    # The self-check's stand-ins: refer_uas sends its REFER this long after its 200;
    # rtp_sink_uas answers with this RTP port (9, discard, unless a test listens).
    "refer_wait": "2000",
    "rtp_sink": "9",
    # call_queue_speaks: after the agent key, in the queue and then with the seat.
    "queue_wait": "10000",
}

_DTMF_PCAPS = {digit: f"dtmf_2833_{digit}" for digit in "0123456789"} | {
    "#": "dtmf_2833_pound",
    "*": "dtmf_2833_star",
}


# The XML, built from small blocks. Every UAC shares one From, one dialog and one SDP offer.

_FROM = '"[display]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'
_TO = "<sip:[service]@[remote_ip]:[remote_port]>"
_CONTACT = "<sip:[caller]@[local_ip]:[local_port];transport=[transport]>"
_UAS_CONTACT = "<sip:[local_ip]:[local_port];transport=[transport]>"
_UAS_TAG = "tag=[pid]SIPpTag01[call_number]"
# A request the answering side sends in the dialog: From and To as its INVITE's, swapped.
_UAS_DIALOG = (
    "[routes]",
    f"From: [$local_to];{_UAS_TAG}",
    "To: [$remote_from]",
    "Call-ID: [call_id]",
    f"Contact: {_UAS_CONTACT}",
)
_SDP = """\
v=0
o=- [pid][call_number] 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {port} RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv"""


def _message(text: str, *, attributes: str = "") -> str:
    body = "\n".join(f"      {line}" if line else "" for line in text.splitlines())
    return f"  <send{attributes}>\n    <![CDATA[\n\n{body}\n\n    ]]>\n  </send>"


def _request(
    start: str,
    cseq: str,
    *headers: str,
    sdp: bool = False,
    body: str = "",
    branch: str = "[branch]",
) -> str:
    fields = list(headers)
    after_call_id = next((n + 1 for n, h in enumerate(fields) if h.startswith("Call-ID")), 0)
    fields.insert(after_call_id, f"CSeq: {cseq}")
    lines = [
        start,
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}",
        *fields,
        "Max-Forwards: 70",
    ]
    if sdp:
        body = _SDP.format(port="[auto_media_port]")
    if body:
        lines += ["Content-Length: [len]", "", *body.splitlines()]
    else:
        lines.append("Content-Length: 0")
    retrans = "" if start.startswith("ACK") else ' retrans="500"'
    return _message("\n".join(lines), attributes=retrans)


def _in_dialog(method: str, cseq: int, *extra: str, body: str = "") -> str:
    """A request of the caller's inside the dialog, along the route set of the 200."""
    return _request(
        f"{method} [next_url] SIP/2.0",
        f"{cseq} {method}",
        "[routes]",
        f"From: {_FROM}",
        f"To: {_TO}[peer_tag_param]",
        "Call-ID: [call_id]",
        f"Contact: {_CONTACT}",
        *extra,
        body=body,
    )


def _reply(
    status: str,
    *,
    tag: bool = False,
    sdp: bool = False,
    cseq: str = "",
    final: bool = False,
    contact: str = "",
    media_port: str = "[media_port]",
) -> str:
    """A response to the last request; ``final`` for an INVITE's, resent until the ACK."""
    lines = [
        f"SIP/2.0 {status}",
        "[last_Via:]",
        "[last_From:]",
        f"[last_To:];{_UAS_TAG}" if tag else "[last_To:]",
        "[last_Call-ID:]",
        f"CSeq: {cseq}" if cseq else "[last_CSeq:]",
    ]
    if tag or contact:  # a response that makes (or may make) a dialog or a subscription
        lines.append(f"Contact: {contact or _UAS_CONTACT}")
    if sdp:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", ""]
        lines += _SDP.format(port=media_port).splitlines()
    else:
        lines.append("Content-Length: 0")
    return _message("\n".join(lines), attributes=' retrans="500"' if final else "")


def _recv(what: str, *, optional: bool = False, extra: str = "") -> str:
    kind = "response" if what.isdigit() else "request"
    flag = ' optional="true"' if optional else ""
    return f'  <recv {kind}="{what}"{flag}{extra}/>'


def _keys(*names: str) -> str:
    """Read timing keys into variables: a pause takes a variable, never a keyword."""
    actions = [
        f'      <assignstr assign_to="{name}_text" value="[{name}]"/>\n'
        f'      <todouble assign_to="{name}" variable="{name}_text"/>'
        for name in names
    ]
    return "  <nop>\n    <action>\n" + "\n".join(actions) + "\n    </action>\n  </nop>"


def _pause(name: str) -> str:
    return f'  <pause variable="{name}"/>'


def _play(pcap: Path) -> str:
    # play_pcap_audio returns at once: a pause must follow for the packets to go out.
    return f'  <nop>\n    <action>\n      <exec play_pcap_audio="{pcap}"/>\n    </action>\n  </nop>'


def _press(digit: str) -> str:
    if digit not in _DTMF_PCAPS:
        raise ValueError(f"{digit!r} is not a DTMF key SIPp has a pcap for")
    return f'{_play(PCAPS / f"{_DTMF_PCAPS[digit]}.pcap")}\n  <pause milliseconds="{DTMF_MS}"/>'


def _speak() -> str:
    return f'{_play(MESSAGE_PCAP)}\n  <pause milliseconds="{MESSAGE_MS}"/>'


def _invite() -> str:
    return _request(
        "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "1 INVITE",
        f"From: {_FROM}",
        f"To: {_TO}",
        "Call-ID: [call_id]",
        f"Contact: {_CONTACT}",
        "P-Asserted-Identity: <sip:[asserted]@[local_ip];user=phone>",
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY",
        "Content-Type: application/sdp",
        sdp=True,
    )


def _early() -> list[str]:
    return [_recv("100", optional=True), _recv("180", optional=True), _recv("183", optional=True)]


def _answered() -> list[str]:
    """INVITE, any provisional answers, the 200 (its route set kept) and the ACK."""
    return [
        _invite(),
        *_early(),
        _recv("200", extra=' rtd="true" rrs="true"'),
        _in_dialog("ACK", 1),
    ]


def _hang_up() -> list[str]:
    return [_in_dialog("BYE", 2), _recv("200", extra=' crlf="true"')]


def _hung_up_on() -> list[str]:
    return [_recv("BYE"), _reply("200 OK")]


def _rejected(code: str) -> list[str]:
    # The ACK to a final error is part of the INVITE transaction: the INVITE's branch,
    # five messages back (RFC 3261 17.1.1.3).
    ack = _request(
        "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "1 ACK",
        f"From: {_FROM}",
        f"To: {_TO}[peer_tag_param]",
        "Call-ID: [call_id]",
        branch="[branch-5]",
    )
    return [_invite(), *_early(), _recv(code, extra=' crlf="true"'), ack]


def _agent() -> list[str]:
    """After the agent key: a REFER (202, NOTIFY 200) then the BYE, or only the BYE."""
    notify = _in_dialog(
        "NOTIFY",
        2,
        "Event: refer",
        "Subscription-State: terminated;reason=noresource",
        "Content-Type: message/sipfrag;version=2.0",
        body="SIP/2.0 200 OK",
    )
    return [
        _recv("REFER", optional=True, extra=' next="referred"'),
        *_hung_up_on(),
        '  <nop next="done"/>',
        '  <label id="referred"/>',
        _reply("202 Accepted", contact=_CONTACT),
        notify,
        _recv("200"),
        *_hung_up_on(),
        '  <label id="done"/>',
    ]


# SIPp reads a response's code when it loads the scenario, so each refusal is a branch.
AGENT_REFUSALS = {
    "403": "Forbidden",
    "480": "Temporarily Unavailable",
    "486": "Busy Here",
    "503": "Service Unavailable",
    "603": "Decline",
}
AGENT_REPLIES = ("200", "none", *AGENT_REFUSALS)


def _agent_uas() -> list[str]:
    choices = {"200": "answer", "none": "ringing"} | {
        code: f"refuse_{code}" for code in AGENT_REFUSALS
    }
    tests = "\n".join(
        f'      <strcmp assign_to="is_{label}" variable="reply" value="{value}"/>\n'
        f'      <test assign_to="{label}" variable="is_{label}" compare="equal" value="0"/>'
        for value, label in choices.items()
    )
    refusals = []
    for code, reason in AGENT_REFUSALS.items():
        refusals += [
            f'  <label id="refuse_{code}"/>',
            _reply(f"{code} {reason}", tag=True, final=True),
            _recv("ACK"),
            '  <nop next="done"/>',
        ]
    bye = _request("BYE [next_url] SIP/2.0", "1 BYE", *_UAS_DIALOG)
    return [
        _keys("agent_ring", "agent_talk"),
        _uas_invite(cseq=True),
        "  <nop>\n    <action>\n"
        '      <assignstr assign_to="reply" value="[agent_reply]"/>\n'
        f"{tests}\n"
        '      <test assign_to="hangs_up" variable="agent_talk" compare="greater_than"'
        ' value="0"/>\n'
        "    </action>\n  </nop>",
        _reply("100 Trying"),
        _reply("180 Ringing", tag=True),
        '  <nop test="ringing" next="ringing"/>',
        _pause("agent_ring"),
        *(f'  <nop test="refuse_{code}" next="refuse_{code}"/>' for code in AGENT_REFUSALS),
        '  <nop test="answer" next="answer"/>',
        # Any other agent_reply (SippUas refuses them): drop the call unanswered.
        '  <nop>\n    <action>\n      <exec int_cmd="stop_call"/>\n    </action>\n  </nop>',
        *refusals,
        '  <label id="answer"/>',
        _reply("200 OK", tag=True, sdp=True, final=True),
        _recv("ACK"),
        '  <nop test="hangs_up" next="hang_up"/>',
        *_hung_up_on(),
        '  <nop next="done"/>',
        '  <label id="hang_up"/>',
        _pause("agent_talk"),
        bye,
        _recv("200"),
        '  <nop next="done"/>',
        '  <label id="ringing"/>',
        _recv("CANCEL"),
        _reply("200 OK"),
        _reply("487 Request Terminated", tag=True, cseq="[$invite_cseq] INVITE", final=True),
        _recv("ACK"),
        '  <label id="done"/>',
    ]


def _uas_invite(*, cseq: bool = False) -> str:
    # The INVITE's From and To for the requests this side sends in the dialog; its CSeq
    # for a 487 sent after a CANCEL (SIPp refuses a variable that is set but never used).
    keep_cseq = (
        '      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>\n'
        if cseq
        else ""
    )
    return (
        '  <recv request="INVITE" rrs="true">\n    <action>\n'
        '      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="remote_from"/>\n'
        '      <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="local_to"/>\n'
        f"{keep_cseq}    </action>\n  </recv>"
    )


def _refer_uas() -> list[str]:
    """A stand-in for a gateway that transfers by REFER, for the scenarios' self-check."""
    refer = _request(
        "REFER [next_url] SIP/2.0",
        "1 REFER",
        *_UAS_DIALOG,
        "Refer-To: <sip:agent@[local_ip]:[local_port]>",
        "Referred-By: <sip:[service]@[local_ip]>",
    )
    return [
        _keys("refer_wait"),
        _uas_invite(),
        _reply("200 OK", tag=True, sdp=True, final=True),
        _recv("ACK"),
        _pause("refer_wait"),
        refer,
        _recv("202"),
        _recv("NOTIFY"),
        _reply("200 OK"),
        _request("BYE [next_url] SIP/2.0", "2 BYE", *_UAS_DIALOG),
        _recv("200"),
    ]


def _cancel_uac() -> list[str]:
    """A stand-in for a gateway giving up on an agent: INVITE, then CANCEL after ringing."""
    dialog = (f"From: {_FROM}", f"To: {_TO}", "Call-ID: [call_id]")
    cancel = _request(
        "CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "1 CANCEL",
        *dialog,
        branch="[branch-4]",  # the INVITE's (RFC 3261 9.1)
    )
    ack = _request(
        "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "1 ACK",
        f"From: {_FROM}",
        f"To: {_TO}[peer_tag_param]",
        "Call-ID: [call_id]",
        branch="[branch-7]",
    )
    return [
        _invite(),
        _recv("100", optional=True),
        _recv("180"),
        '  <pause milliseconds="500"/>',
        cancel,
        _recv("200"),
        _recv("487"),
        ack,
    ]


def _rtp_sink_uas() -> list[str]:
    """A stand-in whose SDP answer points the caller's RTP at the test's own socket."""
    return [
        _recv("INVITE"),
        _reply("200 OK", tag=True, sdp=True, final=True, media_port="[rtp_sink]"),
        _recv("ACK"),
        *_hung_up_on(),
    ]


@dataclass(frozen=True)
class Kind:
    summary: str  # what the caller does and what it expects of the gateway
    keys: tuple[str, ...]
    build: Callable[..., list[str]]
    params: dict[str, str] = field(default_factory=dict)  # defaults: digits pressed


def _menu_voicemail(digit: str) -> list[str]:
    return [
        _keys("menu_wait", "record_wait"),
        *_answered(),
        _pause("menu_wait"),
        _press(digit),
        _pause("record_wait"),
        _speak(),
        _press("#"),
        *_hung_up_on(),
    ]


def _menu_voicemail_hangup(digit: str) -> list[str]:
    return [
        _keys("menu_wait", "record_wait"),
        *_answered(),
        _pause("menu_wait"),
        _press(digit),
        _pause("record_wait"),
        _speak(),
        *_hang_up(),
    ]


def _invalid_digit(invalid: str, digit: str) -> list[str]:
    return [
        _keys("menu_wait", "retry_wait", "record_wait"),
        *_answered(),
        _pause("menu_wait"),
        _press(invalid),
        _pause("retry_wait"),
        _press(digit),
        _pause("record_wait"),
        _speak(),
        _press("#"),
        *_hung_up_on(),
    ]


def _no_input() -> list[str]:
    return [_keys("silent_wait"), *_answered(), _pause("silent_wait"), _speak(), *_hang_up()]


def _hangup_in_prompt() -> list[str]:
    return [_keys("hangup_wait"), *_answered(), _pause("hangup_wait"), *_hang_up()]


def _hangup_in_recording(digit: str) -> list[str]:
    return [
        _keys("menu_wait", "record_wait", "speak_ms"),
        *_answered(),
        _pause("menu_wait"),
        _press(digit),
        _pause("record_wait"),
        _play(MESSAGE_PCAP),
        _pause("speak_ms"),
        *_hang_up(),
    ]


def _queue_speaks(digit: str) -> list[str]:
    return [
        _keys("menu_wait", "queue_wait"),
        *_answered(),
        _pause("menu_wait"),
        _press(digit),
        _pause("queue_wait"),
        _speak(),
        *_hung_up_on(),
    ]


def _agent_call(digit: str) -> list[str]:
    return [_keys("menu_wait"), *_answered(), _pause("menu_wait"), _press(digit), *_agent()]


def _numbered(build: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """``build``'s caller with the number in field 0 of the call's line of SIPp's injection
    file (``-inf``): From user and display name, P-Asserted-Identity. One number per call,
    where a key is one number per run."""

    def numbered(**params: str) -> list[str]:
        elements = build(**params)
        for key in ("caller", "display", "asserted"):
            elements = [element.replace(f"[{key}]", "[field0]") for element in elements]
        return elements

    return numbered


KINDS: dict[str, Kind] = {
    "call_menu_voicemail": Kind(
        "Chooses a category, speaks g711a.pcap (7.1 s) after the beep, presses #, and waits "
        "for the gateway's BYE (after its thanks prompt).",
        ("caller", "display", "asserted", "menu_wait", "record_wait"),
        _menu_voicemail,
        {"digit": "1"},
    ),
    "call_menu_voicemail_hangup": Kind(
        "Chooses a category, speaks g711a.pcap (7.1 s) after the beep and hangs up instead "
        "of pressing #: the gateway keeps the recording and sends no BYE.",
        ("caller", "display", "asserted", "menu_wait", "record_wait"),
        _menu_voicemail_hangup,
        {"digit": "1"},
    ),
    "call_invalid_digit": Kind(
        "Presses a key the menu does not have, then a category while the gateway replays "
        "the menu; speaks, presses #, waits for the gateway's BYE.",
        ("caller", "display", "asserted", "menu_wait", "retry_wait", "record_wait"),
        _invalid_digit,
        {"invalid": "8", "digit": "1"},
    ),
    "call_no_input": Kind(
        "Presses nothing: waits silent_wait for the menu to time out into voicemail as "
        "'other' (about 73 s with the default IvrConfig), speaks, hangs up.",
        ("caller", "display", "asserted", "silent_wait"),
        _no_input,
    ),
    "call_hangup_in_prompt": Kind(
        "Hangs up hangup_wait after the ACK, during the welcome prompt: a missed call.",
        ("caller", "display", "asserted", "hangup_wait"),
        _hangup_in_prompt,
    ),
    "call_hangup_in_recording": Kind(
        "Chooses a category, speaks for speak_ms after the beep and hangs up mid-message "
        "(by default 1 s: shorter than min_seconds, a missed call).",
        ("caller", "display", "asserted", "menu_wait", "record_wait", "speak_ms"),
        _hangup_in_recording,
        {"digit": "1"},
    ),
    "call_agent": Kind(
        "Presses the agent key, then either takes the gateway's REFER (202, then a NOTIFY "
        "with a 200 sipfrag as if the transfer had succeeded) and its BYE, or stays in the "
        "bridged call until the gateway's BYE. Takes no re-INVITE. Does not call the "
        "Refer-To target itself.",
        ("caller", "display", "asserted", "menu_wait"),
        _agent_call,
        {"digit": "9"},
    ),
    "call_queue_speaks": Kind(
        "Presses the agent key, waits queue_wait ms (in the queue, then talking to the "
        "seat), speaks g711a.pcap (7.1 s) and waits for the gateway's BYE.",
        ("caller", "display", "asserted", "menu_wait", "queue_wait"),
        _queue_speaks,
        {"digit": "9"},
    ),
    "call_rejected": Kind(
        "Expects the INVITE to be refused with 403 (a caller not allowed), and ACKs it.",
        ("caller", "display", "asserted"),
        lambda: _rejected("403"),
    ),
    "call_busy": Kind(
        "Expects the INVITE to be refused with 486 Busy Here, and ACKs it.",
        ("caller", "display", "asserted"),
        lambda: _rejected("486"),
    ),
    "call_numbered_voicemail_hangup": Kind(
        "As call_menu_voicemail_hangup, each call from its own number: field 0 of its line "
        "in the -inf file (SEQUENTIAL: call n takes line n) is the From user and display "
        "name and the P-Asserted-Identity.",
        ("menu_wait", "record_wait"),
        _numbered(_menu_voicemail_hangup),
        {"digit": "1"},
    ),
    "call_agent_uas": Kind(
        "The call centre's agent (a UAS): 100, 180, then after agent_ring a 200 with SDP, "
        "or agent_reply's refusal (403, 480, 486, 503 or 603), or with agent_reply none "
        "rings until CANCEL (200, 487). "
        "Answered, it hangs up after agent_talk ms, or with agent_talk 0 waits for a BYE.",
        ("agent_reply", "agent_ring", "agent_talk"),
        _agent_uas,
    ),
    "refer_uas": Kind(
        "Test stand-in for a gateway that transfers by REFER: answers, sends a REFER "
        "refer_wait ms later, answers the NOTIFY and hangs up.",
        ("refer_wait",),
        _refer_uas,
    ),
    "cancel_uac": Kind(
        "Test stand-in for a gateway whose agent does not answer: INVITE, CANCEL after "
        "the 180 and 500 ms, then the 487 and its ACK.",
        ("caller", "display", "asserted"),
        _cancel_uac,
    ),
    "rtp_sink_uas": Kind(
        "Test stand-in that answers with the RTP port in key rtp_sink and waits for a BYE.",
        ("rtp_sink",),
        _rtp_sink_uas,
    ),
}
# Checked in under SCENARIOS; the stand-ins are only rendered for the self-check.
SHIPPED = tuple(name for name in KINDS if name.startswith("call_"))


def render(name: str, **params: str) -> str:
    kind = KINDS[name]
    unknown = set(params) - set(kind.params)
    if unknown:
        raise ValueError(f"{name} takes {sorted(kind.params) or 'no parameters'}, not {unknown}")
    chosen = {**kind.params, **params}
    keys = " ".join(f"-key {key} {DEFAULT_KEYS[key]}" for key in kind.keys)
    pressed = ", ".join(f"{param} {value!r}" for param, value in chosen.items())
    header = [
        "Generated by tests/support/sipp.py (python -m tests.support.sipp); edit it there.",
        *_wrap(kind.summary),
        f"Keys and defaults: {keys}",
    ]
    if pressed:
        header.append(f"Keys pressed: {pressed}")
    comment = "\n     ".join(line.replace("--", "-") for line in header)
    elements = "\n\n".join(kind.build(**chosen))
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">\n\n'
        f"<!-- {comment} -->\n"
        f'<scenario name="{name}">\n{elements}\n</scenario>\n'
    )


def scenario(name: str, out_dir: Path | None = None, **params: str) -> Path:
    """The checked-in scenario, or (with ``out_dir``) one rendered there with ``params``."""
    if out_dir is None:
        if params or name not in SHIPPED:
            raise ValueError(f"{name} with {params} is rendered, not checked in: pass out_dir")
        return SCENARIOS / f"{name}.xml"
    suffix = "".join(f"-{param}{_file_safe(value)}" for param, value in sorted(params.items()))
    path = out_dir / f"{name}{suffix}.xml"
    path.write_text(render(name, **params), encoding="ascii")
    return path


def write_shipped() -> list[Path]:
    paths = []
    for name in SHIPPED:
        path = SCENARIOS / f"{name}.xml"
        path.write_text(render(name), encoding="ascii")
        paths.append(path)
    return paths


def _wrap(text: str, width: int = 88) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def _file_safe(value: str) -> str:
    return value.replace("#", "pound").replace("*", "star")


# Running SIPp


@dataclass(frozen=True)
class SippResult:
    """What a SIPp run did, from its statistics file, its logs and its exit code.

    Exit codes (SIPp 3.6): 0 every call succeeded, 1 at least one failed, 97 stopped by an
    internal command, 99 no call was processed, 255/254 a fatal error (254: cannot bind).
    """

    command: tuple[str, ...]
    returncode: int
    stats: dict[str, str]  # the last row of -trace_stat: cumulative counters, "(C)"
    call_ids: tuple[str, ...]
    screen: str
    errors: str
    stderr: str
    messages: str

    def counter(self, name: str) -> int:
        return int(self.stats.get(f"{name}(C)", "0") or 0)

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.counter("Retransmissions")

    @property
    def unfinished(self) -> int:
        """Calls still open when SIPp stopped: cut by ``-timeout`` (exit 255), not failed."""
        return int(self.stats.get("CurrentCall", "0") or 0)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def __str__(self) -> str:
        tail = self.messages[-6000:]
        return (
            f"sipp exited {self.returncode}: {self.successful} successful, {self.failed} failed,"
            f" {self.retransmissions} retransmissions\n$ {' '.join(self.command)}\n"
            f"--- stderr\n{self.stderr}\n--- errors\n{self.errors[-4000:]}\n"
            f"--- screen\n{self.screen}\n--- messages (last 6000 characters)\n{tail}"
        )


def run_sipp(
    scenario: Path,
    target: str,
    *,
    calls: int = 1,
    rate: float | None = None,
    concurrency: int | None = None,
    transport: Transport = "u1",
    local_port: int = 0,
    local_ip: str | None = None,
    service: str = "12345",
    keys: Mapping[str, str] | None = None,
    timeout: float = 60,
    log_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Place ``calls`` calls of ``scenario`` to ``target`` (host:port) and wait for the end.

    SIPp gives up after ``timeout`` seconds (``-timeout``, ``-timeout_error``: exit 255,
    the open calls counted as ``unfinished``). ``keys`` go over ``DEFAULT_KEYS``; the full
    message trace is kept for up to ten calls. The logs go to ``log_dir``, by default a
    temporary directory removed once read into the result.
    """
    host, _, port = target.rpartition(":")
    ip = local_ip or _route_to(host, int(port))
    args = [
        "-sf", str(scenario), target,
        "-t", transport, "-i", ip, "-mi", ip, "-p", str(local_port or free_port(ip)),
        "-s", service, "-m", str(calls), "-nostdin", "-aa",
        "-timeout", f"{timeout:g}s", "-timeout_error",
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", f"{rate:g}"]
    if concurrency is not None:
        args += ["-l", str(concurrency)]
    with _logs(log_dir) as logs:
        command = _command(args, keys, logs, messages=calls <= 10, extra=extra_args)
        stderr_path = logs / "stderr.log"
        with stderr_path.open("w") as stderr:
            try:
                returncode = subprocess.run(
                    command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=logs,
                    timeout=timeout + 30,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:  # SIPp ignored its own -timeout
                returncode = -int(signal.SIGKILL)
        return _result(command, returncode, logs)


class SippUas:
    """A SIPp UAS in the background, e.g. the agent a transfer rings.

    ``start`` returns once SIPp has drawn its first screen on a pseudo-terminal, after it
    bound its socket (SIPp draws no screen into a pipe); ``stop`` asks it to finish its
    calls and quit (SIGUSR1, like pressing q), then kills it if it has not.

    Over TCP, SIPp 3.6 counts a UAS call as failed (FailedTcpClosed) when the caller closes
    its connection just after hanging up; a TCP test should let the UAS hang up.
    """

    def __init__(
        self,
        scenario: Path,
        port: int = 0,
        *,
        keys: Mapping[str, str] | None = None,
        calls: int | None = None,
        transport: Transport = "u1",
        local_ip: str = "127.0.0.1",
        log_dir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        reply = (keys or {}).get("agent_reply", DEFAULT_KEYS["agent_reply"])
        if reply not in AGENT_REPLIES:
            raise ValueError(f"agent_reply {reply!r} is not one of {AGENT_REPLIES}")
        self.scenario = scenario
        self.port = port or free_port(local_ip)
        self.local_ip = local_ip
        self.keys = keys
        self.calls = calls
        self.transport = transport
        self.extra_args = tuple(extra_args)
        self._own_logs = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="sipp-uas-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._screen_drawn = False
        self._started = threading.Event()  # the first screen drawn, or SIPp gone
        self._reader: threading.Thread | None = None
        self.command: list[str] = []

    @property
    def address(self) -> str:
        return f"{self.local_ip}:{self.port}"

    def start(self, timeout: float = 10) -> None:
        args = [
            "-sf", str(self.scenario), "-t", self.transport, "-i", self.local_ip,
            "-mi", self.local_ip, "-p", str(self.port),
        ]  # fmt: skip
        if self.calls is not None:
            args += ["-m", str(self.calls)]
        self.command = _command(args, self.keys, self.log_dir, messages=True, extra=self.extra_args)
        screen, terminal = pty.openpty()
        with (self.log_dir / "stderr.log").open("w") as stderr:
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=stderr,
                cwd=self.log_dir,
            )  # fmt: skip
        os.close(terminal)
        self._reader = threading.Thread(target=self._read_screen, args=(screen,), daemon=True)
        self._reader.start()
        self._started.wait(timeout)
        if not self._screen_drawn:
            result = self.stop()
            raise RuntimeError(f"SIPp UAS on {self.address} did not start:\n{result}")

    def _read_screen(self, screen: int) -> None:
        # Drained to the end: a full terminal buffer would stall SIPp.
        seen = b""
        try:
            while chunk := _read(screen):
                if not self._screen_drawn:
                    seen = seen[-64:] + chunk
                    if b"Scenario Screen" in seen:
                        self._screen_drawn = True
                        self._started.set()
        finally:
            os.close(screen)
            self._started.set()

    def stop(self, timeout: float = 15) -> SippResult:
        proc = self._proc
        if proc is None:
            raise RuntimeError("SippUas was not started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        result = _result(self.command, proc.returncode, self.log_dir)
        if self._own_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return result

    def __enter__(self) -> SippUas:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.stop()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's other end closed with SIPp
        return b""


@contextmanager
def _logs(log_dir: Path | None) -> Iterator[Path]:
    """The directory SIPp writes its traces into: the caller's, or a temporary one."""
    path = log_dir or Path(tempfile.mkdtemp(prefix="sipp-"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        if log_dir is None:
            shutil.rmtree(path, ignore_errors=True)


def _command(
    args: list[str],
    keys: Mapping[str, str] | None,
    logs: Path,
    *,
    messages: bool,
    extra: Sequence[str],
) -> list[str]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise FileNotFoundError("sipp is not installed (Debian package sip-tester)")
    traces = [
        "-trace_stat", "-stf", str(logs / "stat.csv"), "-fd", "1",
        "-trace_screen", "-screen_file", str(logs / "screen.log"),
        "-trace_err", "-error_file", str(logs / "errors.log"),
        "-trace_shortmsg", "-shortmessage_file", str(logs / "shortmessages.log"),
        "-trace_calldebug", "-calldebug_file", str(logs / "calldebug.log"),
    ]  # fmt: skip
    if messages:
        traces += ["-trace_msg", "-message_file", str(logs / "messages.log")]
    pairs = [
        item
        for key, value in {**DEFAULT_KEYS, **(keys or {})}.items()
        for item in ("-key", key, value)
    ]
    return [sipp, *args, *traces, *pairs, *extra]


def _result(command: Sequence[str], returncode: int, logs: Path) -> SippResult:
    rows = _read_rows(logs / "stat.csv")
    stats = dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}
    call_ids: dict[str, None] = {}
    for line in _text(logs / "shortmessages.log").splitlines():
        fields = line.split("\t")
        if len(fields) > 4:
            call_ids.setdefault(fields[4], None)
    return SippResult(
        command=tuple(command),
        returncode=returncode,
        stats=stats,
        call_ids=tuple(call_ids),
        screen=_text(logs / "screen.log"),
        errors=_text(logs / "errors.log") + _text(logs / "calldebug.log"),
        stderr=_text(logs / "stderr.log"),
        messages=_text(logs / "messages.log"),
    )


def _read_rows(path: Path) -> list[list[str]]:
    text = _text(path)
    return [row for row in csv.reader(text.splitlines(), delimiter=";") if any(row)]


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _route_to(host: str, port: int) -> str:
    """The local address the kernel would send from to reach ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def main() -> None:
    for path in write_shipped():
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
