"""The gateway's database URL as Kamailio's ``db_url``, so its auth_db reads the seats table
the gateway writes (SQLite through db_sqlite, PostgreSQL through db_postgres).

Kamailio's URL has no place for libpq's options and should not hold a password (the
rendered kamailio.cfg is printed by ``hotline sip kamailio-config``): those go into
Kamailio's environment, where libpq reads them (PGPASSWORD, PGOPTIONS, PGSSLMODE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gateway.contract.errors import ConfigurationError

# libpq's connection options a PostgreSQL URL may carry, and the variables libpq reads them
# from when db_postgres connects without them.
_LIBPQ_ENV = {"options": "PGOPTIONS", "sslmode": "PGSSLMODE"}
# Nothing that could end the quoted #!define it goes into, or make a second URL.
_UNSAFE = set('"\\\n\r ')


@dataclass(frozen=True)
class KamailioDb:
    """What Kamailio needs to read the seats table: its driver module, its URL, and the
    environment that carries what the URL cannot (never logged)."""

    module: str
    url: str
    env: dict[str, str] = field(default_factory=dict, repr=False)


def kamailio_db(database_url: str) -> KamailioDb:
    """``database.url`` as Kamailio reads it; ConfigurationError if Kamailio cannot."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigurationError("database.url: not a database URL") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url)
    if backend == "postgresql":
        return _postgres(url)
    raise ConfigurationError(
        f"database.url: Kamailio reads the seats table from SQLite or PostgreSQL, not {backend}"
    )


def _sqlite(url: URL) -> KamailioDb:
    path = url.database or ""
    if not path.startswith("/") or path.startswith("file:"):
        # In memory, or relative to a working directory Kamailio does not share.
        raise ConfigurationError(
            "database.url: Kamailio needs the SQLite database's absolute path, not"
            f" {path or 'an in-memory database'!r}"
        )
    _check_safe(path)
    return KamailioDb("db_sqlite", f"sqlite://{path}")


def _postgres(url: URL) -> KamailioDb:
    if not url.host:
        raise ConfigurationError(
            "database.url: Kamailio reaches PostgreSQL over TCP: give a host, not a socket"
        )
    unknown = sorted(set(url.query) - set(_LIBPQ_ENV))
    if unknown:
        raise ConfigurationError(
            f"database.url: Kamailio's PostgreSQL driver cannot take {', '.join(unknown)}"
        )
    env = {}
    for key, variable in _LIBPQ_ENV.items():
        value = url.query.get(key)
        if value is not None:
            env[variable] = value if isinstance(value, str) else " ".join(value)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    user = f"{url.username}@" if url.username else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port else ""
    text = f"postgres://{user}{host}{port}/{url.database or ''}"
    _check_safe(text)
    return KamailioDb("db_postgres", text, env)


def _check_safe(text: str) -> None:
    if _UNSAFE & set(text):
        raise ConfigurationError(
            "database.url: no quotes, backslashes, spaces or line breaks for Kamailio"
        )
