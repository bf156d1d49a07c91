"""Engine events: JSON shape, validation, round trip, and no secret in any of them."""

from __future__ import annotations

import json

import pytest

from softphone.security.certificates import Identity, fingerprint_hex, fingerprint_sha256
from softphone.security.pins import Pin, PinReason, PinStore
from softphone.security.trust import TrustDecisionRequired, evaluate
from softphone.ua.account import Account, Transport
from softphone.ua.events import (
    EVENT_TYPES,
    CallHeld,
    CallMuted,
    CallState,
    ConnectionLost,
    ConnectionRestored,
    DtmfReceived,
    Event,
    MediaDowngraded,
    MediaStarted,
    PeerIdentity,
    Registered,
    RegistrationFailed,
    SmimeStatus,
    TrustProblem,
    TrustRequired,
    TunnelState,
    Unregistered,
    event_from_json,
)
from softphone.ua.secrets import Secret, get_secret, set_password
from tests.keyrings import InMemoryKeyring
from tests.security.pki import NOW, make_ca, make_leaf, make_self_signed

AOR = "sips:alice@example.com"
FP = "AB:" * 31 + "CD"


def sample_events() -> list[Event]:
    return [
        Registered(AOR, 600, "sips:example.com", FP, Transport.TLS),
        RegistrationFailed(AOR, "Forbidden: wrong password", 403, retrying=False),
        RegistrationFailed(AOR, "no answer from the registrar", None, retrying=True),
        Unregistered(AOR, "signed out"),
        TrustRequired(
            waiting_for="registration to example.com",
            identity="example.com",
            problems=(TrustProblem("unknown-ca", 0, "Its certificate is from an unknown CA."),),
            fingerprint=FP,
            chain_subjects=("example.com",),
            changed=False,
            overridable=True,
        ),
        ConnectionLost(AOR, "192.0.2.10:5061", Transport.TLS, "connection reset"),
        ConnectionRestored(AOR, "192.0.2.10:5061", Transport.TLS),
        CallState("c1", "outgoing", "sips:bob@example.com", "ended", "busy", 486),
        MediaStarted(
            "c1",
            "opus",
            True,
            "AEAD_AES_256_GCM",
            "sdes",
            "Audio encrypted; every server on the way holds the key",
            "Encrypted to each server; servers on the way can read it",
        ),
        TunnelState("t1", "outgoing", "sip:bob@example.com", "verified", "", True, "c1"),
        PeerIdentity(
            "c1", "t1", "sip:bob@example.com", FP, "certificate", " ".join(["12345"] * 12)
        ),
        CallHeld("c1", "peer", True),
        DtmfReceived("c1", "#"),
        MediaDowngraded("c1", "the other side turned off encryption (re-INVITE without SRTP)"),
        SmimeStatus("c1", "sent", "signed", "no certificate of sip:bob@example.com is known"),
        CallMuted("c1", True),
    ]


def test_registered_json() -> None:
    event = Registered(AOR, 600, "sips:example.com", FP, "tls")  # type: ignore[arg-type]
    assert event.transport is Transport.TLS
    assert event.to_json() == {
        "event": "registered",
        "aor": AOR,
        "expires": 600,
        "registrar": "sips:example.com",
        "registrar_fingerprint": FP,
        "transport": "tls",
        "algorithm": None,
        "weak": False,
    }
    assert event.to_json_line() == (
        '{"event":"registered","aor":"sips:alice@example.com","expires":600,'
        f'"registrar":"sips:example.com","registrar_fingerprint":"{FP}","transport":"tls",'
        '"algorithm":null,"weak":false}'
    )


def test_every_event_has_its_name_first_and_one_line() -> None:
    names = set()
    for event in sample_events():
        data = event.to_json()
        assert next(iter(data)) == "event"
        assert data["event"] == type(event).name
        names.add(data["event"])
        line = event.to_json_line()
        assert "\n" not in line
        assert json.loads(line) == data
    assert (
        names
        == set(EVENT_TYPES)
        == {
            "registered",
            "registration_failed",
            "unregistered",
            "trust_required",
            "connection_lost",
            "connection_restored",
            "call_state",
            "media_started",
            "tunnel_state",
            "peer_identity",
            "call_held",
            "dtmf_received",
            "media_downgraded",
            "smime_status",
            "call_muted",
        }
    )


def test_failed_and_lost_json() -> None:
    assert RegistrationFailed(AOR, "Forbidden", 403, retrying=False).to_json() == {
        "event": "registration_failed",
        "aor": AOR,
        "reason": "Forbidden",
        "status_code": 403,
        "retrying": False,
    }
    assert ConnectionLost(AOR, "[2001:db8::1]:5061", Transport.TLS, "reset").to_json() == {
        "event": "connection_lost",
        "aor": AOR,
        "remote": "[2001:db8::1]:5061",
        "transport": "tls",
        "reason": "reset",
    }
    assert Unregistered(AOR).to_json() == {"event": "unregistered", "aor": AOR, "reason": ""}


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).name)
def test_json_round_trip(event: Event) -> None:
    assert event_from_json(json.loads(event.to_json_line())) == event


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"event": "exploded"}, "unknown event 'exploded'"),
        ({}, "unknown event None"),
        (
            {"event": "unregistered", "aor": AOR, "password": "x"},
            "unknown fields for unregistered: password",
        ),
        ({"event": "unregistered"}, "bad unregistered event: "),
    ],
)
def test_event_from_bad_json(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        event_from_json(data)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Registered("alice", 600, "sips:example.com", FP, Transport.TLS),
            "aor is not a SIP URI",
        ),
        (
            lambda: Registered(
                "sips:alice:pw@example.com", 600, "sips:example.com", FP, Transport.TLS
            ),
            "aor must not contain a password",
        ),
        (
            lambda: Registered(AOR, 600, "sips:x:pw@example.com", FP, Transport.TLS),
            "registrar must not contain a password",
        ),
        (lambda: Registered(AOR, -1, "sips:example.com", FP, Transport.TLS), "expires must be"),
        (lambda: Registered(AOR, True, "sips:example.com", FP, Transport.TLS), "expires must be"),
        (
            lambda: Registered(AOR, 600, "sips:example.com", None, Transport.TLS),
            "a registration over TLS must say which certificate it trusted",
        ),
        (lambda: Registered(AOR, 600, "sip:example.com", None, "sctp"), "transport must be"),  # type: ignore[arg-type]
        (lambda: Registered(AOR, 600, "tel:+1", None, Transport.TCP), "registrar must be a sip:"),
        (lambda: RegistrationFailed(AOR, "x", 200, retrying=False), "status_code must be"),
        (lambda: RegistrationFailed(AOR, "x", None, retrying="yes"), "retrying must be a bool"),  # type: ignore[arg-type]
        (lambda: Unregistered(AOR, None), "reason must be a str"),  # type: ignore[arg-type]
        (
            lambda: TrustRequired("", "example.com", (), None, (), changed=False, overridable=True),
            "say what is waiting",
        ),
        (
            lambda: TrustRequired("x", "example.com", ("expired",), None, (), False, True),  # type: ignore[arg-type]
            "problems must be TrustProblem values",
        ),
    ],
)
def test_events_are_validated_when_built(build: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        build()  # type: ignore[operator]
    assert str(info.value).startswith(message)


def test_a_secret_in_an_event_is_a_type_error_not_a_leak() -> None:
    event = Unregistered(AOR)
    object.__setattr__(event, "reason", Secret("hunter2"))
    with pytest.raises(TypeError, match="Secret has no JSON form"):
        event.to_json()


# --- trust_required from a real report ------------------------------------------------------


def test_trust_required_from_an_unknown_ca_report() -> None:
    ca = make_ca("Shady Root")
    leaf = make_leaf(ca, cn="example.com", dns=["example.com"])
    report = evaluate([leaf.cert, ca.cert], Identity.domain("example.com"), now=NOW)
    required = TrustDecisionRequired(report, "registration to example.com")
    event = TrustRequired.from_required(required)
    assert event.waiting_for == "registration to example.com"
    assert event.identity == "example.com"
    assert event.fingerprint == fingerprint_hex(leaf.cert)
    assert event.chain_subjects[0] == "example.com"
    assert [p.problem for p in event.problems] == [p.value for p in report.problems]
    assert "unknown-ca" in [p.problem for p in event.problems]
    assert [p.message for p in event.problems] == list(report.messages)
    assert event.changed is False
    assert event.overridable is True
    data = json.loads(event.to_json_line())
    assert data["event"] == "trust_required"
    assert data["problems"][0] == {
        "problem": event.problems[0].problem,
        "certificate": event.problems[0].certificate,
        "message": event.problems[0].message,
    }
    assert event_from_json(data) == event


def test_trust_required_for_a_changed_pinned_certificate() -> None:
    old = make_self_signed(cn="example.com", dns=["example.com"])
    new = make_self_signed(cn="example.com", dns=["example.com"])
    identity = Identity.domain("example.com")
    pins = PinStore()
    pins.add(identity, Pin(fingerprint_sha256(old.cert), NOW, PinReason.ALWAYS_TRUST, "old"))
    report = evaluate([new.cert], identity, now=NOW, pins=pins)
    event = TrustRequired.from_report(report, "registration to example.com")
    assert event.changed is True
    assert event.to_json()["changed"] is True
    assert event.fingerprint == fingerprint_hex(new.cert)


# --- no secret in any JSON ------------------------------------------------------------------


def test_no_event_json_contains_the_password(
    memory_keyring: InMemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "Tr0ub4dor&3-unique-7c1e"
    set_password(AOR, password)
    monkeypatch.setenv("ALICE_PW", password)
    for account in (Account(aor=AOR), Account(aor=AOR, password_env="ALICE_PW")):
        secret = get_secret(account)
        assert secret.reveal() == password
        # An engine that formats the secret into a reason by mistake still leaks nothing.
        events: list[Event] = [
            *sample_events(),
            Registered(account.aor, 600, str(account.registrar_uri), FP, Transport.TLS),
            RegistrationFailed(account.aor, f"rejected with {secret}", 403, retrying=False),
            Unregistered(account.aor, f"{secret!r}"),
        ]
        for event in events:
            line = event.to_json_line()
            assert password not in line
            assert password not in repr(event)


def test_registered_says_which_digest_algorithm_and_whether_it_is_weak() -> None:
    event = Registered(
        aor="sips:alice@example.test",
        expires=600,
        registrar="sips:example.test",
        registrar_fingerprint="AB:CD",
        transport=Transport.TLS,
        algorithm="MD5",
        weak=True,
    )
    data = event.to_json()
    assert data["algorithm"] == "MD5" and data["weak"] is True
    assert event_from_json(json.loads(event.to_json_line())) == event
