"""API keys: creation, hashing, revocation, and the in-memory cache that authenticates requests.

A key is `ls_` + 40 random url-safe characters. Only its sha256 is stored (a high-entropy random
key needs no slow hash), with the first characters kept as a prefix so people can tell keys apart.
Requests are authenticated against an in-memory map refreshed every `key_cache_seconds`, so auth
costs no database round trip and a revocation applies everywhere within that interval.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.config import ROLES
from serving.db import api_keys, as_utc, utcnow
from serving.refresher import Refresher

log = logging.getLogger(__name__)

KEY_PREFIX = "ls_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who is calling: the key's name and role (never the key itself)."""

    name: str
    role: str


@dataclass(frozen=True)
class KeyRecord:
    name: str
    role: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCommandError(ValueError):
    """A key operation a user asked for cannot be done; the message says why and what to do."""


class KeyExists(KeyCommandError):
    """A key with that name exists already (active or revoked)."""


class KeyNotFound(KeyCommandError):
    """No key has that name."""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise KeyCommandError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def create_key(engine: Engine, name: str, role: str, key: str | None = None) -> str:
    """Store a new key called `name` with `role`; return the key (shown once, stored hashed)."""
    _check_role(role)
    name = name.strip()
    if not name:
        raise KeyCommandError(
            "a key needs a non-empty name, e.g. `leadscore keys create hubspot --role scorer`"
        )
    key = key or generate_key()
    with engine.begin() as connection:
        existing = connection.execute(
            sa.select(api_keys.c.revoked_at).where(api_keys.c.name == name)
        ).first()
        if existing is not None:
            state = "revoked" if existing.revoked_at else "active"
            raise KeyExists(
                f"a key named {name!r} already exists ({state}); choose another name"
                + (
                    ""
                    if existing.revoked_at
                    else f" or revoke it first with `leadscore keys revoke {name}`"
                )
            )
        connection.execute(
            api_keys.insert().values(
                name=name,
                role=role,
                key_hash=hash_key(key),
                key_prefix=key[:8],
                created_at=utcnow(),
            )
        )
    log.info("created API key %r with role %s", name, role)
    return key


def ensure_keys(engine: Engine, keys: list[tuple[str, str, str]]) -> None:
    """Make sure each (name, role, key) from the bootstrap setting exists and is active.

    Replicas starting together run this at once: when another replica inserts the same name
    between our read and our insert, the unique name refuses ours and we read again.
    """
    for attempt in range(3):
        try:
            _ensure_keys_once(engine, keys)
            return
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
            log.info("another replica created the bootstrap keys at the same time; reading again")


def _ensure_keys_once(engine: Engine, keys: list[tuple[str, str, str]]) -> None:
    with engine.begin() as connection:
        for name, role, key in keys:
            digest = hash_key(key)
            row = connection.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
            if row is None:
                connection.execute(
                    api_keys.insert().values(
                        name=name,
                        role=role,
                        key_hash=digest,
                        key_prefix=key[:8],
                        created_at=utcnow(),
                    )
                )
            elif row.key_hash != digest or row.role != role or row.revoked_at is not None:
                connection.execute(
                    api_keys.update()
                    .where(api_keys.c.name == name)
                    .values(role=role, key_hash=digest, key_prefix=key[:8], revoked_at=None)
                )


def list_keys(engine: Engine, include_revoked: bool = True) -> list[KeyRecord]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as connection:
        return [
            KeyRecord(r.name, r.role, r.key_prefix, as_utc(r.created_at), as_utc(r.revoked_at))
            for r in connection.execute(query)
        ]


def revoke_key(engine: Engine, name: str) -> KeyRecord:
    """Revoke the key called `name`; it stops working within the cache interval."""
    with engine.begin() as connection:
        row = connection.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
        if row is None:
            known = connection.execute(
                sa.select(api_keys.c.name).order_by(api_keys.c.name)
            ).scalars()
            names = ", ".join(known) or "none yet"
            raise KeyNotFound(f"no key named {name!r}; existing keys: {names}")
        revoked_at = as_utc(row.revoked_at)
        if revoked_at is None:
            revoked_at = utcnow()
            connection.execute(
                api_keys.update().where(api_keys.c.name == name).values(revoked_at=revoked_at)
            )
    log.info("revoked API key %r", name)
    return KeyRecord(row.name, row.role, row.key_prefix, as_utc(row.created_at), revoked_at)


class KeyCache:
    """Active keys by hash, refreshed from the database every `refresh_seconds` by a `Refresher`.

    `lookup` is a dict read: no I/O on the request path. If the database is unreachable the last
    known keys stay in force (the refresher logs the error once per outage).
    """

    def __init__(self, engine: Engine, refresh_seconds: float = 0.5) -> None:
        self._engine = engine
        self._keys: dict[str, ApiKey] = {}
        self.loaded = False
        self.refresher = Refresher("leadscore-key-cache", self.refresh, refresh_seconds)

    def refresh(self) -> None:
        query = sa.select(api_keys.c.key_hash, api_keys.c.name, api_keys.c.role).where(
            api_keys.c.revoked_at.is_(None)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        # Swap the whole map: readers see either the old or the new one, never a half-built one.
        self._keys = {row.key_hash: ApiKey(row.name, row.role) for row in rows}
        self.loaded = True

    def lookup(self, key: str) -> ApiKey | None:
        return self._keys.get(hash_key(key))

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # the service still starts; /readyz reports the database
            log.error("could not load API keys: %s", error)
        self.refresher.start()

    def stop(self) -> None:
        self.refresher.stop()
