"""The long commands show a progress bar on a terminal and nothing of it in a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from store.db import make_engine
from store.migrate import upgrade
from tests.conftest import PII, build_intake, make_contact
from tests.gateway.test_serve import vosk_model

ROOT = Path(__file__).resolve().parents[2]


def command_env(tmp_path: Path, config: str) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    return {**os.environ, "HOTLINE_CONFIG": str(path), "HOTLINE_DATABASE_URL": url}


def in_pipes(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """stdout and stderr on a pseudo-terminal of 24 rows by 80 columns (tqdm draws nothing
    on one without rows), read until the command closes it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every end of the follower is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=120), seen.decode("utf-8", "replace")


def letters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hotline.db'}", pii=PII)
    upgrade(engine)
    intake = build_intake(engine, tmp_path).intake
    for n in (1, 2, 3):
        intake.accept_sync(make_contact(n))
    engine.dispose()


def recordings(tmp_path: Path) -> None:
    """Two seconds of silence with its (empty) reference text, twice."""
    for name in ("a", "b"):
        with wave.open(str(tmp_path / f"{name}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(bytes(2 * 8000 * 2))
        (tmp_path / f"{name}.txt").write_text("", encoding="utf-8")


CASES: list[tuple[list[str], str, str, str]] = [
    (["db", "upgrade"], "", "数据库迁移", "database schema is up to date"),
    (["pii", "rotate"], "letters", "重新加密", "re-encrypted under key"),
    (["report", "--period", "2026-11"], "letters", "生成通报", "12345市民热线通报"),
    (["stt", "eval", "{tmp}"], "recordings", "识别", "total: CER"),
    (["routing", "eval", "tests/letters"], "", "分类", "letters: category"),
]


@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "terminal"])
@pytest.mark.parametrize(
    ("argv", "needs", "bar", "result"),
    CASES,
    ids=["db-upgrade", "pii-rotate", "report", "stt-eval", "routing-eval"],
)
def test_a_long_command_shows_progress_on_a_terminal_only(
    tmp_path: Path, argv: list[str], needs: str, bar: str, result: str, terminal: bool
) -> None:
    config = f"stt:\n  model_path: {vosk_model()}\n" if needs == "recordings" else ""
    env = command_env(tmp_path, config)
    prepare: dict[str, Callable[[Path], None]] = {"letters": letters, "recordings": recordings}
    if needs:
        prepare[needs](tmp_path)
    run = on_a_terminal if terminal else in_pipes
    code, seen = run([arg.format(tmp=tmp_path) for arg in argv], env)

    assert code == 0, seen
    assert result in seen
    # tqdm redraws its line with carriage returns; a terminal's newlines are CR LF.
    assert (bar in seen, "\r" in seen.replace("\r\n", "\n")) == (terminal, terminal), seen
