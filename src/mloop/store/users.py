"""Console users of the team server: a name, an argon2 password hash, a scope."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import MissingExtraError, NotFoundError, StoreError, UserError, UserExistsError
from mloop.store.base import _Record
from mloop.store.models import Base
from mloop.store.tokens import SCOPES

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from mloop.store.database import Database
    from mloop.store.tokens import TokenRepository

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "User", "UserRecord", "UserRepository", "check_password",
           "check_user_name", "login_token_name", "revoke_login_tokens"]


class User(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    password_hash: Mapped[str] = mapped_column(String)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


# -- records and repository ----------------------------------------------------------------------

#: 1-32 letters, digits, '-', '_' or '.', starting with a letter or digit (the name of a login's
#: API token, ``login-NAME``, must fit the 64 characters of a token name).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
#: Passwords are at least this long ...
MIN_PASSWORD = 8
#: ... and at most this long: argon2 reads all of it, so an unbounded one is work for an attacker to hand us.
MAX_PASSWORD = 1024


class UserRecord(_Record):
    """A console user as the store keeps it (never the password hash)."""

    name: str
    scopes: list[str]
    created_at: datetime
    last_login_at: datetime | None = None
    disabled_at: datetime | None = None

    @property
    def scope(self) -> str:
        """The widest scope it holds."""
        return max(self.scopes, key=SCOPES.index) if self.scopes else "read"

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name.

    Raises:
        UserError: it is not.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserError(f"invalid user name {name!r}",
                        hint="1-32 letters, digits, '-', '_' or '.', starting with a letter or digit, e.g. alice")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is acceptable as a new password.

    Raises:
        UserError: it is too short or too long (the message never repeats it).
    """
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters long",
                        hint="choose a longer passphrase")
    return password


def _default_hasher() -> PasswordHasher:
    try:
        from argon2 import PasswordHasher
    except ImportError as exc:
        raise MissingExtraError("argon2-cffi", "serve") from exc
    return PasswordHasher()


class UserRepository:
    """Console users: added (password hashed with argon2id), verified at login, listed, disabled.

    :meth:`login` does the same work for an unknown or disabled user as for a real one (it
    verifies against a dummy hash), so the time it takes does not tell which names exist.
    """

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self._hasher = hasher
        self._dummy: str | None = None

    @property
    def hasher(self) -> PasswordHasher:
        """The argon2 hasher (its parameters are the ones new hashes get; older ones are rehashed at login)."""
        if self._hasher is None:
            self._hasher = _default_hasher()
        return self._hasher

    @hasher.setter
    def hasher(self, value: PasswordHasher) -> None:
        self._hasher = value
        self._dummy = None

    def add(self, name: str, password: str, scope: str = "run") -> UserRecord:
        """A new user with ``scope``.

        Raises:
            UserError: a bad name, scope or password.
            UserExistsError: a user of that name exists (disabled ones too).
        """
        check_user_name(name)
        if scope not in SCOPES:
            raise UserError(f"unknown scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")
        password_hash = self.hasher.hash(check_password(password))
        try:
            with self.db.session(write=True) as session:
                if session.get(User, name) is not None:
                    raise UserExistsError(f"a user {name!r} exists already", user=name,
                                          hint="`mloop user passwd NAME` sets a new password")
                row = User(name=name, password_hash=password_hash, scopes=[scope], created_at=_now(),
                           last_login_at=None, disabled_at=None)
                session.add(row)
                session.flush()
                return UserRecord.model_validate(row)
        except StoreError as exc:  # another process added it between the check and the insert
            if isinstance(exc.__cause__, IntegrityError):
                raise UserExistsError(f"a user {name!r} exists already", user=name) from exc
            raise

    def get(self, name: str) -> UserRecord:
        """The user ``name``.

        Raises:
            NotFoundError: there is none.
        """
        with self.db.session(write=False) as session:
            row = session.get(User, name) if isinstance(name, str) else None
            if row is None:
                raise NotFoundError(f"no user {name!r}", hint="`mloop user list` shows them")
            return UserRecord.model_validate(row)

    def list(self) -> list[UserRecord]:
        """Every user, disabled ones too, by name."""
        with self.db.session(write=False) as session:
            return [UserRecord.model_validate(r) for r in session.scalars(select(User).order_by(User.name))]

    def set_password(self, name: str, password: str) -> UserRecord:
        """Give ``name`` a new password.

        Raises:
            UserError: the password is too short or too long.
            NotFoundError: no such user.
        """
        password_hash = self.hasher.hash(check_password(password))
        with self.db.session(write=True) as session:
            row = session.get(User, name)
            if row is None:
                raise NotFoundError(f"no user {name!r}", hint="`mloop user list` shows them")
            row.password_hash = password_hash
            session.flush()
            return UserRecord.model_validate(row)

    def disable(self, name: str) -> UserRecord:
        """Disable ``name``: its logins are refused from now on (the row stays, so the name stays taken).

        Raises:
            NotFoundError: no such user.
        """
        with self.db.session(write=True) as session:
            row = session.get(User, name)
            if row is None:
                raise NotFoundError(f"no user {name!r}", hint="`mloop user list` shows them")
            if row.disabled_at is None:
                row.disabled_at = _now()
            session.flush()
            return UserRecord.model_validate(row)

    def login(self, name: str, password: str) -> UserRecord | None:
        """The user whose name and password these are, with ``last_login_at`` now; None when the
        name is unknown, the password wrong, or the user disabled (the same work in every case)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        row_hash: str | None = None
        record: UserRecord | None = None
        if isinstance(name, str) and _NAME_RE.fullmatch(name):
            with self.db.session(write=False) as session:
                row = session.get(User, name)
                if row is not None:
                    row_hash = row.password_hash
                    record = UserRecord.model_validate(row)
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            password = ""
        try:
            self.hasher.verify(row_hash or self._dummy_hash(), password)
            ok = row_hash is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or record is None or record.disabled:
            return None
        values: dict[str, Any] = {"last_login_at": _now()}
        assert row_hash is not None
        if self.hasher.check_needs_rehash(row_hash):
            values["password_hash"] = self.hasher.hash(password)
        with self.db.session(write=True) as session:
            session.execute(update(User).where(User.name == name).values(**values))
        return record.model_copy(update={"last_login_at": values["last_login_at"]})

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy


def login_token_name(name: str) -> str:
    """The name of the API tokens a login of user ``name`` makes."""
    return f"login-{name}"


def revoke_login_tokens(tokens: TokenRepository, name: str) -> int:
    """Revoke the live tokens logins of user ``name`` made; returns how many."""
    return tokens.revoke_named(login_token_name(name))
