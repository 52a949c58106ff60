"""Reading the form's body: every temporary file a post opened is closed, whatever the
body (a fuzz found one ending inside a file's part leaked its file)."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest
from starlette.requests import Request

from channels.web.formdata import read_form

FILE_PART = (
    b'--B\r\nContent-Disposition: form-data; name="attachments"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n\x89PNG"
)


def request(body: bytes) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        chunk, sent = (b"" if sent else body), True
        return {"type": "http.request", "body": chunk, "more_body": False}

    headers = [(b"content-type", b"multipart/form-data; boundary=B")]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


@pytest.mark.parametrize(
    "body",
    [
        FILE_PART,  # the body ends inside the file's part
        FILE_PART + b"\r\n--B--\r\n",  # whole
        FILE_PART + b"\r\n--B\r\nContent-Disposition: form-data; name=",  # ends in a header
    ],
    ids=["cut-in-file", "whole", "cut-in-next-header"],
)
async def test_no_temporary_file_is_left_open(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    unclosed: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unclosed.append(str(u.exc_value)))
    try:
        submitted = await read_form(
            request(body), max_files=3, max_fields=20, max_field_bytes=1000, max_file_bytes=100
        )
    except Exception as exc:  # a refusal is fine; a leak is not
        submitted = None
        assert type(exc).__name__ == "FormError"
    gc.collect()
    assert unclosed == []
    if body.endswith(b"--B--\r\n"):
        assert submitted is not None and submitted.uploads == [("a.png", b"\x89PNG")]
