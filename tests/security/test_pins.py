"""The pin store data model and its versioned JSON form."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.security import Identity, Pin, PinReason, PinState, PinStore, PinStoreError
from tests.security.pki import NOW

EXAMPLE = Identity.domain("example.test")
BOB = Identity.aor("sip:bob@example.test")
A, B = b"\xaa" * 32, b"\xbb" * 32


def pin(fingerprint: bytes, reason: PinReason = PinReason.ALWAYS_TRUST) -> Pin:
    return Pin(fingerprint, NOW, reason, "example.test")


def test_state() -> None:
    store = PinStore()
    assert store.state(EXAMPLE, A) is PinState.NONE
    store.add(EXAMPLE, pin(A))
    assert store.state(EXAMPLE, A) is PinState.MATCHES
    assert store.state(EXAMPLE, B) is PinState.CHANGED
    assert store.state(BOB, A) is PinState.NONE  # pins are per identity


def test_add_replace_remove() -> None:
    store = PinStore()
    store.add(BOB, pin(A))
    store.add(BOB, pin(B, PinReason.VERIFIED_SAFETY_NUMBER))
    store.add(BOB, pin(A))  # same fingerprint again: no duplicate
    assert [p.sha256 for p in store.pins_for(BOB)] == [B, A]
    store.replace(BOB, pin(A))
    assert [p.sha256 for p in store.pins_for(BOB)] == [A]
    assert store.remove(BOB, B) is False
    assert store.remove(BOB, A) is True
    assert store.pins_for(BOB) == ()
    assert len(store) == 0


def test_round_trip_and_format() -> None:
    store = PinStore()
    store.add(EXAMPLE, pin(A))
    store.add(BOB, pin(B, PinReason.VERIFIED_SAFETY_NUMBER))
    data = store.to_bytes()
    assert PinStore.from_bytes(data) == store
    document = json.loads(data)
    assert document["version"] == 1
    assert document["pins"]["domain:example.test"] == [
        {
            "sha256": A.hex(),
            "pinned_at": "2025-06-01T12:00:00+00:00",
            "reason": "always-trust",
            "subject": "example.test",
        }
    ]
    assert store.to_bytes() == PinStore.from_bytes(data).to_bytes()  # stable output


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"[]",
        b'{"pins": {}}',
        b'{"version": 2, "pins": {}}',
        b'{"version": 1}',
        b'{"version": 1, "pins": {"nocolon": []}}',
        b'{"version": 1, "pins": {"domain:x": [{"sha256": "ab"}]}}',
        b'{"version": 1, "pins": {"domain:x": [{"sha256": "' + b"ab" * 32 + b'", '
        b'"pinned_at": "2025-06-01T12:00:00", "reason": "always-trust"}]}}',  # naive time
        b'{"version": 1, "pins": {"domain:x": [{"sha256": "' + b"ab" * 32 + b'", '
        b'"pinned_at": "2025-06-01T12:00:00+00:00", "reason": "because"}]}}',
    ],
)
def test_unreadable_stores_raise(data: bytes) -> None:
    with pytest.raises(PinStoreError):
        PinStore.from_bytes(data)


def test_newer_version_is_refused_with_a_reason() -> None:
    with pytest.raises(PinStoreError, match="newer version"):
        PinStore.from_bytes(b'{"version": 99, "pins": {}}')


_domains = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?\.test", fullmatch=True)
_times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)


@given(
    st.lists(
        st.tuples(
            _domains, st.binary(min_size=32, max_size=32), _times, st.sampled_from(PinReason)
        ),
        max_size=8,
    )
)
def test_any_store_round_trips(entries: list[tuple[str, bytes, dt.datetime, PinReason]]) -> None:
    store = PinStore()
    for domain, fingerprint, when, reason in entries:
        store.add(Identity.domain(domain), Pin(fingerprint, when, reason, domain))
    assert PinStore.from_bytes(store.to_bytes()) == store
