"""Secrets: format, selector, digest, constant-time comparison."""

from __future__ import annotations

import re

from lastseen.security import tokens


def test_a_secret_carries_its_public_id_and_256_random_bits() -> None:
    key_id = tokens.new_id()
    secret = tokens.new_secret(tokens.KEY_PREFIX, key_id)
    assert re.fullmatch(r"lsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", secret)
    assert tokens.selector(secret.encode()) == key_id.encode()
    device = tokens.new_secret(tokens.DEVICE_PREFIX, key_id)
    assert tokens.selector(device.encode()) == key_id.encode()


def test_secrets_are_never_repeated() -> None:
    assert len({tokens.new_secret("lsk", "0" * 12) for _ in range(1000)}) == 1000


def test_strings_of_another_shape_have_no_selector() -> None:
    for text in (
        b"",
        b"e2e-admin-key",
        b"lsk_short",
        b"xyz_0123456789ab_abc",
        b"lsk_0123456789ab_",
    ):
        assert tokens.selector(text) is None


def test_digest_and_compare() -> None:
    assert tokens.digest(b"x") == tokens.digest(b"x")
    assert len(tokens.digest(b"x")) == 32
    assert tokens.same(tokens.digest(b"x"), tokens.digest(b"x"))
    assert not tokens.same(tokens.digest(b"x"), tokens.digest(b"y"))
