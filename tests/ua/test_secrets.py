"""Passwords: keyring (in memory here), password_env, and the refusal of insecure stores."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, null

from softphone.ua.account import Account
from softphone.ua.secrets import (
    SERVICE,
    KeyringAccessError,
    NoSecureKeyringError,
    PasswordEnvError,
    PasswordNotFoundError,
    Secret,
    check_keyring,
    delete_password,
    get_password,
    get_secret,
    keyring_user,
    set_password,
)
from tests.keyrings import InMemoryKeyring

AOR = "sips:alice@example.com"
PASSWORD = "correct horse battery staple"
NO_STORE = (
    "No secure password store (Secret Service / KWallet / macOS Keychain) is available; "
    "set password_env in the account file for automation, or install and unlock a keyring"
)

Install = Callable[[KeyringBackend], None]


def test_service_name() -> None:
    assert SERVICE == "softphone"


# --- keyring ------------------------------------------------------------------------------


def test_password_from_the_keyring(memory_keyring: InMemoryKeyring) -> None:
    set_password(AOR, PASSWORD)
    assert memory_keyring.store == {("softphone", AOR): PASSWORD}
    account = Account(aor=AOR)
    assert get_password(account) == PASSWORD
    secret = get_secret(account)
    assert isinstance(secret, Secret)
    assert secret.reveal() == PASSWORD


def test_keyring_user_is_the_canonical_aor(memory_keyring: InMemoryKeyring) -> None:
    assert keyring_user("sips:alice@EXAMPLE.com;transport=tls") == AOR
    set_password("sips:alice@Example.COM", PASSWORD)
    assert get_password(Account(aor="sips:alice@example.com")) == PASSWORD
    assert keyring_user("sip:alice@example.com") != keyring_user(AOR)  # sip and sips differ
    for bad in ["tel:+1234", "sips:example.com", "not a uri"]:
        with pytest.raises(ValueError, match="not a sip: or sips: address of record"):
            keyring_user(bad)
    with pytest.raises(ValueError) as info:
        keyring_user("sips:alice:hunter2@example.com")
    assert "hunter2" not in str(info.value)


def test_missing_password(memory_keyring: InMemoryKeyring) -> None:
    with pytest.raises(PasswordNotFoundError) as info:
        get_password(Account(aor=AOR))
    assert str(info.value) == (
        'No password for sips:alice@example.com in the keyring (service "softphone", user name '
        '"sips:alice@example.com"); store one, or set password_env in the account file'
    )


def test_set_replaces_and_delete_removes(memory_keyring: InMemoryKeyring) -> None:
    set_password(AOR, "old")
    set_password(AOR, Secret(PASSWORD))
    assert get_password(Account(aor=AOR)) == PASSWORD
    assert delete_password(AOR) is True
    assert memory_keyring.store == {}
    assert delete_password(AOR) is False
    with pytest.raises(ValueError, match="empty password"):
        set_password(AOR, "")


# --- no secure store ----------------------------------------------------------------------


def test_fail_backend_is_reported_in_plain_words(fail_keyring: object) -> None:
    for attempt in (
        lambda: get_password(Account(aor=AOR)),
        lambda: set_password(AOR, PASSWORD),
        lambda: delete_password(AOR),
        check_keyring,
    ):
        with pytest.raises(NoSecureKeyringError) as info:
            attempt()
        assert str(info.value) == NO_STORE + ". (keyring found no backend)"
        assert info.value.backend == "keyring.backends.fail.Keyring"


class PlaintextKeyring(InMemoryKeyring):
    """Looks like keyrings.alt's plaintext file backend (not installed here, and never used)."""


PlaintextKeyring.__module__ = "keyrings.alt.file"


class CryptFileKeyring(InMemoryKeyring):
    pass


CryptFileKeyring.__module__ = "keyrings.alt.file"


@pytest.mark.parametrize("kind", [PlaintextKeyring, CryptFileKeyring])
def test_file_backends_are_refused(install_keyring: Install, kind: type[InMemoryKeyring]) -> None:
    backend = kind()
    install_keyring(backend)
    with pytest.raises(NoSecureKeyringError) as info:
        set_password(AOR, PASSWORD)
    name = f"keyrings.alt.file.{kind.__qualname__}"
    assert (
        str(info.value)
        == NO_STORE + f". (the keyring backend {name} keeps passwords in a file: refused)"
    )
    assert backend.store == {}  # nothing was written
    backend.store[(SERVICE, AOR)] = PASSWORD
    with pytest.raises(NoSecureKeyringError):
        get_password(Account(aor=AOR))


def test_null_backend_is_refused(install_keyring: Install) -> None:
    install_keyring(null.Keyring())  # type: ignore[no-untyped-call]
    with pytest.raises(NoSecureKeyringError) as info:
        get_password(Account(aor=AOR))
    assert (
        info.value.why
        == "the keyring backend is keyring.backends.null.Keyring, which stores nothing"
    )


def chain_of(*members: KeyringBackend) -> chainer.ChainerBackend:
    class Chain(chainer.ChainerBackend):
        backends = list(members)

    return Chain()  # type: ignore[no-untyped-call]


def test_chain_with_a_file_member_is_refused(install_keyring: Install) -> None:
    secure, plaintext = InMemoryKeyring(), PlaintextKeyring()
    install_keyring(chain_of(secure, plaintext))
    with pytest.raises(NoSecureKeyringError):
        set_password(AOR, PASSWORD)
    assert secure.store == plaintext.store == {}


def test_empty_chain_is_refused(install_keyring: Install) -> None:
    install_keyring(chain_of())
    with pytest.raises(NoSecureKeyringError, match=r"\(keyring found no backend\)$"):
        check_keyring()


def test_chain_of_secure_members_is_used(install_keyring: Install) -> None:
    member = InMemoryKeyring()
    install_keyring(chain_of(member))
    set_password(AOR, PASSWORD)
    assert member.store == {(SERVICE, AOR): PASSWORD}
    assert get_password(Account(aor=AOR)) == PASSWORD


class BrokenKeyring(InMemoryKeyring):
    def __init__(self, error: keyring.errors.KeyringError) -> None:
        super().__init__()
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error


def test_locked_keyring(install_keyring: Install) -> None:
    install_keyring(BrokenKeyring(keyring.errors.KeyringLocked("Failed to unlock the keyring!")))
    with pytest.raises(KeyringAccessError) as info:
        get_password(Account(aor=AOR))
    assert str(info.value) == (
        "Could not read the password for sips:alice@example.com: the keyring is locked; "
        "unlock it first"
    )
    assert isinstance(info.value.__cause__, keyring.errors.KeyringLocked)


def test_other_keyring_failures(install_keyring: Install) -> None:
    install_keyring(BrokenKeyring(keyring.errors.PasswordSetError("D-Bus said no")))
    with pytest.raises(KeyringAccessError) as info:
        set_password(AOR, PASSWORD)
    assert str(info.value) == (
        "Could not store the password for sips:alice@example.com: PasswordSetError: D-Bus said no"
    )
    assert PASSWORD not in str(info.value)


def test_no_keyring_error_from_a_secure_looking_backend(install_keyring: Install) -> None:
    install_keyring(BrokenKeyring(keyring.errors.NoKeyringError("no backend")))
    with pytest.raises(NoSecureKeyringError, match=r"\(keyring found no backend\)$"):
        get_password(Account(aor=AOR))


# --- password_env -------------------------------------------------------------------------


def test_password_env_wins_over_the_keyring(memory_keyring: InMemoryKeyring) -> None:
    memory_keyring.store[(SERVICE, AOR)] = "from the keyring"
    account = Account(aor=AOR, password_env="ALICE_PW")
    assert get_password(account, environ={"ALICE_PW": PASSWORD}) == PASSWORD


def test_password_env_needs_no_keyring(
    fail_keyring: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICE_PW", PASSWORD)
    assert get_password(Account(aor=AOR, password_env="ALICE_PW")) == PASSWORD


def test_password_env_unset_or_empty(memory_keyring: InMemoryKeyring) -> None:
    memory_keyring.store[(SERVICE, AOR)] = PASSWORD  # never used as a fallback
    account = Account(aor=AOR, password_env="ALICE_PW")
    with pytest.raises(PasswordEnvError) as info:
        get_password(account, environ={})
    assert str(info.value) == (
        "The account file takes the password from the environment variable ALICE_PW, "
        "but ALICE_PW is not set"
    )
    with pytest.raises(PasswordEnvError) as info:
        get_password(account, environ={"ALICE_PW": ""})
    assert str(info.value).endswith("but ALICE_PW is empty")


# --- Secret -------------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    secret = Secret(PASSWORD)
    percent = "%s" % secret  # noqa: UP031  (old-style formatting must not leak either)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", percent]
    assert shown[:2] == ["Secret('********')", "********"]
    assert all(PASSWORD not in text for text in shown)
    assert PASSWORD not in repr([secret, {"k": secret}])
    assert secret.reveal() == PASSWORD
    assert not hasattr(secret, "__dict__")


def test_secret_is_immutable_unhashable_and_not_picklable() -> None:
    secret = Secret(PASSWORD)
    with pytest.raises(AttributeError):
        secret._value = "x"
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        copy.copy(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_secret_comparison() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"  # a Secret is not a str
    assert bool(Secret("a"))
    assert not bool(Secret(""))
