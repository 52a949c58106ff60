"""Every pjsua2 object of a worker, kept on the PJSIP thread and addressed by number.

The asyncio side never holds a pjsua2 object: if it dropped the last reference, the
destructor would run on its thread and PJSIP would abort the process. It asks the bridge,
by call number, to play, record, connect or hang up, and gets plain values back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from channels.sip.line import Line, LineEvent, hang_up
from channels.sip.pjthread import PjThread

# How long a finished or replaced prompt player is kept before it is destroyed. pjmedia
# delivers a player's end-of-file on its event thread, to the C++ object's address: a player
# destroyed just as its file ended was called after it was gone (segfaults in
# AudioMediaPlayer::eof_cb at 60-80 calls, found with a core dump). Kept a moment, its last
# event finds it alive; cut from the call, it reads no further and ends no more.
PLAYER_GRACE_SECONDS = 2.0
# The conference bridge's frame (pjsua's default audio frame ptime).
FRAME_SECONDS = 0.020


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


# pjlib's status when all of pjsua's call slots (PJSUA_MAX_CALLS) are taken.
PJ_ETOOMANY = 70010


class NoFreeLine(RuntimeError):
    """Every call slot of this worker is taken, maybe by a leg still being torn down."""


class Bridge:
    def __init__(self, pjsip: PjThread) -> None:
        self.pjsip = pjsip
        self.account: pj.Account | None = None
        self.lines: dict[int, Line] = {}
        self.counter = 0
        self.players: dict[int, pj.AudioMediaPlayer] = {}
        self.recorders: dict[int, pj.AudioMediaRecorder] = {}
        # Players no longer heard, each with when it may be destroyed (PJSIP thread only).
        self.retired: list[tuple[float, pj.AudioMediaPlayer]] = []

    # -- on the PJSIP thread (called from pjsua2 callbacks) -------------------------------

    def adopt(self, line: Line) -> int:
        """Keep the call referenced (or pjsua2 collects it and the caller gets 603), under
        a number of our own: pjsua's call ids are slots, reused by later calls."""
        self.counter += 1
        number = self.counter
        self.lines[number] = line
        line.release = lambda: self._forget(number)
        return number

    def _forget(self, number: int) -> None:
        self._retire(number)
        self.recorders.pop(number, None)
        self.lines.pop(number, None)

    def _retire(self, number: int) -> None:
        """Take the call's player out of service now (silent, and no longer read towards
        its end); destroy it only after the grace."""
        now = time.monotonic()
        player = self.players.pop(number, None)
        if player is not None:
            line = self.lines.get(number)
            media = line.audio() if line is not None else None
            if media is not None:
                with contextlib.suppress(pj.Error):  # not connected any more
                    player.stopTransmit(media)
            self.retired.append((now + PLAYER_GRACE_SECONDS, player))
        # Past their grace: destroyed here, on the PJSIP thread.
        self.retired = [(until, p) for until, p in self.retired if until > now]

    # -- from the asyncio side -------------------------------------------------------------

    async def hang_up(self, number: int, status: int = 200) -> None:
        def job() -> None:
            line = self.lines.get(number)
            if line is not None:
                hang_up(line, status)

        await self.pjsip.run(job)

    async def play(self, number: int, path: Path) -> float:
        """Start playing a WAV into the call; its length in seconds (the end is timed by
        the caller: onEof2 runs on the clock thread and may not touch PJSIP)."""

        def job() -> float:
            self._retire(number)  # a new prompt replaces the last one
            line = self.lines.get(number)
            media = line.audio() if line is not None else None
            if media is None:
                return 0.0
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(media)
            self.players[number] = player
            return wav_seconds(path)

        return await self.pjsip.run(job)

    async def stop_playing(self, number: int) -> None:
        await self.pjsip.run(lambda: self._retire(number))

    async def record(self, number: int, path: Path) -> bool:
        def job() -> bool:
            line = self.lines.get(number)
            media = line.audio() if line is not None else None
            if media is None:
                return False
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(path))
            media.startTransmit(recorder)
            self.recorders[number] = recorder
            return True

        return await self.pjsip.run(job)

    async def record_talk(self, a: int, b: int, path: Path) -> bool:
        """Both calls into one recorder (the bridge mixes them): a caller and the seat
        talking. Stopped by ``stop_recording`` of each."""

        def job() -> bool:
            lines = [self.lines.get(a), self.lines.get(b)]
            media = [one for line in lines if line is not None and (one := line.audio())]
            if len(media) != 2:
                return False
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(path))
            for number, one in zip((a, b), media, strict=True):
                one.startTransmit(recorder)
                self.recorders[number] = recorder
            return True

        return await self.pjsip.run(job)

    async def stop_recording(self, number: int) -> None:
        """Cut the recorder from the call and drop it: pjmedia then writes the WAV's last
        samples and header and closes it, on its clock thread (closing.ClosedFiles says
        when)."""

        def job() -> None:
            recorder = self.recorders.pop(number, None)
            line = self.lines.get(number)
            media = line.audio() if line is not None else None
            if recorder is not None and media is not None:
                with contextlib.suppress(pj.Error):  # the call's media already went
                    media.stopTransmit(recorder)

        await self.pjsip.run(job)

    async def buffered_seconds(self, number: int) -> float:
        """How much of what the caller already sent still waits in the call's jitter
        buffer: a key ends a message at once (RFC 4733 events skip the buffer), the
        audio before it reaches the recorder only after this."""

        def job() -> float:
            line = self.lines.get(number)
            if line is None:
                return 0.0
            info = line.getInfo()
            for index, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO:
                    with contextlib.suppress(pj.Error):
                        return int(line.getStreamStat(index).jbuf.size) * FRAME_SECONDS
            return 0.0

        return await self.pjsip.run(job)

    async def level(self, number: int) -> int:
        """The caller's voice level as the bridge hears it (0-255). pjsua2 names it the
        port's *transmit* level: what the call's port sends into the bridge."""

        def job() -> int:
            line = self.lines.get(number)
            media = line.audio() if line is not None else None
            return int(media.getTxLevel()) if media is not None else 0

        return await self.pjsip.run(job)

    async def dial(
        self, uri: str, on_event: Callable[[int, LineEvent], Any], loop: asyncio.AbstractEventLoop
    ) -> int:
        """Place an outgoing call (to an agent); its events come to ``on_event``."""

        def job() -> int:
            assert self.account is not None
            holder: dict[str, int] = {}
            line = Line(self.account, pj.PJSUA_INVALID_ID, loop, lambda e: on_event(holder["n"], e))
            problem, full = "", False
            try:
                line.makeCall(uri, pj.CallOpParam(True))
            except pj.Error as exc:
                problem, full = str(exc.info()), int(exc.status) == PJ_ETOOMANY
            if problem:  # raised outside: a pjsua2 object must not travel to another thread
                raise (NoFreeLine if full else RuntimeError)(f"cannot call {uri}: {problem}")
            holder["n"] = self.adopt(line)
            return holder["n"]

        return await self.pjsip.run(job)

    async def connect(self, a: int, b: int) -> bool:
        """Both ways, so the caller and the agent hear each other."""

        def job() -> bool:
            first, second = self.lines.get(a), self.lines.get(b)
            media_a = first.audio() if first is not None else None
            media_b = second.audio() if second is not None else None
            if media_a is None or media_b is None:
                return False
            media_a.startTransmit(media_b)
            media_b.startTransmit(media_a)
            return True

        return await self.pjsip.run(job)

    def hang_up_all(self) -> None:
        """On the PJSIP thread, before the library goes: every object dropped here."""
        for line in list(self.lines.values()):
            hang_up(line)
        self.players.clear()
        self.retired.clear()
        self.recorders.clear()
        self.lines.clear()
        self.account = None
