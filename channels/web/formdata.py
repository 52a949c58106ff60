"""The letter form's body read without losing what the citizen typed.

Starlette refuses a whole multipart body when one text field passes its size limit, and
the citizen would lose every field. Here such a field keeps its first ``max_field_bytes``
and is named in ``cut``, so the form comes back filled in with the field's limit beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request


class FormError(Exception):
    """The body is not a form we can read (too many files or fields, broken multipart)."""


@dataclass
class Submitted:
    fields: dict[str, str]
    uploads: list[tuple[str, bytes]]  # each chosen file's name and bytes
    cut: set[str] = field(default_factory=set)  # text fields longer than max_field_bytes


class _KeepingParser(MultiPartParser):
    """Starlette's multipart parser, keeping the start of a text field past the limit
    instead of raising (files are spooled to disk and bounded by the body's size)."""

    def __init__(self, request: Request, **limits: int) -> None:
        super().__init__(request.headers, request.stream(), **limits)
        self.cut: set[str] = set()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None and len(part.data) + end - start > self.max_part_size:
            self.cut.add(part.field_name)
            end = start + max(0, self.max_part_size - len(part.data))
        super().on_part_data(data, start, end)

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None and part.field_name in self.cut:
            # A character split at the cut is dropped, not decoded as Latin-1.
            part.data = bytearray(part.data.decode(self._charset, "ignore").encode(self._charset))
        super().on_part_end()


async def read_form(
    request: Request, *, max_files: int, max_fields: int, max_field_bytes: int, max_file_bytes: int
) -> Submitted:
    """The text fields and the chosen files (each read up to one byte past
    ``max_file_bytes``, enough to tell it is too large). Raises FormError for a body that
    is not such a form."""
    limits = {"max_files": max_files, "max_fields": max_fields, "max_part_size": max_field_bytes}
    cut: set[str] = set()
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            parser = _KeepingParser(request, **limits)
            data = await parser.parse()
            cut = parser.cut
        else:  # not what the page sends (its enctype is multipart): Starlette's limits
            data = await request.form(**limits)
    except (MultiPartException, HTTPException) as exc:
        raise FormError(str(exc)) from exc
    try:
        fields = {k: v for k, v in data.multi_items() if isinstance(v, str)}
        uploads = [
            (v.filename, await v.read(max_file_bytes + 1))
            for v in data.getlist("attachments")
            if isinstance(v, UploadFile) and v.filename
        ]
    finally:
        await data.close()
    return Submitted(fields, uploads, cut)
