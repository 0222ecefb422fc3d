"""Password hashing, login tokens and agent secrets."""

from __future__ import annotations

import time

from sdd.server.services.security import (
    TokenSigner,
    generate_password,
    hash_password,
    hash_secret,
    new_agent_credential,
    secret_matches,
    verify_password,
)


def test_passwords_are_hashed_with_argon2_and_verify() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong horse")


def test_an_unknown_user_never_verifies() -> None:
    assert not verify_password(None, "anything")


def test_a_corrupt_hash_does_not_crash() -> None:
    assert not verify_password("not-a-hash", "x")


def test_generated_session_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    assert all(len(p) >= 20 and p.isalnum() for p in passwords)


def test_tokens_round_trip() -> None:
    signer = TokenSigner("k" * 32, ttl_seconds=60)
    token, _ = signer.issue("user-1", 3)
    claims = signer.verify(token)
    assert claims is not None and claims.user_id == "user-1" and claims.token_version == 3


def test_a_token_signed_with_another_key_is_refused() -> None:
    token, _ = TokenSigner("a" * 32, 60).issue("u", 0)
    assert TokenSigner("b" * 32, 60).verify(token) is None


def test_an_expired_token_is_refused() -> None:
    signer = TokenSigner("k" * 32, ttl_seconds=-1)
    token, _ = signer.issue("u", 0)
    time.sleep(0.01)
    assert signer.verify(token) is None


def test_a_tampered_token_is_refused() -> None:
    signer = TokenSigner("k" * 32, 60)
    token, _ = signer.issue("u", 0)
    head, body, sig = token.split(".")
    assert signer.verify(f"{head}.{body}x.{sig}") is None
    assert signer.verify("garbage") is None


def test_agent_credentials_are_random_and_checked_by_hash() -> None:
    credential = new_agent_credential()
    assert credential.startswith("sdda_") and len(credential) > 40
    stored = hash_secret(credential)
    assert secret_matches(credential, stored)
    assert not secret_matches(credential + "x", stored)
    assert new_agent_credential() != credential
