"""API keys, stored hashed (SQLite ``<REMEM_HOME>/keys.sqlite3``, or the Postgres database of
``REMEM_DATABASE_URL``; see :mod:`remem.storage.keys`), each mapped to a tenant or to the admin role.

A key reads ``rk_<key id>_<secret>``: the key id (public, 12 hex chars) finds the row, the secret (32 random bytes,
URL-safe base64) is checked by comparing ``sha256(key)`` with the stored hash in constant time. A plain sha256 is
enough because the key has 256 bits of entropy (no dictionary to attack); the key itself is shown once, at
creation, and never stored. Revoked keys stay listed (with ``revoked_at``) and never authenticate again.

The key table is separate from the data store's lock, so ``remem keys ...`` works while ``remem serve`` runs (the
server reads the table on every request: a revocation takes effect at once, in every worker).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..bounds import bad_char, check_label, check_optional_label
from ..config import Settings
from ..errors import AuthError, NotFoundError, ValidationError
from ..models import utcnow
from ..storage.keys import SQLKeys
from .tenancy import check_tenant

Role = Literal["tenant", "admin"]
PREFIX = "rk_"



class Principal(BaseModel):
    """Who is calling: the key id, its role and (for tenant keys) the tenant."""

    key_id: str
    role: Role
    tenant: str | None = None


class KeyInfo(BaseModel):
    """A key as listed (never the secret)."""

    key_id: str
    role: Role
    tenant: str | None = None
    label: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedKey(KeyInfo):
    """A newly created key: ``api_key`` is shown this one time only."""

    api_key: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys over a key table (:class:`remem.storage.keys.SQLKeys`). Thread-safe."""

    def __init__(self, table: SQLKeys) -> None:
        self.table = table

    @classmethod
    def for_home(cls, home: str | Path) -> KeyStore:
        """The embedded key file ``<home>/keys.sqlite3``."""
        from ..storage.sqlite.db import SQLiteDatabase

        return cls(SQLKeys(SQLiteDatabase(Path(home).expanduser() / "keys.sqlite3", migrate=False), create=True))

    @classmethod
    def for_settings(cls, settings: Settings) -> KeyStore:
        """Postgres when ``REMEM_DATABASE_URL`` is set (shared by every worker), else the embedded key file."""
        if settings.database_url:
            from ..storage.postgres import PostgresDatabase

            return cls(SQLKeys(PostgresDatabase(settings.database_url, pool_size=2)))
        return cls.for_home(settings.home)

    def create(self, *, role: Role = "tenant", tenant: str | None = None, label: str | None = None) -> CreatedKey:
        label = check_optional_label(label, "label")  # remem.bounds: at most 200 characters, no control characters
        if role == "tenant":
            tenant = check_tenant(tenant)
        elif role == "admin":
            if tenant is not None:
                raise ValidationError("an admin key has no tenant")
        else:
            raise ValidationError(f"unknown role {role!r}")
        if label is not None and len(label) > 200:
            raise ValidationError("label is longer than 200 characters")
        key_id = secrets.token_hex(6)
        api_key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = utcnow()
        self.table.insert((key_id, _digest(api_key), role, tenant, label, now.isoformat()))
        return CreatedKey(key_id=key_id, role=role, tenant=tenant, label=label, created_at=now, api_key=api_key)

    def list(self) -> list[KeyInfo]:
        rows = self.table.rows()
        return [
            KeyInfo(key_id=r[0], role=r[1], tenant=r[2], label=r[3], created_at=r[4], revoked_at=r[5]) for r in rows
        ]

    def revoke(self, key_id: str) -> KeyInfo:
        check_label(key_id, "key_id", max_len=64)  # remem.bounds: storable text (SQLite refuses lone surrogates)
        changed = self.table.revoke(key_id, utcnow().isoformat())
        if changed == 0 and not any(k.key_id == key_id for k in self.list()):
            raise NotFoundError(f"no API key {key_id!r}", key_id=key_id)
        return next(k for k in self.list() if k.key_id == key_id)

    def authenticate(self, api_key: str | None) -> Principal:
        """The principal of a valid, unrevoked key; :class:`AuthError` otherwise (same message for every cause)."""
        if not api_key:
            raise AuthError("missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        if not isinstance(api_key, str) or bad_char(api_key) is not None:  # remem.bounds: unencodable text
            raise AuthError("invalid or revoked API key")
        parts = api_key.split("_", 2)
        key_id = parts[1] if len(parts) == 3 and api_key.startswith(PREFIX) else ""
        row = self.table.active(key_id) if key_id else None
        # Compare even when no row matched, so timing does not tell a known key id from an unknown one.
        stored = row[0] if row else "0" * 64
        if not hmac.compare_digest(stored, _digest(api_key)) or row is None:
            raise AuthError("invalid or revoked API key")
        return Principal(key_id=key_id, role=row[1], tenant=row[2])

    def close(self) -> None:
        self.table.close()
