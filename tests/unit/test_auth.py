"""TokenStore: hashed at rest, lookup, clear file errors, reload on change; request context."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from seisan_shared import context
from seisan_shared.auth import (
    ADMIN,
    STAFF,
    TREASURY,
    Principal,
    TokenFileError,
    TokenStore,
    hash_token,
)
from seisan_shared.errors import Unauthenticated


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "tokens.toml"


def test_issue_stores_only_the_hash_and_creates_a_private_file(token_file: Path) -> None:
    token = TokenStore.issue(token_file, "aiko", [STAFF])

    text = token_file.read_text()
    assert token not in text
    assert hash_token(token) in text
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(token) >= 43  # 32 random bytes, urlsafe base64


def test_issued_token_authenticates_and_a_wrong_one_does_not(token_file: Path) -> None:
    aiko = TokenStore.issue(token_file, "aiko", [STAFF])
    ken = TokenStore.issue(token_file, "佐藤 ken", [TREASURY, ADMIN])
    store = TokenStore.load(token_file)

    assert store.authenticate(aiko) == Principal("aiko", frozenset({STAFF}))
    assert store.authenticate(ken) == Principal("佐藤 ken", frozenset({TREASURY, ADMIN}))
    assert store.authenticate(aiko + "x") is None
    assert store.authenticate("") is None
    assert store.authenticate(hash_token(aiko)) is None  # the stored hash is not a credential


def test_tokens_are_unique_per_issue(token_file: Path) -> None:
    first = TokenStore.issue(token_file, "aiko", [STAFF])
    second = TokenStore.issue(token_file, "aiko", [STAFF])
    assert first != second
    assert len(TokenStore.load(token_file).principals()) == 2


def test_principal_with_no_roles_is_allowed_but_holds_none(token_file: Path) -> None:
    token = TokenStore.issue(token_file, "guest", [])
    principal = TokenStore.load(token_file).authenticate(token)
    assert principal is not None
    assert not principal.has_any({STAFF, ADMIN})


def test_has_any() -> None:
    p = Principal("aiko", frozenset({STAFF, TREASURY}))
    assert p.has_any([ADMIN, TREASURY])
    assert not p.has_any([ADMIN])
    assert not p.has_any([])


@pytest.mark.parametrize(
    ("name", "roles", "fragment"),
    [
        ("aiko", ["boss"], "unknown role(s) 'boss'"),
        ("", [STAFF], "non-empty"),
        ("bad\nname", [STAFF], "printable"),
    ],
)
def test_issue_rejects_bad_entries(
    token_file: Path, name: str, roles: list[str], fragment: str
) -> None:
    with pytest.raises(TokenFileError) as err:
        TokenStore.issue(token_file, name, roles)
    assert fragment in str(err.value)
    assert not token_file.exists()


def test_issue_refuses_to_append_to_a_broken_file(token_file: Path) -> None:
    token_file.write_text("[[principal]]\nname = \n")
    with pytest.raises(TokenFileError, match="not valid TOML"):
        TokenStore.issue(token_file, "aiko", [STAFF])


GOOD_HASH = "a" * 64


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("[[principal]\n", ["not valid TOML"]),
        (
            f'[[principal]]\nname = "aiko"\ntoken_sha256 = "{GOOD_HASH}"\n',
            ["principal #1", "'aiko'", "missing key(s) roles"],
        ),
        (
            f'[[principal]]\nname = "ok"\nroles = []\ntoken_sha256 = "{"b" * 64}"\n'
            f'[[principal]]\nname = "ken"\nroles = ["staff", "root"]\n'
            f'token_sha256 = "{GOOD_HASH}"\n',
            ["principal #2", "'ken'", "unknown role(s) 'root'", "known: admin, approver"],
        ),
        (
            '[[principal]]\nname = "aiko"\nroles = ["staff"]\ntoken_sha256 = "plaintext"\n',
            ["'aiko'", "64 lower-case hex"],
        ),
        (
            f'[[principal]]\nname = "aiko"\nroles = "staff"\ntoken_sha256 = "{GOOD_HASH}"\n',
            ["'aiko'", "roles must be a list"],
        ),
        (
            f'[[principal]]\nname = "a"\nroles = []\ntoken_sha256 = "{GOOD_HASH}"\n'
            f'[[principal]]\nname = "b"\nroles = []\ntoken_sha256 = "{GOOD_HASH}"\n',
            ["principal #2", "repeats principal #1"],
        ),
        ("principal = 3\n", ["array of tables"]),
    ],
)
def test_bad_file_errors_name_the_file_and_entry(
    token_file: Path, content: str, fragments: list[str]
) -> None:
    token_file.write_text(content)
    with pytest.raises(TokenFileError) as err:
        TokenStore.load(token_file)
    message = str(err.value)
    assert str(token_file) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_is_a_clear_error(token_file: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenStore.load(token_file)


def test_empty_file_means_no_tokens(token_file: Path) -> None:
    token_file.write_text("")
    assert TokenStore.load(token_file).principals() == []


def test_reloads_when_the_file_changes(token_file: Path) -> None:
    first = TokenStore.issue(token_file, "aiko", [STAFF])
    store = TokenStore.load(token_file, recheck_seconds=0)
    second = TokenStore.issue(token_file, "ken", [ADMIN])

    assert store.authenticate(second) == Principal("ken", frozenset({ADMIN}))
    assert store.authenticate(first) is not None

    # Revocation: rewrite the file without aiko's entry.
    entries = token_file.read_text().split("\n\n")
    token_file.write_text(entries[1])
    assert store.authenticate(first) is None
    assert store.authenticate(second) is not None


def test_does_not_stat_again_within_the_recheck_interval(token_file: Path) -> None:
    TokenStore.issue(token_file, "aiko", [STAFF])
    store = TokenStore.load(token_file, recheck_seconds=3600)
    later = TokenStore.issue(token_file, "ken", [ADMIN])
    assert store.authenticate(later) is None


def test_a_broken_edit_keeps_the_last_good_tokens_and_is_logged(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = TokenStore.issue(token_file, "aiko", [STAFF])
    store = TokenStore.load(token_file, recheck_seconds=0)
    token_file.write_text(token_file.read_text() + "\n[[principal]]\nname = 'x'\n")

    with caplog.at_level(logging.ERROR, logger="seisan.auth"):
        assert store.authenticate(token) is not None
        assert store.authenticate(token) is not None
    errors = [r for r in caplog.records if r.name == "seisan.auth"]
    assert len(errors) == 1  # reported once, not on every check
    assert "missing key(s) roles, token_sha256" in errors[0].getMessage()


def test_in_memory_store_for_tests() -> None:
    store = TokenStore.from_principals({"t0ken": Principal("svc", frozenset({ADMIN}))})
    assert store.authenticate("t0ken") == Principal("svc", frozenset({ADMIN}))
    assert store.authenticate("other") is None


# --- request context --------------------------------------------------------------------------


def test_current_principal_without_one_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        context.current_principal()


def test_bound_sets_and_restores() -> None:
    aiko = Principal("aiko", frozenset({STAFF}))
    with context.bound(aiko, "corr-1"):
        assert context.current_principal() == aiko
        assert context.correlation_id() == "corr-1"
    assert context.principal_or_none() is None
    assert context.correlation_id_or_none() is None


def test_correlation_id_is_generated_once_when_unbound() -> None:
    with context.bound():
        generated = context.correlation_id()
        assert len(generated) == 36
        assert context.correlation_id() == generated


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("x-correlation-id", "abc-123"),), "abc-123"),
        ((("X-Correlation-Id", "  spaced  "),), "spaced"),
        ((("x-correlation-id", "a" * 500),), "a" * 128),
    ],
)
def test_correlation_id_from_metadata(metadata: tuple[tuple[str, str], ...], expected: str) -> None:
    assert context.correlation_id_from_metadata(metadata) == expected


@pytest.mark.parametrize(
    "metadata",
    [None, (), (("x-correlation-id", ""),), (("x-correlation-id", "evil\nline"),)],
)
def test_correlation_id_from_metadata_generates_when_absent_or_unsafe(
    metadata: tuple[tuple[str, str], ...] | None,
) -> None:
    value = context.correlation_id_from_metadata(metadata)
    assert len(value) == 36 and "\n" not in value
