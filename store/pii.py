"""Citizens' PII at rest: AES-256-GCM per value, keyed hashes for exact-match lookup.

A stored value reads ``pii1:<key id>:<base64url(nonce + ciphertext + tag)>``. The column's
purpose ("citizens.phone") is the associated data, so a value moved to another column does
not decrypt. The first key of a :class:`Keyring` encrypts; every key decrypts, and lookups
match the hash under every key, so a rotation (`hotline pii rotate`) runs while the gateway
serves. The keyring rides on the engine's dialect (:func:`attach`), never in a global.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

from store.phones import same_number

ENV = "HOTLINE_PII_KEYS"
FORMAT = "pii1"
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NONCE_BYTES = 12
# The lookup kinds: each has a `<kind>_hash` column beside the encrypted `<kind>` column.
LOOKUPS = ("phone", "email")
_ATTRIBUTE = "hotline_pii_keyring"


class PiiError(Exception):
    """A PII value cannot be written or read: no key, an unknown key, or altered data."""


def normalize(kind: str, value: str) -> str:
    """The form a lookup hash is taken of: a phone in E.164 (so +86 138-0013-8000 and
    13800138000 are one citizen, and +86 10 12345678 and 010-12345678 one landline), an
    e-mail address in lower case."""
    if kind == "phone":
        return same_number(value)
    if kind == "email":
        return value.strip().lower()
    raise ValueError(f"no lookup for {kind!r}")


def old_phone_form(value: str) -> str:
    """The form phone hashes were taken of before migration 0017: the last 11 digits, which
    told 010-12345678 from +86 10 12345678. Looked up only while such hashes remain."""
    return re.sub(r"\D", "", value)[-11:]


def _derive(secret: bytes, use: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=use).derive(secret)


class Keyring:
    """The PII keys, current (encrypting) key first."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise PiiError(f"{ENV}: no key")
        self._aead: dict[str, AESGCM] = {}
        self._lookup: dict[str, bytes] = {}
        for key_id, secret in keys:
            if not KEY_ID.match(key_id):
                raise PiiError(f"{ENV}: bad key id {key_id!r} (letters, digits, _ . -)")
            if len(secret) != 32:
                raise PiiError(f"{ENV}: key {key_id!r} is {len(secret)} bytes, not 32")
            if key_id in self._aead:
                raise PiiError(f"{ENV}: key id {key_id!r} given twice")
            self._aead[key_id] = AESGCM(_derive(secret, b"hotline pii aes-256-gcm"))
            self._lookup[key_id] = _derive(secret, b"hotline pii lookup hmac-sha256")
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """``id:base64key[,id2:base64key2]``: 32-byte keys, the first one current."""
        keys = []
        for item in text.split(","):
            key_id, colon, encoded = item.strip().partition(":")
            if not colon:
                raise PiiError(f"{ENV}: expected id:base64key, got {key_id[:8]!r}...")
            try:
                secret = binascii.a2b_base64(
                    encoded.strip().replace("-", "+").replace("_", "/"), strict_mode=True
                )
            except binascii.Error as exc:
                raise PiiError(f"{ENV}: key {key_id!r} is not base64: {exc}") from exc
            keys.append((key_id, secret))
        return cls(keys)

    @staticmethod
    def new_key() -> str:
        """A fresh ``id:base64key`` for HOTLINE_PII_KEYS (or the key file)."""
        return f"{secrets.token_hex(4)}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"

    @property
    def key_ids(self) -> list[str]:
        return list(self._aead)

    def encrypt(self, plaintext: str, purpose: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(nonce, plaintext.encode(), purpose.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{FORMAT}:{self.current}:{body}"

    def decrypt(self, stored: str, purpose: str) -> str:
        key_id = self.key_id(stored, purpose)
        aead = self._aead.get(key_id)
        if aead is None:
            raise PiiError(
                f"{purpose}: written under PII key {key_id!r}, which is not in {ENV} "
                f"(known: {', '.join(self._aead)})"
            )
        body = stored.rpartition(":")[2]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise PiiError(
                f"{purpose}: a stored value does not decrypt under key {key_id!r}: "
                "altered, or written for another column"
            ) from exc

    @staticmethod
    def key_id(stored: str, purpose: str = "value") -> str:
        form, _, rest = stored.partition(":")
        key_id, colon, _ = rest.partition(":")
        if form != FORMAT or not colon:
            raise PiiError(f"{purpose}: a stored value is not encrypted ({FORMAT}:...)")
        return key_id

    def lookup_hash(self, kind: str, value: str | None) -> str | None:
        """The hash stored in ``<kind>_hash``: under the current key; None for no value."""
        return self._hash(self.current, kind, value)

    def lookup_hashes(self, kind: str, value: str, old_forms: bool = False) -> list[str]:
        """The hashes to look ``value`` up by: one per key, so lookups work mid-rotation;
        with ``old_forms``, a phone's hashes in the form before E.164 too, so citizens stored
        before `hotline pii rotate` recomputed their hashes are found."""
        found = [self._hash(key_id, kind, value) for key_id in self._lookup]
        if old_forms and kind == "phone":
            old = old_phone_form(value)
            found += [self._hash(key_id, kind, value, old) for key_id in self._lookup]
        return list(dict.fromkeys(h for h in found if h is not None))

    def _hash(
        self, key_id: str, kind: str, value: str | None, normal: str | None = None
    ) -> str | None:
        if normal is None:
            normal = normalize(kind, value) if value is not None else ""
        if not normal:
            return None
        message = f"{kind}\0{normal}".encode()
        return hmac.new(self._lookup[key_id], message, hashlib.sha256).hexdigest()


def attach(engine: Engine, keyring: Keyring) -> None:
    """Give the engine (and every session and connection of it) its PII keys."""
    setattr(engine.dialect, _ATTRIBUTE, keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring: Keyring | None = getattr(dialect, _ATTRIBUTE, None)
    if keyring is None:
        raise PiiError(
            f"no PII key for this database: set {ENV} (or pii.keys / pii.key_file in "
            "config.yaml); citizens' details are never stored in clear"
        )
    return keyring


# Comparing ciphertexts finds nothing (every value has its own nonce): refuse it loudly.
_UNCOMPARABLE = {
    operators.eq,
    operators.ne,
    operators.lt,
    operators.le,
    operators.gt,
    operators.ge,
    operators.in_op,
    operators.not_in_op,
    operators.like_op,
    operators.not_like_op,
    operators.ilike_op,
    operators.not_ilike_op,
    operators.contains_op,
    operators.startswith_op,
    operators.endswith_op,
    operators.between_op,
}


class Encrypted(TypeDecorator[str]):
    """A text column stored encrypted; ``purpose`` (table.column) is bound into each value."""

    impl = Text
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _UNCOMPARABLE and not (len(other) == 1 and other[0] is None):
                purpose = self.type.purpose  # type: ignore[attr-defined]
                raise TypeError(f"{purpose} is encrypted: look it up by its keyed hash")
            return super().operate(op, *other, **kwargs)

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).encrypt(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).decrypt(value, self.purpose)


def lookup_default(kind: str) -> Callable[[Any], str | None]:
    """A column default filling ``<kind>_hash`` from the ``<kind>`` being inserted, for ORM
    and Core inserts alike (the execution context knows the dialect, hence the keys)."""

    def default(context: Any) -> str | None:
        value = context.get_current_parameters().get(kind)
        return None if value is None else keyring_of(context.dialect).lookup_hash(kind, value)

    return default
