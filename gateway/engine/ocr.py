"""OCR of fax pages with Tesseract (simplified-Chinese model from Debian), as a job.

What can never succeed fails the job at once (GiveUp): pages past the fax limits or whose
header cannot be read (checked before Tesseract or pdftoppm runs, so memory per page stays
bounded), Tesseract refusing a page ("Image too large", an unreadable image). A signal (the
OOM killer, a shutdown), a timeout or Tesseract failing to start is retried.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import FaxConfig, OcrConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import OCR
from gateway.engine.pages import PDF_RENDER_DPI, Declared, Unmeasurable, measure, over_limits
from gateway.engine.workers import GiveUp, LetterJob
from store.attachments import AttachmentStore
from store.models import Job

READABLE = ("image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp")
# Tesseract puts spaces between CJK characters; Chinese text has none.
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])[ \t]+(?=[\u3000-\u9fff\uff00-\uffef])")


def tidy(text: str) -> str:
    lines = [_CJK_GAP.sub("", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class OcrHandler(LetterJob[OcrConfig]):
    kind = OCR
    actor = "ocr"
    failed_event = "ocr_failed"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        files: AttachmentStore,
        settings: OcrConfig,
        clock: Callable[[], datetime],
        after_text: tuple[str, ...] = (),
        fax: FaxConfig | None = None,
    ) -> None:
        super().__init__(sessions, files, settings, clock, after_text)
        # The limits intake enforced (channels.mail.smtp.fax), checked again before reading.
        self.fax = fax or FaxConfig()

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
        files = [
            (media_type, self.files.path_of(sha256))
            for _, media_type, sha256 in self.files_of(job)
            if media_type in READABLE or media_type == "application/pdf"
        ]
        self._check(files)
        pages = []
        for media_type, path in files:
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

    def _check(self, files: list[tuple[str, Path]]) -> None:
        """Every page an image or PDF by its header, and all of them within the limits.
        Tesseract takes a file that is not an image as a list of image paths to read."""
        declared: list[Declared] = []
        for media_type, path in files:
            try:
                found = measure(
                    path.read_bytes(),
                    max_pages=self.fax.limits.max_pages,
                    pdfinfo=self.fax.pdfinfo,
                    timeout=self.fax.pdfinfo_timeout_seconds,
                )
            except Unmeasurable as exc:
                raise GiveUp(f"unreadable page: {exc}") from exc
            if found is None:
                raise GiveUp(f"not an image or PDF, though labelled {media_type}")
            declared.append(found)
        if reason := over_limits(declared, self.fax.limits):
            raise GiveUp(f"pages too large to read: {reason}")

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
            error = done.stderr.decode(errors="replace")[-300:]
            # A positive status is Tesseract refusing this page ("Image too large: (w, h)",
            # "cannot be read"): the same every time. Not starting (a model gone) is not.
            if done.returncode > 0 and "Could not initialize tesseract" not in error:
                raise GiveUp(f"tesseract cannot read the page: {error}")
            raise RuntimeError(f"tesseract failed ({done.returncode}): {error}")
        return done.stdout.decode("utf-8", errors="replace")

    def _read_pdf(self, pdf: Path) -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [
                    self.settings.pdftoppm,
                    "-r",
                    str(PDF_RENDER_DPI),
                    "-png",
                    str(pdf),
                    f"{tmp}/page",
                ],
                capture_output=True,
                timeout=self.settings.timeout_seconds,
            )
            if done.returncode != 0:
                raise GiveUp(f"unreadable PDF: {done.stderr.decode(errors='replace')[-300:]}")
            return [self._read(page) for page in sorted(Path(tmp).glob("page*.png"))]
