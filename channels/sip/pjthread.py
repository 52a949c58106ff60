"""The one thread that may touch pjsua2.

PJSIP aborts the whole process when a pjlib call or a pjsua2 destructor runs on a thread
it does not know, so one dedicated thread creates the Endpoint (``threadCnt=0``,
``mainThreadOnly``), runs every job handed to it, and polls ``libHandleEvents``. Callbacks
fire on this thread too (except ``onEof2``, on the conference clock thread) and must only
hand events on. Every pjsua2 object must be created and dropped inside a job.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import pjsua2 as pj
from pjsua2 import _pjsua2

from gateway.contract.logs import log_event

log = logging.getLogger(__name__)
T = TypeVar("T")
# G.711 only: 8 kHz end to end (a 16 kHz bridge doubled the CPU in measurements here).
CODECS = ("PCMA/8000", "PCMU/8000")
# pjmedia_jb_discard_algo: PJMEDIA_JB_DISCARD_NONE (pjsua2 does not export the enum).
JB_DISCARD_NONE = 0
JB_MIN_PREFETCH_MS = 60
# PJSIP's verbosity (pj_log: 0 fatal, 1 error, 2 warning, 3 info, 4-6 debug) as ours.
_LEVELS = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO)


class PjThread:
    def __init__(
        self,
        name: str = "pjsip",
        configure: Callable[[pj.EpConfig], None] | None = None,
        log_level: int = 1,
        user_agent: str = "12345",
    ) -> None:
        self.name = name
        self.configure = configure
        self.log_level = log_level
        self.user_agent = user_agent
        self.endpoint: pj.Endpoint | None = None
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started: Future[None] = Future()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._started.result(timeout=30)

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` on the PJSIP thread; its result or exception lands in the future."""
        done: Future[T] = Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the waiting side, never lost here
                # Its frames would keep pjsua2 objects alive past libDestroy, to be freed
                # later on another thread (which aborts the process).
                traceback.clear_frames(exc.__traceback__)
                done.set_exception(exc)

        self._jobs.put(run)
        return done

    def call(self, job: Callable[[], T], timeout: float = 30) -> T:
        if threading.current_thread() is self._thread:
            return job()
        return self.submit(job).result(timeout=timeout)

    async def run(self, job: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.submit(job))

    def stop(self, before: Callable[[], None] | None = None) -> None:
        """Run ``before`` (hang up, drop objects) on the thread, then destroy the library."""
        if self._thread is None:
            return
        if before is not None:
            try:
                self.call(before)
            except Exception:
                log.exception("pjsip.stop_failed")
        self._jobs.put(None)
        self._thread.join(timeout=30)
        self._thread = None

    def _main(self) -> None:
        try:
            self.endpoint = self._create()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        # No local holds the Endpoint or a job: a reference left in this frame would
        # outlive libDestroy.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                self.endpoint.libHandleEvents(10)
                continue
            if job is None:
                break
            job()
            job = None
        self.endpoint.hangupAllCalls()
        self.endpoint.libDestroy()
        self.endpoint = None

    def _create(self) -> pj.Endpoint:
        # Until libInit hands PJSIP our writer it prints to stdout itself: libCreate's own
        # start-up chatter (levels 3-5) would be lines outside the log format.
        ctypes.CDLL(_pjsua2.__file__).pj_log_set_level(0)
        endpoint = pj.Endpoint()
        endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        # One name, no version: nothing a scanner could match to a known flaw.
        config.uaConfig.userAgent = self.user_agent
        # pjsua writes the NAT type it detected into every SDP (a=X-nat): not a caller's
        # business, and a fingerprint.
        config.uaConfig.natTypeInSdp = 0
        config.medConfig.clockRate = 8000
        config.medConfig.sndClockRate = 8000
        config.medConfig.channelCount = 1
        config.medConfig.noVad = True
        _keep_every_frame(config.medConfig)
        config.logConfig.level = self.log_level
        # With a writer this is the writer's threshold (pjsua calls it for lines up to
        # consoleLevel, and prints nothing itself): 0 would silence every error.
        config.logConfig.consoleLevel = self.log_level
        # Time and thread are the record's; the sender (file or object) starts the line.
        config.logConfig.decor = pj.PJ_LOG_HAS_SENDER
        writer = _LogWriter()
        writer.__disown__()  # the Endpoint deletes its writer (pjsua2 LogConfig.writer)
        config.logConfig.writer = writer
        if self.configure is not None:
            self.configure(config)
        endpoint.libInit(config)
        endpoint.libStart()
        endpoint.audDevManager().setNullDev()
        for codec in endpoint.codecEnum2():
            wanted = codec.codecId.startswith(CODECS)
            endpoint.codecSetPriority(codec.codecId, 200 if wanted else 0)
        return endpoint

    def add_transport(self, kind: str, host: str, port: int) -> int:
        """Listen on UDP or TCP; the bound port (useful when 0 was asked for)."""

        def add() -> int:
            assert self.endpoint is not None
            config = pj.TransportConfig()
            config.boundAddress = host
            config.port = port
            kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}
            transport = self.endpoint.transportCreate(kinds[kind], config)
            info = self.endpoint.transportGetInfo(transport)
            return int(str(info.localName).rsplit(":", 1)[1])

        return self.call(add)


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """PJSIP's log lines as records of ours, in the gateway's format and masking. Called on
    whichever thread PJSIP logs from; logging is thread-safe."""

    def write(self, entry: pj.LogEntry) -> None:
        level = _LEVELS[entry.level] if entry.level < len(_LEVELS) else logging.DEBUG
        log_event(log, "pjsip.log", level, line=str(entry.msg).strip())


def in_loop(loop: asyncio.AbstractEventLoop, handler: Callable[..., Any], *args: Any) -> None:
    """Hand a pjsua2 callback's event to the asyncio loop, never blocking PJSIP's thread."""
    loop.call_soon_threadsafe(handler, *args)


def _keep_every_frame(media: pj.MediaConfig) -> None:
    """The jitter buffer keeps every frame of what the caller says. With pjmedia's defaults
    a busy machine lost a frame in about every other message (measured with two spinning
    processes: a packet 4 ms late found the buffer empty, and progressive discard dropped
    frames after the burst); each setting alone still lost one in three runs of three
    calls, both together none in ten. A recording must hold every word; a bridged call
    pays 60 ms of delay for it, well inside G.114's 150 ms.
    SWIG exposes the discard field as a pointer to the enum, so it is written through it."""
    media.jbInit = media.jbMinPre = JB_MIN_PREFETCH_MS
    algo = media.jbDiscardAlgo
    ctypes.c_int.from_address(int(algo)).value = JB_DISCARD_NONE
    media.jbDiscardAlgo = algo
    # SWIG has no destructor for the copy it made and says so on stderr when it is dropped
    # ("detected a memory leak"), outside the log format: four bytes, once per process.
    algo.disown()
