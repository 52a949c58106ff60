"""Row ids in console URLs: only numbers the store can hold. A longer one is no page (404)
and no cursor, never an integer the database driver cannot bind (a 500 on SQLite)."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from store.models import MAX_ID

# 18 digits always fit a 64-bit id; a route with {name:row} matches nothing longer.
ROW = "row"


class RowId(Convertor[int]):
    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


def register() -> None:
    """Starlette keeps convertors in one table; routes compile against it when built."""
    register_url_convertor(ROW, RowId())


def row_id(text: str) -> int | None:
    """A cursor from a query string, or None for anything the store could not hold."""
    if not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None
