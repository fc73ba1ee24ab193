"""API tokens of the team server: hashed at rest, scoped, revocable.

A token is shown once, when it is made (``mlp_<id>_<secret>``); the store keeps only the
SHA-256 of the secret. Tokens are random (32 bytes), so a fast hash is the right one: there
is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import JSON, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import ConfigError, NotFoundError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["SCOPES", "ApiToken", "TokenRecord", "TokenRepository", "check_scope"]

_NAME_RE = re.compile(r"^[\w.\-]{1,64}$")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    secret_hash: Mapped[str] = mapped_column(String, unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


# -- records and repository ----------------------------------------------------------------------

#: Scopes, each allowing what the ones before it allow.
SCOPES: tuple[str, ...] = ("read", "run", "admin")
TOKEN_PREFIX = "mlp_"


class TokenRecord(_Record):
    """An API token as the store keeps it (never the secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def scope(self) -> str:
        """The widest scope it holds."""
        return max(self.scopes, key=SCOPES.index) if self.scopes else "read"

    def allows(self, scope: str) -> bool:
        """Whether this token may do what ``scope`` covers."""
        return self.revoked_at is None and SCOPES.index(self.scope) >= SCOPES.index(scope)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_scope(scope: str) -> str:
    """Return ``scope`` if it is one.

    Raises:
        ConfigError: it is not (the message lists the scopes).
    """
    if scope not in SCOPES:
        raise ConfigError(f"unknown token scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")
    return scope


class TokenRepository:
    """API tokens: made (the secret shown once), verified, listed, revoked."""

    #: ``last_used_at`` is written at most this often per token (a busy client is not a write per request).
    TOUCH_SECONDS = 60.0

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, scope: str = "run") -> tuple[TokenRecord, str]:
        """A new token with ``scope``; returns it and the token text (shown once, never stored)."""
        check_scope(scope)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ConfigError(f"invalid token name {name!r}", hint="1-64 letters, digits, '-', '_' or '.', e.g. ci-bot")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.db.session(write=True) as session:
            row = ApiToken(id=token_id, name=name, secret_hash=_hash(secret), scopes=[scope], created_at=_now(),
                           last_used_at=None, revoked_at=None)
            session.add(row)
            session.flush()
            record = TokenRecord.model_validate(row)
        return record, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def verify(self, text: str) -> TokenRecord | None:
        """The live token ``text`` is, or None (unknown, malformed, revoked)."""
        if not text.startswith(TOKEN_PREFIX):
            return None
        token_id, sep, secret = text[len(TOKEN_PREFIX):].partition("_")
        if not sep or not token_id or not secret or len(text) > 200:
            return None
        with self.db.session(write=False) as session:
            row = session.get(ApiToken, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
                return None
            record = TokenRecord.model_validate(row)
        if record.revoked_at is not None:
            return None
        now = _now()
        last = record.last_used_at
        if last is None or (now - (last if last.tzinfo else last.replace(tzinfo=timezone.utc))).total_seconds() \
                > self.TOUCH_SECONDS:
            with self.db.session(write=True) as session:
                session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        return record

    def list(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at))
            return [TokenRecord.model_validate(r) for r in rows]

    def revoke_named(self, name: str) -> int:
        """Revoke every live token called ``name`` in one statement; returns how many."""
        with self.db.session(write=True) as session:
            done = session.execute(update(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
                                   .values(revoked_at=_now()))
            return int(getattr(done, "rowcount", 0) or 0)  # an UPDATE's result is a CursorResult

    def count_live(self) -> int:
        """How many tokens are not revoked."""
        with self.db.session(write=False) as session:
            return len(session.scalars(select(ApiToken.id).where(ApiToken.revoked_at.is_(None))).all())

    def revoke(self, name_or_id: str) -> TokenRecord:
        """Revoke the token with this id (or, if unique, this name).

        Raises:
            NotFoundError: no such token, or the name is shared (use the id).
        """
        with self.db.session(write=True) as session:
            row = session.get(ApiToken, name_or_id)
            if row is None:
                rows = session.scalars(select(ApiToken).where(ApiToken.name == name_or_id)).all()
                if len(rows) > 1:
                    raise NotFoundError(f"{len(rows)} tokens are named {name_or_id!r}",
                                        hint="revoke by id (`mloop token list` shows them)")
                row = rows[0] if rows else None
            if row is None:
                raise NotFoundError(f"no token {name_or_id!r}", hint="`mloop token list` shows them")
            if row.revoked_at is None:
                row.revoked_at = _now()
            session.flush()
            return TokenRecord.model_validate(row)
