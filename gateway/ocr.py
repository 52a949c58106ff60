"""OCR of fax pages with Tesseract (simplified-Chinese model from Debian), as a job."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.config import OcrConfig
from gateway.errors import ConfigurationError
from gateway.workers import GiveUp, LetterJob
from store.models import Job

READABLE = ("image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp")
# Tesseract puts spaces between CJK characters; Chinese text has none.
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])[ \t]+(?=[\u3000-\u9fff\uff00-\uffef])")


def tidy(text: str) -> str:
    lines = [_CJK_GAP.sub("", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class OcrHandler(LetterJob[OcrConfig]):
    kind = "ocr"
    actor = "ocr"
    failed_event = "ocr_failed"

    def ready(self) -> None:
        if not self.settings.enabled:
            raise ConfigurationError("ocr.enabled is false")
        if shutil.which(self.settings.tesseract) is None:
            raise ConfigurationError(
                f"{self.settings.tesseract} not found: install Debian's tesseract-ocr and "
                "tesseract-ocr-chi-sim (make run does)"
            )
        listed = subprocess.run(
            [self.settings.tesseract, "--list-langs"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        missing = [lang for lang in self.settings.languages.split("+") if lang not in listed]
        if missing:
            raise ConfigurationError(f"Tesseract has no model for {', '.join(missing)}")

    def run(self, job: Job) -> None:
        pages = []
        for _, media_type, sha256 in self.files_of(job):
            path = self.files.path_of(sha256)
            if media_type in READABLE:
                pages.append(self._read(path))
            elif media_type == "application/pdf":
                pages.extend(self._read_pdf(path))
        if not pages:
            raise GiveUp("no page to read: the fax has no image or PDF attachment")
        text = tidy("\n\n".join(pages))
        self.update(
            job,
            "ocr_done",
            {"transcript": text},
            settles_text=True,
            pages=len(pages),
            characters=len(text),
        )

    def _read(self, image: Path) -> str:
        done = subprocess.run(
            [
                self.settings.tesseract,
                str(image),
                "stdout",
                "-l",
                self.settings.languages,
                "--psm",
                str(self.settings.page_segmentation_mode),
            ],
            capture_output=True,
            timeout=self.settings.timeout_seconds,
        )
        if done.returncode != 0:
            raise RuntimeError(f"tesseract failed: {done.stderr.decode(errors='replace')[-300:]}")
        return done.stdout.decode("utf-8", errors="replace")

    def _read_pdf(self, pdf: Path) -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [self.settings.pdftoppm, "-r", "200", "-png", str(pdf), f"{tmp}/page"],
                capture_output=True,
                timeout=self.settings.timeout_seconds,
            )
            if done.returncode != 0:
                raise GiveUp(f"unreadable PDF: {done.stderr.decode(errors='replace')[-300:]}")
            return [self._read(page) for page in sorted(Path(tmp).glob("page*.png"))]
