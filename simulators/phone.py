"""A SIP phone on pjsua2 that dials, presses keys, speaks a WAV and listens: a caller for tests."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import traceback
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import pjsua2 as pj

from channels.sip.pjthread import PjThread

T = TypeVar("T")
DtmfMethod = Literal["rfc4733", "info"]
HungUpBy = Literal["caller", "far", "none"]
# RFC 4733 §3.2 events 0-15; pjsua refuses anything else.
DTMF_DIGITS = frozenset("0123456789*#ABCD")
CALLER = "sip:13800138000@127.0.0.1"
DTMF_DURATION_MS = 160  # pjsua's PJSUA_CALL_SEND_DTMF_DURATION_DEFAULT
# After our CANCEL or BYE: a far end that never answers it is given up on Timer F, 64 × T1.
HANGUP_WAIT = 33.0
# pjmedia finishes a recording's WAV a conference tick after the recorder is dropped.
WAV_FINISH_WAIT = 5.0
# Audio reaches the bridge in both: a far end that only talks (a=sendonly) puts the call on
# "remote hold" in pjsua's terms.
_MEDIA_UP = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
# pjsua2's Endpoint is a singleton: constructing a second one throws a C++ error that no
# Python code can catch, and the process aborts.
_ENDPOINT = threading.Lock()
_METHODS = {"rfc4733": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}


class PhoneError(Exception):
    """pjsua2 refused something: a bad URI, DTMF the call did not negotiate, an unreadable WAV."""


@dataclass(frozen=True)
class Wait:
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Wait({self.seconds}): seconds must not be negative")


@dataclass(frozen=True)
class Dtmf:
    """Keys pressed one after the other, as RFC 4733 events or one SIP INFO each."""

    digits: str
    method: DtmfMethod = "rfc4733"
    duration_ms: int = DTMF_DURATION_MS

    def __post_init__(self) -> None:
        if not self.digits or not set(self.digits) <= DTMF_DIGITS:
            raise ValueError(f"Dtmf({self.digits!r}): digits are 0-9, *, # and A-D")
        if self.method not in _METHODS:
            raise ValueError(f"Dtmf method {self.method!r}: rfc4733 or info")


@dataclass(frozen=True)
class Play:
    """A WAV spoken into the call; ``wait=False`` goes on with the script while it plays."""

    wav: Path
    wait: bool = True


@dataclass(frozen=True)
class HangUp:
    pass


Step = Wait | Dtmf | Play | HangUp


@dataclass(frozen=True)
class CallReport:
    status_code: int  # the final answer to the INVITE: 200, 486, 487 (we cancelled), 408, ...
    reason: str
    connected: bool
    call_id: str
    duration: float  # seconds from the answer to the hang-up, 0 when never answered
    hung_up_by: HungUpBy
    recorded: Path | None
    dtmf_received: str
    provisional: tuple[int, ...] = ()  # 180, 183, ... in the order they came
    info_responses: tuple[int, ...] = ()  # the far end's answer to each DTMF INFO we sent
    timed_out: bool = False  # the call's timeout passed and the phone hung up
    unused_steps: tuple[Step, ...] = ()  # not run: never answered, or the far end hung up first

    def as_dict(self) -> dict[str, Any]:
        report = asdict(self)
        report["recorded"] = str(self.recorded) if self.recorded else None
        report["unused_steps"] = [repr(step) for step in self.unused_steps]
        return report


class _Line:
    """What one call's callbacks saw; they write it on the PJ thread, the caller reads it."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.call_id = ""
        self.provisional: list[int] = []
        self.answered = False
        self.answer = (0, "")
        self.media = False
        self.ended = False
        self.final = (0, "")
        self.duration = 0.0
        self.hanging_up = False
        self.digits: list[str] = []
        self.info_responses: list[int] = []

    def note(self, change: Callable[[], None]) -> None:
        with self.changed:
            change()
            self.changed.notify_all()

    def info_answered(self, count: int) -> bool:
        return len(self.info_responses) >= count or self.ended

    def wait(self, ready: Callable[[], bool], until: float) -> bool:
        with self.changed:
            return self.changed.wait_for(ready, timeout=max(0.0, until - time.monotonic()))


class _Call(pj.Call):  # type: ignore[misc]
    """Callbacks run on the PJ thread and only write down what happened."""

    def __init__(self, account: pj.Account, line: _Line) -> None:
        super().__init__(account)
        self.line = line

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        line = self.line

        def change() -> None:
            line.call_id = info.callIdString
            if info.state == pj.PJSIP_INV_STATE_EARLY:
                line.provisional.append(info.lastStatusCode)
            elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                line.answered = True
                line.answer = (info.lastStatusCode, info.lastReason)
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                line.ended = True
                line.final = (info.lastStatusCode, info.lastReason)
                line.duration = info.connectDuration.sec + info.connectDuration.msec / 1000

        line.note(change)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        # Keep the CallInfo referenced: its media vector dies with it (SWIG), and iterating
        # ``self.getInfo().media`` reads freed memory.
        info = self.getInfo()
        active = any(
            media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in _MEDIA_UP
            for media in info.media
        )
        self.line.note(lambda: setattr(self.line, "media", active))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        digit = str(prm.digit)
        self.line.note(lambda: self.line.digits.append(digit))

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        event = prm.e.body.tsxState
        tsx = event.tsx
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INFO":
            return
        # COMPLETED on a final response; TERMINATED straight from sending on a timeout (408)
        # or a transport error (503).
        answered = tsx.state == pj.PJSIP_TSX_STATE_COMPLETED
        failed = tsx.state == pj.PJSIP_TSX_STATE_TERMINATED and (
            event.prevState != pj.PJSIP_TSX_STATE_COMPLETED
        )
        if answered or failed:
            code = int(tsx.statusCode)
            self.line.note(lambda: self.line.info_responses.append(code))


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Session:
    """One call's pjsua2 objects. Its methods run on the PJ thread, and so does every drop."""

    def __init__(self, line: _Line) -> None:
        self.line = line
        self.call: _Call | None = None
        self.players: list[pj.AudioMediaPlayer] = []
        self.recorder: pj.AudioMediaRecorder | None = None

    def dial(self, account: pj.Account, uri: str, headers: dict[str, str]) -> None:
        param = pj.CallOpParam(True)
        for name, value in headers.items():
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            param.txOption.headers.append(header)
        self.call = _Call(account, self.line)
        self.call.makeCall(uri, param)

    def audio(self) -> pj.AudioMedia:
        assert self.call is not None
        return self.call.getAudioMedia(-1)

    def record(self, path: Path) -> None:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(path))
        self.recorder = recorder
        self.audio().startTransmit(recorder)

    def play(self, path: Path) -> None:
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
        self.players.append(player)
        player.startTransmit(self.audio())

    def send_dtmf(self, digit: str, method: DtmfMethod, duration_ms: int) -> None:
        assert self.call is not None
        param = pj.CallSendDtmfParam()
        param.digits = digit
        param.method = _METHODS[method]
        param.duration = duration_ms
        self.call.sendDtmf(param)

    def hang_up(self) -> None:
        self.line.note(lambda: setattr(self.line, "hanging_up", True))
        if self.call is not None and self.call.isActive():
            self.call.hangup(pj.CallOpParam())

    def release(self) -> None:
        # The recorder writes its WAV header only as it is destroyed.
        self.recorder = None
        self.players.clear()
        self.call = None


class Phone:
    """One pjsua2 endpoint placing calls: up to 4 at once (the wheel's PJSUA_MAX_CALLS).

    ``call`` blocks, so call it from any thread but the PJ thread; ``acall`` awaits it.
    ``headers`` go on every INVITE (e.g. ``P-Asserted-Identity``).
    """

    def __init__(
        self,
        *,
        transport: Literal["udp", "tcp"] = "udp",
        host: str = "127.0.0.1",
        local_port: int = 0,
        caller: str = CALLER,
        headers: dict[str, str] | None = None,
        log_level: int = 1,
        log_file: Path | None = None,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport {transport!r}: udp or tcp")
        self.transport = transport
        self.host = host
        self.local_port = local_port
        self.caller = caller
        self.headers = dict(headers or {})
        self.log_level = log_level
        self.log_file = log_file
        self.port = 0  # the SIP port bound, once started
        self._pj: PjThread | None = None
        self._account: pj.Account | None = None
        self._sessions: set[_Session] = set()  # touched on the PJ thread only
        self._retired: list[tuple[float, pj.AudioMediaPlayer]] = []

    def start(self) -> None:
        """Raises PhoneError when a pjsua2 Endpoint already runs here: one per process."""
        if not _ENDPOINT.acquire(blocking=False):
            raise PhoneError("a Phone is already running in this process (pjsua2: one Endpoint)")
        thread = PjThread("phone", self._configure, self.log_level)
        try:
            thread.start()
        except BaseException:
            _ENDPOINT.release()
            raise
        self._pj = thread
        try:
            # Inside a guarded job: PjThread.call runs it in place on its own thread.
            add = partial(thread.add_transport, self.transport, self.host, self.local_port)
            self.port = self._on_pj(add)
            self._account = self._on_pj(self._create_account)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._pj is not None:
            self._pj.stop(before=self._release_all)
            self._pj = None
            _ENDPOINT.release()

    def __enter__(self) -> Phone:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def acall(
        self,
        uri: str,
        script: Sequence[Step] = (),
        *,
        record_to: Path | None = None,
        timeout: float = 60.0,
        wait_for_far_hangup: bool = True,
    ) -> CallReport:
        return await asyncio.to_thread(
            self.call,
            uri,
            script,
            record_to=record_to,
            timeout=timeout,
            wait_for_far_hangup=wait_for_far_hangup,
        )

    def call(
        self,
        uri: str,
        script: Sequence[Step] = (),
        *,
        record_to: Path | None = None,
        timeout: float = 60.0,
        wait_for_far_hangup: bool = True,
    ) -> CallReport:
        """Dial ``uri``, run ``script`` once answered, and report how the call went.

        Without a ``HangUp`` step the phone waits for the far end to hang up (or hangs up
        itself when ``wait_for_far_hangup`` is false). ``timeout`` bounds the whole call:
        when it passes the phone cancels or hangs up and the report says ``timed_out``.
        """
        if self._account is None:
            raise RuntimeError("Phone.call before Phone.start")
        lengths = {step.wav: wav_seconds(step.wav) for step in script if isinstance(step, Play)}
        if self.transport == "tcp" and "transport=" not in uri.lower():
            uri += ";transport=tcp"
        until = time.monotonic() + timeout
        line = _Line()
        session = _Session(line)
        self._on_pj(partial(self._dial, session, uri))
        timed_out = False
        unused: tuple[Step, ...] = tuple(script)  # until the call is answered
        recorded: Path | None = None
        try:
            if not line.wait(lambda: (line.answered and line.media) or line.ended, until):
                timed_out = True
            elif not line.ended:
                if record_to is not None:
                    self._on_pj(partial(session.record, record_to))
                    recorded = record_to
                unused, timed_out = self._run(session, list(script), lengths, until)
                if not (line.ended or line.hanging_up) and wait_for_far_hangup:
                    timed_out = not line.wait(lambda: line.ended, until)
        finally:
            try:
                if not line.ended:
                    self._on_pj(session.hang_up)
                    line.wait(lambda: line.ended, time.monotonic() + HANGUP_WAIT)
            finally:
                self._on_pj(partial(self._release, session))
        if recorded is not None:
            wait_for_wav(recorded, time.monotonic() + WAV_FINISH_WAIT)
        return self._report(line, recorded, timed_out, unused)

    def _run(
        self, session: _Session, script: list[Step], lengths: dict[Path, float], until: float
    ) -> tuple[tuple[Step, ...], bool]:
        """Runs the steps until a HangUp; the steps left over and whether time ran out."""
        line = session.line
        for index, step in enumerate(script):
            if line.ended:
                return tuple(script[index:]), False
            if time.monotonic() >= until:
                return tuple(script[index:]), True
            if isinstance(step, HangUp):
                self._on_pj(session.hang_up)
                return tuple(script[index + 1 :]), False
            if isinstance(step, Wait):
                line.wait(lambda: line.ended, min(until, time.monotonic() + step.seconds))
            elif isinstance(step, Play):
                self._on_pj(partial(session.play, step.wav))
                if step.wait:
                    line.wait(lambda: line.ended, min(until, time.monotonic() + lengths[step.wav]))
            else:
                self._press(session, step, until)
        return (), False

    def _press(self, session: _Session, step: Dtmf, until: float) -> None:
        """One key at a time, as a person presses them.

        INFO: the next key goes once the far end answered the previous INFO (pjsua would
        send them all at once, and some servers refuse overlapping INFO transactions).
        RFC 4733: pjmedia sends the event for ``duration`` and its end packet three times
        (§2.5.1.4); the next key follows that.
        """
        line = session.line
        for digit in step.digits:
            answers = len(line.info_responses) + 1
            self._on_pj(partial(session.send_dtmf, digit, step.method, step.duration_ms))
            if step.method == "info":
                line.wait(partial(line.info_answered, answers), until)
            else:
                pressed = time.monotonic() + (step.duration_ms + 60) / 1000
                line.wait(lambda: line.ended, min(until, pressed))
            if line.ended:
                return

    def _report(
        self, line: _Line, recorded: Path | None, timed_out: bool, unused: tuple[Step, ...]
    ) -> CallReport:
        status, reason = line.answer if line.answered else line.final
        hung_up_by: HungUpBy = "none"
        if line.answered or line.hanging_up:
            hung_up_by = "caller" if line.hanging_up else "far"
        return CallReport(
            status_code=status,
            reason=reason,
            connected=line.answered,
            call_id=line.call_id,
            duration=line.duration,
            hung_up_by=hung_up_by,
            recorded=recorded,
            dtmf_received="".join(line.digits),
            provisional=tuple(line.provisional),
            info_responses=tuple(line.info_responses),
            timed_out=timed_out,
            unused_steps=unused,
        )

    # -- on the PJ thread ----------------------------------------------------------------------

    def _on_pj(self, job: Callable[[], T]) -> T:
        """Run ``job`` on the PJ thread; a pjsua2 error comes back as PhoneError.

        No exception may leave the PJ thread with its traceback: frame objects link back
        (``f_back``) to PjThread's loop, whose locals hold the Endpoint, and the future that
        carries the error closes a cycle. The Endpoint then outlives ``libDestroy`` until the
        garbage collector finds it, on any thread (abort), and the next Endpoint in the
        process aborts in pjlib's ``pj_thread_this``. So the job's error is caught there,
        its frames cleared, and handed back as a value to raise on this side.
        """

        def guarded() -> T | _Failure:
            try:
                return job()
            except BaseException as exc:
                traceback.clear_frames(exc.__traceback__)
                if isinstance(exc, pj.Error):
                    return _Failure(PhoneError(describe(exc)))
                exc.add_note("".join(traceback.format_exception(exc)).rstrip())
                return _Failure(exc.with_traceback(None))

        assert self._pj is not None
        outcome = self._pj.call(guarded)
        if isinstance(outcome, _Failure):
            raise outcome.error
        return outcome

    def _configure(self, config: pj.EpConfig) -> None:
        if self.log_file is not None:
            config.logConfig.filename = str(self.log_file)
            config.logConfig.consoleLevel = 0

    def _create_account(self) -> pj.Account:
        endpoint = self._pj.endpoint if self._pj is not None else None
        assert endpoint is not None
        # Without libStart every call fails in media setup (PJ_EBUSY) and pjlib then asserts
        # in timer.c; a second libStart asserts in sip_endpoint.c. Either kills the process.
        if endpoint.libGetState() != pj.PJSUA_STATE_RUNNING:
            endpoint.libStart()
        config = pj.AccountConfig()
        config.idUri = self.caller  # no registrar: the phone only dials out
        config.mediaConfig.transportConfig.boundAddress = self.host
        account = pj.Account()
        account.create(config)
        return account

    def _dial(self, session: _Session, uri: str) -> None:
        self._sessions.add(session)
        try:
            session.dial(self._account, uri, self.headers)
        except BaseException:
            self._release(session)
            raise

    def _release(self, session: _Session) -> None:
        # A player is destroyed 2 s after its call: pjmedia delivers its end-of-file on
        # another thread to the object's address, and one destroyed just then was called
        # after it was gone (the gateway's SIP workers crashed so; channels/sip/bridge.py).
        now = time.monotonic()
        self._retired = [(until, p) for until, p in self._retired if until > now]
        self._retired += [(now + 2.0, player) for player in session.players]
        session.release()
        self._sessions.discard(session)

    def _release_all(self) -> None:
        for session in list(self._sessions):
            session.hang_up()
            self._release(session)
        self._retired.clear()
        self._account = None


def describe(error: pj.Error) -> str:
    """``Invalid Request URI (PJSIP_EINVALIDREQURI) in pjsua_call_make_call(...)``"""
    return f"{error.reason} in {error.title}"


def wav_seconds(path: Path) -> float:
    """How long a WAV plays; only PCM WAVs, which is what pjmedia's player reads well."""
    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() / audio.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        raise PhoneError(f"{path}: not a readable PCM WAV ({exc})") from None


def wait_for_wav(path: Path, until: float) -> None:
    """Returns once the recorder's WAV header is written, which pjmedia does last.

    pjmedia 2.15 removes conference ports asynchronously: the recorder is really destroyed
    (buffer flushed, RIFF and data sizes written) on the clock thread a tick after
    ``pjsua_recorder_destroy`` returns, and nothing signals it. So this looks at the header.
    """
    while True:
        with path.open("rb") as wav:
            head = wav.read(8)
            size = wav.seek(0, 2)
        if size >= 44 and head[:4] == b"RIFF" and int.from_bytes(head[4:], "little") == size - 8:
            return
        if time.monotonic() >= until:
            raise PhoneError(f"{path}: the recorder never finished its WAV header")
        time.sleep(0.01)


# -- python -m simulators.phone ----------------------------------------------------------------


class _Append(argparse.Action):
    """Keeps --wait/--dtmf/--play/--hangup in the order given: they are the script."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        value: Any,
        option: str | None = None,
    ) -> None:
        steps: list[Step] = list(getattr(namespace, "script", None) or [])
        try:
            steps.append(self.make(namespace, value))
        except ValueError as exc:
            parser.error(str(exc))
        namespace.script = steps

    def make(self, namespace: argparse.Namespace, value: Any) -> Step:
        if self.dest == "wait":
            return Wait(float(value))
        if self.dest == "dtmf":
            return Dtmf(value, namespace.dtmf_method)
        if self.dest == "play":
            return Play(Path(value))
        return HangUp()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.phone",
        description="Dial a SIP URI, run the steps in the order given, print a JSON report.",
    )
    parser.add_argument("uri", help="e.g. sip:12345@127.0.0.1:5060")
    parser.add_argument("--wait", action=_Append, metavar="SECONDS", help="pause")
    parser.add_argument(
        "--dtmf-method",
        choices=sorted(_METHODS),
        default="rfc4733",
        help="for the --dtmf options after it (default rfc4733)",
    )
    parser.add_argument("--dtmf", action=_Append, metavar="DIGITS", help="press keys")
    parser.add_argument("--play", action=_Append, metavar="WAV", help="speak a WAV")
    parser.add_argument("--hangup", action=_Append, nargs=0, help="hang up here")
    parser.add_argument("--record", type=Path, metavar="WAV", help="record what is heard")
    parser.add_argument("--from", dest="caller", default=CALLER, metavar="URI")
    parser.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header"
    )
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--host", default="127.0.0.1", help="local address to bind")
    parser.add_argument("--port", type=int, default=0, help="local SIP port (default: any)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the call")
    parser.add_argument("--log", type=Path, metavar="FILE", help="pjsip's log, level 5")
    parser.set_defaults(script=[])
    return parser


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """pjlib prints its start-up lines to stdout before any log setting applies: stdout is
    kept for the report by pointing file descriptor 1 at stderr while the phone runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the call was answered and ended in time, 1 otherwise."""
    args = _parser().parse_args(argv)
    headers = {}
    for header in args.header:
        name, _, value = header.partition(":")
        if not value.strip():
            _parser().error(f"--header {header!r}: 'Name: value'")
        headers[name.strip()] = value.strip()
    phone = Phone(
        transport=args.transport,
        host=args.host,
        local_port=args.port,
        caller=args.caller,
        headers=headers,
        log_level=5 if args.log else 0,
        log_file=args.log,
    )
    with _stdout_to_stderr(), phone:
        report = phone.call(args.uri, args.script, record_to=args.record, timeout=args.timeout)
    print(json.dumps(report.as_dict(), ensure_ascii=False))
    return 0 if report.connected and not report.timed_out else 1


if __name__ == "__main__":
    sys.exit(main())
