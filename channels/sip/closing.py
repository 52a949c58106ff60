"""When a voicemail's WAV is whole: pjmedia closes it, on its own thread, some time after
the recorder is dropped.

pjsua2 removes a recorder from the conference bridge asynchronously (PJSIP 2.14+): the
port is destroyed on the conference clock thread, which then flushes the writer's buffer,
writes the header's sizes and closes the file. Read before that, a message loses its last
buffered samples (seen as voicemails cut at exactly 65,536 bytes under load). Nothing in
pjsua2 reports the close, so the kernel does: inotify's IN_CLOSE_WRITE on the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from inotify_simple import INotify, flags


class ClosedFiles:
    """The WAV files of one recordings folder that their writer has closed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.inotify = INotify()
        self.inotify.add_watch(str(directory), flags.CLOSE_WRITE)
        self.closed: set[str] = set()  # closed before anyone waited for them
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.add_reader(self.inotify.fileno(), self._read)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.inotify.fileno())
        self.inotify.close()

    def _read(self) -> None:
        for event in self.inotify.read(timeout=0):
            if not event.name.endswith(".wav"):
                continue  # the notes beside the recordings
            future = self.waiting.pop(event.name, None)
            if future is None:
                self.closed.add(event.name)
            elif not future.done():
                future.set_result(None)

    async def wait(self, path: Path, timeout: float) -> bool:
        """True once ``path`` has been closed after writing; False after ``timeout``."""
        name = path.name
        if name in self.closed:
            self.closed.discard(name)
            return True
        assert self.loop is not None
        future = self.waiting[name] = self.loop.create_future()
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting.pop(name, None)

    def forget(self, path: Path) -> None:
        """A recording thrown away (too short): its close is of no more interest."""
        self.closed.discard(path.name)
        future = self.waiting.pop(path.name, None)
        if future is not None:
            with contextlib.suppress(asyncio.InvalidStateError):
                future.cancel()
