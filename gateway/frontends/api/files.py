"""A letter's files over the REST API: only those the access policy shows the token, each
sent as a download, never rendered (a citizen's upload is not trusted content)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Path, Response

from gateway.core.access import file_shown, gives_away, sight, words
from gateway.frontends.api.deps import Db, Given, Who, audited, load, require, viewer
from gateway.frontends.api.problems import ERRORS
from store.models import MAX_ID, Attachment


def add_routes(api: FastAPI) -> None:
    api.get(
        "/letters/{tracking_number}/attachments/{attachment_id}",
        responses=ERRORS,
        response_class=Response,
        summary="Download an attachment",
    )(get_attachment)


def get_attachment(
    who: Who,
    s: Db,
    services: Given,
    tracking_number: Annotated[str, Path(max_length=40)],
    attachment_id: int,
) -> Response:
    require(who, "read")
    letter = load(s, who, tracking_number)
    reader = viewer(who)
    found = s.get(Attachment, attachment_id) if 0 < attachment_id <= MAX_ID else None
    if (
        found is None
        or found.letter_id != letter.id
        or not file_shown(letter, found.media_type, reader)
    ):
        raise HTTPException(404, f"No attachment {attachment_id} on {tracking_number}")
    if gives_away(letter, found.media_type):
        audited(services, who, letter, attachment=found.id)  # a hidden citizen's voice or fax page
    filename = words(letter, letter.citizen, sight(letter, reader))(found.filename)
    return Response(
        services.files.read(found.sha256),
        media_type=found.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )
