"""Secrets: passwords, login tokens, agent credentials, enrollment tokens.

People choose passwords, so theirs are hashed with argon2 (slow on purpose). Agent credentials and
enrollment tokens are 256-bit random strings: guessing one is hopeless, so a fast SHA-256 is the
right hash, and a heartbeat does not pay argon2's tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sdd.protocol import AGENT_CREDENTIAL_PREFIX, ENROLLMENT_TOKEN_PREFIX

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong username costs as long as a wrong
# password and the two cannot be told apart by timing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

SESSION_PASSWORD_LENGTH = 24


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password(length: int = SESSION_PASSWORD_LENGTH) -> str:
    """A password for people to paste: letters and digits only, no look-alikes."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def new_agent_credential() -> str:
    return AGENT_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def new_enrollment_token() -> str:
    return ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def load_or_create_secret_key(path: Path) -> str:
    """The token-signing key, made once and kept 0600 beside the database."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(key)
    tmp.replace(path)
    return key


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    token_version: int
    expires_at: datetime


class TokenSigner:
    algorithm = "HS256"

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def issue(self, user_id: str, token_version: int) -> tuple[str, datetime]:
        expires_at = datetime.now(UTC) + timedelta(seconds=self._ttl)
        token = jwt.encode(
            {"sub": user_id, "ver": token_version, "exp": expires_at, "typ": "user"},
            self._key,
            algorithm=self.algorithm,
        )
        return token, expires_at

    def verify(self, token: str) -> TokenClaims | None:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[self.algorithm], options={"require": ["sub", "exp", "ver"]}
            )
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != "user":
            return None
        return TokenClaims(
            user_id=str(claims["sub"]),
            token_version=int(claims["ver"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
