"""The IVR's recorded prompts: built from the texts with espeak-ng and sox, or a city's own.

The SIP channel plays one WAV per prompt name (the fields of ``ivr.menu.Prompts``) plus
``beep.wav`` before recording, all 8 kHz mono 16-bit PCM: what pjmedia's WAV player reads
without resampling on a G.711 call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ivr.menu import IvrConfig, Prompts

SHIPPED = Path(__file__).parent / "prompts"
MANIFEST = "manifest.json"
BEEP = "beep"
NAMES: tuple[str, ...] = (*Prompts.model_fields, BEEP)
RATE = 8000
# espeak-ng 1.51's plain "cmn" voice reads the pinyin of many characters as English
# ("您好" comes out as "nin two hao three"); the pinyin variant speaks them as Mandarin.
VOICE = "cmn-latn-pinyin"
# Part of every prompt's digest, so that changing how prompts are made rebuilds them all.
RECIPE = "espeak-ng -s 190; sox trim 0.5%, gain -n -3, pad 0.1 0.2, 8000 Hz mono s16"
_SPEED = "190"  # words a minute; espeak's 175 draws the nine-option menu out to 14 s
_SOX_FORMAT = ("-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer")
# Leading and trailing silence off, then 100 ms before the voice and 200 ms after it.
_TRIM = ("silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse")
_SHAPE = (*_TRIM, "gain", "-n", "-3", "pad", "0.1", "0.2")
_BEEP = ("synth", "0.3", "sine", "1000", "fade", "0.01", "0.3", "0.01", "gain", "-n", "-6")
# A hotline number is read digit by digit, with 1 as 幺 as on Chinese telephones.
_DIGIT_RUN = re.compile(r"[0-9]{2,}")
_DIGIT_NAMES = str.maketrans("0123456789", "零幺二三四五六七八九")


def digest(voice: str, text: str) -> str:
    """What a built prompt's manifest entry must match for it to be kept."""
    return hashlib.sha256(json.dumps([RECIPE, voice, text]).encode()).hexdigest()


def build_prompts(
    prompts: Prompts,
    out_dir: Path,
    *,
    espeak: str = "espeak-ng",
    sox: str = "sox",
    voice: str = VOICE,
) -> list[Path]:
    """Speak every prompt whose text changed into ``out_dir/<name>.wav``; the rebuilt files.

    ``out_dir/manifest.json`` maps each name to the digest of the voice and text it was
    built from. Each file is written to a temporary name and renamed, so a player never
    sees half a prompt; the manifest is written last, so an interrupted build redoes work
    rather than keeping a stale prompt.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    wanted = {name: digest(voice, text) for name, text in prompts.model_dump().items()}
    wanted[BEEP] = digest("", "1000 Hz 300 ms")
    built: list[Path] = []
    for name, expected in wanted.items():
        target = out_dir / f"{name}.wav"
        if manifest.get(name) == expected and target.is_file():
            continue
        with _replacing(target) as temporary:
            if name == BEEP:
                _run([sox, "-R", "-n", *_SOX_FORMAT, str(temporary), *_BEEP])
            else:
                _speak(getattr(prompts, name), temporary, espeak=espeak, sox=sox, voice=voice)
        built.append(target)
    if built or manifest != wanted:
        with _replacing(out_dir / MANIFEST) as temporary:
            temporary.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return built


def prompt_path(prompts_dir: Path | None, name: str) -> Path:
    """The city's own recording of ``name`` if ``prompts_dir`` has one, else the shipped one."""
    if prompts_dir is not None:
        own = prompts_dir / f"{name}.wav"
        if own.is_file():
            return own
    return SHIPPED / f"{name}.wav"


def check_prompt(path: Path) -> None:
    """Raise ValueError unless ``path`` is a readable 8 kHz mono 16-bit PCM WAV with sound."""
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            frames = wav.getnframes()
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"prompt {path} is not a readable PCM WAV file: {exc}") from exc
    rate, channels, width = shape
    if shape != (RATE, 1, 2):
        raise ValueError(
            f"prompt {path} is {rate} Hz, {channels} channel(s), {8 * width}-bit;"
            f" it must be {RATE} Hz mono 16-bit PCM"
            f" (sox IN -r {RATE} -c 1 -b 16 -e signed-integer {path.name})"
        )
    if frames == 0:
        raise ValueError(f"prompt {path} has no audio")


def prompt_paths(prompts_dir: Path | None) -> dict[str, Path]:
    """Every prompt's file, checked: a wrong recording fails at start, not mid-call."""
    paths = {name: prompt_path(prompts_dir, name) for name in NAMES}
    for path in paths.values():
        check_prompt(path)
    return paths


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


# `hotline`'s code for a command that failed (docs/cli.md); 1 is "not found" only.
EXIT_FAILED = 5


def prompts_command(ivr: IvrConfig, out_dir: Path) -> int:
    """``hotline prompts build``: build the configured texts, one line per prompt."""
    try:
        built = set(build_prompts(ivr.prompts, out_dir))
    except subprocess.CalledProcessError as exc:
        print(f"cannot build prompts: {exc}\n{exc.stderr}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # espeak-ng or sox missing, out_dir not writable
        print(f"cannot build prompts: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for name in NAMES:
        path = out_dir / f"{name}.wav"
        state = "built" if path in built else "unchanged"
        print(f"{name:<18} {seconds(path):5.2f} s  {state}")
    return 0


def spoken(text: str) -> str:
    """The text as espeak-ng should read it: a number of two digits or more digit by digit."""
    return _DIGIT_RUN.sub(lambda run: run[0].translate(_DIGIT_NAMES), text)


def _speak(text: str, target: Path, *, espeak: str, sox: str, voice: str) -> None:
    with tempfile.TemporaryDirectory(prefix="prompt-") as scratch:
        raw = Path(scratch) / "espeak.wav"
        _run([espeak, "-v", voice, "-s", _SPEED, "-w", str(raw), spoken(text)])
        # -R: dither seeded the same every run, so an unchanged text gives the same bytes.
        _run([sox, "-R", str(raw), *_SOX_FORMAT, str(target), *_SHAPE])


def _run(command: list[str]) -> None:
    # sox warns on stderr about the odd clipped sample; only a failure matters.
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, command, result.stdout, result.stderr
        )


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` that replaces it if the block succeeds."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)  # mkstemp's 0600 would hide the prompt from the gateway's user
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _read_manifest(out_dir: Path) -> dict[str, str]:
    try:
        loaded = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(name): str(value) for name, value in loaded.items()}
