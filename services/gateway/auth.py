"""Gateway rules without I/O: credentials, password hashing and bearer tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from exammentor.contracts.api import Token

_hasher = PasswordHasher()
_ISSUER = "exammentor"
_DUMMY_HASH = _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; hashes a dummy when the user does not exist, so the
    answer takes as long either way and does not reveal which names exist.
    """
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and checks HS256 bearer tokens."""

    secret: str
    ttl_s: int

    def issue(self, user_id: UUID, name: str) -> Token:
        """A token for ``user_id``."""
        now = int(time.time())
        token = jwt.encode(
            {
                "sub": str(user_id),
                "name": name,
                "iat": now,
                "exp": now + self.ttl_s,
                "iss": _ISSUER,
            },
            self.secret,
            algorithm="HS256",
        )
        return Token(
            access_token=token, user_id=user_id, expires_in=self.ttl_s, id=user_id, name=name
        )

    def verify(self, token: str) -> UUID:
        """The user id a valid token names.

        Raises:
            InvalidToken: the token is malformed, forged, expired or not ours.
        """
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                options={"require": ["sub", "exp", "iss"]},
            )
            return UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc


class InvalidToken(Exception):
    """A bearer token that does not authenticate anyone."""
