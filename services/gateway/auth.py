"""Gateway rules without I/O: credentials, password hashing and bearer tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jwt.algorithms import HMACAlgorithm

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


class _PreparedHMAC(HMACAlgorithm):
    """HS256 with a key prepared once: PyJWT prepares the key on every call, and its checks
    that the secret is not a PEM or SSH key cost more than the signature itself."""

    def __init__(self, secret: str) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._key = super().prepare_key(secret)

    def prepare_key(self, key: Any) -> bytes:
        """The key prepared at construction (every call passes that same secret)."""
        return self._key


def _codec(secret: str) -> jwt.PyJWT:
    codec = jwt.PyJWT()
    # PyJWT keeps its algorithms on its signature layer; ours replaces the stock HS256 there.
    codec._jws.unregister_algorithm("HS256")
    codec._jws.register_algorithm("HS256", _PreparedHMAC(secret))
    return codec


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and checks HS256 bearer tokens (the key prepared once, at construction)."""

    secret: str
    ttl_s: int
    _codec: jwt.PyJWT = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codec", _codec(self.secret))

    def issue(self, user_id: UUID, name: str) -> Token:
        """A token for ``user_id``."""
        now = int(time.time())
        token = self._codec.encode(
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
            claims = self._codec.decode(
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
