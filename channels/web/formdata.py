"""The letter form's body read without losing what the citizen typed.

Starlette refuses a whole body (multipart or urlencoded) when one text field passes its
size limit, and the citizen would lose every field. Here such a field keeps its first
``max_field_bytes`` and is named in ``cut``, so the form comes back filled in with the
field's limit beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from python_multipart import QuerystringParser
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from gateway.contract.errors import PayloadError


class FormError(PayloadError):
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

    async def parse(self) -> FormData:
        data = await super().parse()
        # A body that ends inside a file's part parses without error, and that file is in
        # no field to be closed with the form: closed here, or each such post leaks one.
        kept = {id(v.file) for _, v in data.multi_items() if isinstance(v, UploadFile)}
        for file in self._files_to_close_on_error:
            if id(file) not in kept:
                file.close()
        return data

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None and part.field_name in self.cut:
            # A character split at the cut is dropped, not decoded as Latin-1.
            part.data = bytearray(part.data.decode(self._charset, "ignore").encode(self._charset))
        super().on_part_end()


class _KeepingQueryParser:
    """An urlencoded body (a form posted without its enctype, as scripts and some tools
    post it) read with the same limits and the same cut as the multipart one. The limit is
    on a value's bytes once decoded, as the multipart parser counts them."""

    def __init__(self, request: Request, *, max_fields: int, max_part_size: int) -> None:
        self.request = request
        self.max_fields = max_fields
        self.max_bytes = max_part_size
        self.items: list[tuple[str, str | UploadFile]] = []
        self.cut: set[str] = set()
        self._name, self._value, self._over = bytearray(), bytearray(), False

    def on_field_start(self) -> None:
        self._name, self._value, self._over = bytearray(), bytearray(), False

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        if len(self._name) + end - start > self.max_bytes:
            raise FormError(f"a field name past {self.max_bytes} bytes")
        self._name += data[start:end]

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        # A byte takes at most three encoded (%XX): three times the limit, once decoded,
        # holds at least the limit, and a %XX split at the end falls past it.
        room = 3 * self.max_bytes - len(self._value)
        if end - start > room:
            self._over, end = True, start + max(0, room)
        self._value += data[start:end]

    def on_field_end(self) -> None:
        if len(self.items) >= self.max_fields:
            raise FormError(f"more than {self.max_fields} fields")
        name = _unquote(self._name).decode("utf-8", "replace")
        value = _unquote(self._value)
        if self._over or len(value) > self.max_bytes:
            self.cut.add(name)
            # A character split at the cut is dropped, as in the multipart parser.
            self.items.append((name, value[: self.max_bytes].decode("utf-8", "ignore")))
        else:
            self.items.append((name, value.decode("utf-8", "replace")))

    async def parse(self) -> FormData:
        parser = QuerystringParser(
            {
                "on_field_start": self.on_field_start,
                "on_field_name": self.on_field_name,
                "on_field_data": self.on_field_data,
                "on_field_end": self.on_field_end,
            }
        )
        async for chunk in self.request.stream():
            parser.write(chunk)
        parser.finalize()
        return FormData(self.items)


def _unquote(encoded: bytearray) -> bytes:
    return unquote_to_bytes(bytes(encoded).replace(b"+", b" "))


async def read_form(
    request: Request, *, max_files: int, max_fields: int, max_field_bytes: int, max_file_bytes: int
) -> Submitted:
    """The text fields and the chosen files (each read up to one byte past
    ``max_file_bytes``, enough to tell it is too large). Raises FormError for a body that
    is not such a form."""
    limits = {"max_files": max_files, "max_fields": max_fields, "max_part_size": max_field_bytes}
    cut: set[str] = set()
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if kind == "multipart/form-data":  # what the page sends (its enctype)
            parser = _KeepingParser(request, **limits)
            data = await parser.parse()
            cut = parser.cut
        elif kind == "application/x-www-form-urlencoded":
            del limits["max_files"]
            query = _KeepingQueryParser(request, **limits)
            data = await query.parse()
            cut = query.cut
        else:  # no form at all: Starlette reads none, and the missing token is named
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
