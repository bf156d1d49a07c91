"""evaluate(): every problem of a chain, with the certificate it concerns, and the decision.

The first table is appendix A of draft-gurbani-sip-tls-use-00, one row per test case, with the
behaviour the draft gives each (see the table in softphone/security/trust.py's docstring).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from softphone.security import (
    Identity,
    PinState,
    PinStore,
    Problem,
    Purpose,
    TrustDecision,
    TrustDecisionError,
    TrustDecisionRequired,
    TrustReport,
    apply_decision,
    decide_automatically,
    evaluate,
)
from softphone.security.trust import DEFAULT_MAX_DEPTH, ID_KP_SIP_DOMAIN
from tests.security.pki import (
    NOW,
    Issued,
    make_ca,
    make_intermediate,
    make_leaf,
    make_self_signed,
    new_key,
)

DOMAIN = Identity.domain("example.test")
P = Problem
DAY = dt.timedelta(days=1)

ROOT = make_ca("Test Root CA")
OTHER_ROOT = make_ca("Unknown Root CA", slot=1)


def found(report: TrustReport) -> list[tuple[Problem, int]]:
    return [(f.problem, f.certificate_index) for f in report.findings]


def run(
    chain: Sequence[Issued | x509.Certificate],
    identity: Identity = DOMAIN,
    *,
    anchors: Sequence[Issued] = (ROOT,),
    **kwargs: object,
) -> TrustReport:
    certs = [c.cert if isinstance(c, Issued) else c for c in chain]
    return evaluate(
        certs,
        identity,
        now=kwargs.pop("now", NOW),  # type: ignore[arg-type]
        anchors=[a.cert for a in anchors],
        **kwargs,  # type: ignore[arg-type]
    )


def intermediates(count: int, root: Issued = ROOT) -> list[Issued]:
    chain = [root]
    for i in range(count):
        chain.append(make_intermediate(chain[-1], f"Intermediate {i + 1}", slot=i + 1))
    return chain[1:]


# --- appendix A of draft-gurbani-sip-tls-use-00 ---------------------------------------------


@dataclass(frozen=True)
class Case:
    build: Callable[[], list[Issued]]
    findings: list[tuple[Problem, int]]
    decision: TrustDecision | None  # None: a person decides (TrustDecisionRequired)


def _chain_of(depth: int) -> list[Issued]:
    inter = intermediates(depth)
    return [make_leaf(inter[-1], dns=["example.test"]), *reversed(inter)]


APPENDIX_A = {
    # Trusted CA, host in the subject DN, subjectAltName empty: continue.
    "A.1.1 good, CN only": Case(
        lambda: [make_leaf(ROOT, cn="example.test")], [], TrustDecision.ACCEPT_ONCE
    ),
    # Host in subjectAltName, the DN says other things: continue.
    "A.1.2 good, SAN with other DN": Case(
        lambda: [make_leaf(ROOT, cn="Example Telephony Customer Care", dns=["example.test"])],
        [],
        TrustDecision.ACCEPT_ONCE,
    ),
    "A.1.2 good, SAN sip URI": Case(
        lambda: [make_leaf(ROOT, cn="Example Telephony", uris=["sip:example.test"])],
        [],
        TrustDecision.ACCEPT_ONCE,
    ),
    # Expired: "the client must immediately close the connection" -- closed at once (see
    # test_expired_closes_at_once_then_asks), and the person is asked with the reason.
    "A.2.1 expired": Case(
        lambda: [make_leaf(ROOT, dns=["example.test"], not_after=NOW - DAY)],
        [(P.EXPIRED, 0)],
        None,
    ),
    # No name anywhere: "depends on the implementation"; ours asks (default: don't connect).
    "A.2.2 no name": Case(
        lambda: [make_leaf(ROOT, cn=None, org="Example Telephony")], [(P.NO_NAME, 0)], None
    ),
    # Wrong CN, no SAN: termination recommended -- a person decides, "Don't connect" default.
    "A.2.3 wrong CN": Case(
        lambda: [make_leaf(ROOT, cn="wrong.test")], [(P.NAME_MISMATCH, 0)], None
    ),
    "A.2.4 wrong SAN": Case(
        lambda: [make_leaf(ROOT, cn="Example Telephony", dns=["wrong.test"])],
        [(P.NAME_MISMATCH, 0)],
        None,
    ),
    "A.2.5 unknown CA": Case(
        lambda: [make_leaf(OTHER_ROOT, dns=["example.test"])], [(P.UNKNOWN_CA, 0)], None
    ),
    "A.2.5 unknown CA, root sent": Case(
        lambda: [make_leaf(OTHER_ROOT, dns=["example.test"]), OTHER_ROOT],
        [(P.UNKNOWN_CA, 1)],
        None,
    ),
    # Depth: the draft leaves the limit open; ours is DEFAULT_MAX_DEPTH intermediates.
    "A.3 depth at the limit": Case(
        lambda: _chain_of(DEFAULT_MAX_DEPTH), [], TrustDecision.ACCEPT_ONCE
    ),
    "A.3 depth beyond the limit": Case(
        lambda: _chain_of(DEFAULT_MAX_DEPTH + 1), [(P.DEPTH_EXCEEDED, 5)], None
    ),
}


@pytest.mark.parametrize("case", APPENDIX_A.values(), ids=APPENDIX_A.keys())
def test_appendix_a(case: Case) -> None:
    report = run(case.build())
    assert found(report) == case.findings
    assert decide_automatically(report) is case.decision
    if case.decision is None:
        event = TrustDecisionRequired(report, "registration to example.test")
        assert event.default is TrustDecision.REJECT
        assert not event.loud


def test_a_2_1_expired_is_the_persons_decision() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"], not_after=NOW - DAY)])
    assert report.overridable
    assert apply_decision(PinStore(), report, TrustDecision.REJECT, now=NOW) is False
    assert apply_decision(PinStore(), report, TrustDecision.ACCEPT_ONCE, now=NOW) is True


def test_a_1_chain_ends_at_the_anchor_and_is_fingerprinted() -> None:
    inter = intermediates(1)
    leaf = make_leaf(inter[0], dns=["example.test"])
    report = run([leaf, inter[0]])
    assert report.anchored
    assert report.chain == (leaf.cert, inter[0].cert, ROOT.cert)  # anchor added, not sent
    assert len(report.fingerprints) == 3
    assert report.verifier_error is None
    assert [c.subject for c in report.certificates] == [
        "Example Telephony",
        "Intermediate 1",
        "Test Root CA",
    ]


# --- the further cases ------------------------------------------------------------


def test_not_yet_valid() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"], not_before=NOW + DAY)])
    assert found(report) == [(P.NOT_YET_VALID, 0)]
    assert decide_automatically(report) is None
    assert "clock" in report.findings[0].message


def test_self_signed() -> None:
    report = run([make_self_signed(dns=["example.test"])])
    assert found(report) == [(P.SELF_SIGNED, 0)]
    assert not report.anchored
    assert decide_automatically(report) is None


def test_self_signed_certificate_in_the_ca_file_is_trusted_as_is() -> None:
    cert = make_self_signed(dns=["example.test"])
    report = run([cert], anchors=[cert])
    assert found(report) == []
    assert report.anchored


def test_weak_rsa_1024_key_on_the_leaf() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"], key_type="rsa", key_size=1024)])
    assert found(report) == [(P.WEAK_KEY, 0)]
    assert "RSA 1024" in report.findings[0].message


def test_weak_key_on_the_intermediate() -> None:
    inter = make_intermediate(ROOT, key_type="rsa", key_size=1024, slot=9)
    report = run([make_leaf(inter, dns=["example.test"]), inter])
    assert found(report) == [(P.WEAK_KEY, 1)]


def test_sha1_signature_on_the_leaf() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"], signature_hash=hashes.SHA1())])
    assert found(report) == [(P.WEAK_SIGNATURE, 0)]
    assert report.anchored  # the chain was still built: the signature is weak, not forged
    assert report.findings[0].message == (
        "This certificate could be forged. Its certificate is signed with SHA-1, "
        "which is no longer safe."
    )


def test_md5_signature_on_the_leaf() -> None:
    root = make_ca("RSA Root", key_type="rsa", key_size=2048, slot=5)
    leaf = make_leaf(root, dns=["example.test"], signature_hash=hashes.MD5())
    assert found(run([leaf], anchors=[root])) == [(P.WEAK_SIGNATURE, 0)]


def test_sha1_self_signature_of_the_trust_anchor_is_not_a_problem() -> None:
    root = make_ca("Old Root", signature_hash=hashes.SHA1(), slot=6)
    report = run([make_leaf(root, dns=["example.test"])], anchors=[root])
    assert found(report) == []


def test_several_problems_are_all_listed() -> None:
    leaf = make_leaf(OTHER_ROOT, dns=["wrong.test"], not_after=NOW - DAY)
    report = run([leaf])
    assert found(report) == [(P.NAME_MISMATCH, 0), (P.UNKNOWN_CA, 0), (P.EXPIRED, 0)]
    assert decide_automatically(report) is None
    assert report.closes_at_once
    assert report.headline == (
        "This may not be example.test's server. Its certificate was issued for wrong.test."
    )


def test_every_certificate_is_checked() -> None:
    inter = make_intermediate(ROOT, not_after=NOW - DAY, signature_hash=hashes.SHA1(), slot=7)
    leaf = make_leaf(
        inter, dns=["example.test"], not_before=NOW + DAY, key_type="rsa", key_size=1024
    )
    report = run([leaf, inter])
    assert found(report) == [
        (P.EXPIRED, 1),
        (P.NOT_YET_VALID, 0),
        (P.WEAK_SIGNATURE, 1),
        (P.WEAK_KEY, 0),
    ]


# --- names (RFC 5922 §7) -----------------------------------------------------------------


def test_cn_is_ignored_when_a_san_is_present() -> None:
    leaf = make_leaf(ROOT, cn="example.test", dns=["other.test"])
    assert found(run([leaf])) == [(P.NAME_MISMATCH, 0)]


def test_cn_is_ignored_even_when_the_san_holds_no_usable_name() -> None:
    leaf = make_leaf(ROOT, cn="example.test", emails=["ops@example.test"])
    assert found(run([leaf])) == [(P.NO_NAME, 0)]


@pytest.mark.parametrize(
    ("leaf_kwargs", "identity"),
    [
        ({"dns": ["*.example.test"]}, "sip.example.test"),
        ({"dns": ["*.example.test"]}, "example.test"),
        ({"cn": "*.example.test"}, "sip.example.test"),
        ({"uris": ["sip:*.example.test"]}, "sip.example.test"),
    ],
    ids=["dns-sub", "dns-apex", "cn", "uri"],
)
def test_wildcards_never_match(leaf_kwargs: dict[str, list[str]], identity: str) -> None:
    report = run([make_leaf(ROOT, **leaf_kwargs)], Identity.domain(identity))  # type: ignore[arg-type]
    assert found(report) == [(P.NAME_MISMATCH, 0)]


def test_srv_target_is_not_accepted_in_place_of_the_domain() -> None:
    # example.test's SRV record points at sip1.provider.test; the identity stays example.test.
    report = run([make_leaf(ROOT, dns=["sip1.provider.test"])])
    assert found(report) == [(P.NAME_MISMATCH, 0)]
    assert report.findings[0].message == (
        "This may not be example.test's server. Its certificate was issued for sip1.provider.test."
    )


@pytest.mark.parametrize(
    ("uri", "matches"),
    [
        ("sip:example.test", True),
        ("sip:EXAMPLE.Test:5061;transport=tls", True),
        ("sips:example.test", False),  # RFC 5922 §7.1: only the sip scheme names a domain
        ("sip:alice@example.test", False),  # a user part: not a domain identity
        ("http://example.test", False),
    ],
)
def test_san_uri_domain_identity(uri: str, matches: bool) -> None:
    report = run([make_leaf(ROOT, uris=[uri])])
    assert (found(report) == []) is matches


def test_domain_comparison_ignores_case_and_a_trailing_dot() -> None:
    assert (
        found(run([make_leaf(ROOT, dns=["Example.TEST"])], Identity.domain("example.test."))) == []
    )


# --- user certificates (sipsec: an AOR, either role) ---------------------------------------


BOB = Identity.aor("sip:bob@example.test")


@pytest.mark.parametrize("purpose", [Purpose.SERVER, Purpose.CLIENT])
@pytest.mark.parametrize("uri", ["sip:bob@example.test", "sips:bob@EXAMPLE.test;transport=tls"])
def test_user_certificate_matches_the_dialled_aor(uri: str, purpose: Purpose) -> None:
    report = run([make_leaf(ROOT, uris=[uri])], BOB, purpose=purpose)
    assert found(report) == []


def test_user_certificate_for_another_aor() -> None:
    report = run([make_leaf(ROOT, uris=["sip:eve@example.test"])], BOB, purpose=Purpose.CLIENT)
    assert found(report) == [(P.NAME_MISMATCH, 0)]
    assert report.findings[0].message == (
        "This may not be sip:bob@example.test. Their certificate was issued for "
        "sip:eve@example.test."
    )


def test_user_part_is_case_sensitive() -> None:
    report = run([make_leaf(ROOT, uris=["sip:Bob@example.test"])], BOB)
    assert found(report) == [(P.NAME_MISMATCH, 0)]


def test_domain_certificate_does_not_name_a_user() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"], uris=["sip:example.test"])], BOB)
    assert found(report) == [(P.NAME_MISMATCH, 0)]
    assert "sip:example.test, example.test" in report.findings[0].message


def test_user_certificate_with_no_name() -> None:
    report = run([make_leaf(ROOT, cn="Bob")], BOB)
    assert found(report) == [(P.NO_NAME, 0)]


# --- usage, CA flags, depth, signatures -----------------------------------------------------


def test_eku_for_the_other_role() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert found(run([leaf], purpose=Purpose.SERVER)) == []
    assert found(run([leaf], purpose=Purpose.CLIENT)) == [(P.BAD_KEY_USAGE, 0)]


def test_sip_domain_eku_is_enough() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], eku=[ID_KP_SIP_DOMAIN])
    assert found(run([leaf], purpose=Purpose.SERVER)) == []
    assert found(run([leaf], purpose=Purpose.CLIENT)) == []


def test_leaf_key_usage_without_signing() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], key_usage=frozenset({"crl_sign"}))
    assert found(run([leaf])) == [(P.BAD_KEY_USAGE, 0)]


def test_intermediate_that_is_not_a_ca() -> None:
    inter = make_intermediate(ROOT, "Not A CA", ca=None, slot=8)
    report = run([make_leaf(inter, dns=["example.test"]), inter])
    assert found(report) == [(P.NOT_A_CA, 1)]
    assert report.verifier_error is not None  # the library refused too, for the same reason


def test_intermediate_without_cert_sign_usage() -> None:
    inter = make_intermediate(ROOT, "Signs CRLs only", key_usage=frozenset({"crl_sign"}), slot=8)
    report = run([make_leaf(inter, dns=["example.test"]), inter])
    assert found(report) == [(P.BAD_KEY_USAGE, 1)]


def test_path_length_constraint() -> None:
    root = make_ca("Constrained Root", path_length=0, slot=3)
    inter = make_intermediate(root, slot=4)
    report = run([make_leaf(inter, dns=["example.test"]), inter], anchors=[root])
    assert found(report) == [(P.DEPTH_EXCEEDED, 2)]


def test_depth_limit_is_a_parameter() -> None:
    chain = _chain_of(2)
    assert found(run(chain, max_depth=2)) == []
    assert found(run(chain, max_depth=1)) == [(P.DEPTH_EXCEEDED, 2)]
    assert found(run(chain, max_depth=0)) == [(P.DEPTH_EXCEEDED, 1)]


def test_altered_certificate_has_a_bad_signature() -> None:
    der = bytearray(
        make_leaf(ROOT, dns=["example.test"]).cert.public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01  # the last byte of the signature
    report = run([x509.load_der_x509_certificate(bytes(der))])
    assert found(report) == [(P.BAD_SIGNATURE, 0)]
    assert decide_automatically(report) is TrustDecision.REJECT


def test_issuer_of_the_same_name_with_another_key_is_an_unknown_ca() -> None:
    impostor = make_ca("Test Root CA", slot=2)  # same name as ROOT, different key
    report = run([make_leaf(impostor, dns=["example.test"])])
    assert found(report) == [(P.UNKNOWN_CA, 0)]


def test_what_only_the_library_sees_is_still_reported() -> None:
    # A leaf claiming to be a CA: webpki refuses it as an end entity; our checks do not cover it.
    leaf = make_leaf(ROOT, dns=["example.test"], ca=True)
    report = run([leaf])
    assert found(report) == [(P.CHAIN_INVALID, 0)]
    assert report.verifier_error
    assert decide_automatically(report) is None


def test_no_certificate() -> None:
    report = evaluate([], DOMAIN, now=NOW, anchors=[ROOT.cert])
    assert found(report) == [(P.NO_CERTIFICATE, 0)]
    assert decide_automatically(report) is TrustDecision.REJECT


def test_no_anchors_at_all() -> None:
    report = run([make_leaf(ROOT, dns=["example.test"])], anchors=[])
    assert found(report) == [(P.UNKNOWN_CA, 0)]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="time zone"):
        run([make_leaf(ROOT, dns=["example.test"])], now=NOW.replace(tzinfo=None))


def test_dates_are_compared_in_utc() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], not_after=NOW + dt.timedelta(hours=1))
    east = dt.timezone(dt.timedelta(hours=5))
    assert found(run([leaf], now=(NOW + dt.timedelta(minutes=30)).astimezone(east))) == []
    assert found(run([leaf], now=(NOW + dt.timedelta(hours=2)).astimezone(east))) == [
        (P.EXPIRED, 0)
    ]


# --- pins -----------------------------------------------------------------------------------


def test_always_trust_then_seen_again() -> None:
    store = PinStore()
    cert = make_self_signed(dns=["example.test"])
    first = run([cert], pins=store)
    assert first.pin_state is PinState.NONE
    assert decide_automatically(first) is None
    assert apply_decision(store, first, TrustDecision.ALWAYS_TRUST, now=NOW) is True

    again = run([cert], pins=store)
    assert again.pin_state is PinState.MATCHES
    assert found(again) == [(P.SELF_SIGNED, 0)]  # still listed, but the person has decided
    assert again.acceptable
    assert decide_automatically(again) is TrustDecision.ACCEPT_ONCE


def test_accept_once_and_reject_do_not_pin() -> None:
    store = PinStore()
    report = run([make_self_signed(dns=["example.test"])], pins=store)
    assert apply_decision(store, report, TrustDecision.ACCEPT_ONCE, now=NOW) is True
    assert apply_decision(store, report, TrustDecision.REJECT, now=NOW) is False
    assert len(store) == 0


def test_changed_after_pin_is_loud_and_never_automatic() -> None:
    store = PinStore()
    old = make_self_signed(dns=["example.test"])
    apply_decision(store, run([old], pins=store), TrustDecision.ALWAYS_TRUST, now=NOW)

    new = make_self_signed(dns=["example.test"], key=new_key())
    report = run([new], pins=store)
    assert report.changed
    assert found(report) == [(P.CHANGED_SINCE_PINNED, 0), (P.SELF_SIGNED, 0)]
    assert decide_automatically(report) is None
    assert report.headline.startswith(
        "Warning: example.test's server is presenting a different certificate"
    )
    event = TrustDecisionRequired(report, "registration to example.test")
    assert event.loud

    # Re-trusting replaces the old pin, as editing known_hosts does.
    apply_decision(store, report, TrustDecision.ALWAYS_TRUST, now=NOW + DAY)
    assert [p.sha256 for p in store.pins_for(DOMAIN)] == [report.fingerprint]
    assert run([new], pins=store).pin_state is PinState.MATCHES
    assert run([old], pins=store).changed


def test_changed_to_a_ca_signed_certificate_is_still_never_automatic() -> None:
    store = PinStore()
    apply_decision(
        store,
        run([make_self_signed(dns=["example.test"])], pins=store),
        TrustDecision.ALWAYS_TRUST,
        now=NOW,
    )
    report = run([make_leaf(ROOT, dns=["example.test"])], pins=store)
    assert found(report) == [(P.CHANGED_SINCE_PINNED, 0)]
    assert decide_automatically(report) is None


def test_pin_does_not_rescue_an_expired_certificate() -> None:
    store = PinStore()
    cert = make_self_signed(dns=["example.test"], not_after=NOW + DAY)
    apply_decision(store, run([cert], pins=store), TrustDecision.ALWAYS_TRUST, now=NOW)
    later = run([cert], pins=store, now=NOW + 2 * DAY)
    assert later.pin_state is PinState.MATCHES
    assert found(later) == [(P.SELF_SIGNED, 0), (P.EXPIRED, 0)]
    # The pin answered "self-signed" but not "expired": the person is asked again.
    assert not later.acceptable
    assert decide_automatically(later) is None


def test_expired_closes_at_once_then_asks() -> None:
    """draft A.2.1: close immediately; the product: the person still decides, with the reason."""
    report = run([make_leaf(ROOT, dns=["example.test"], not_after=NOW - DAY)])
    assert report.closes_at_once
    assert report.overridable
    assert TrustDecisionRequired(report, "registration to example.test").default is (
        TrustDecision.REJECT
    )
    # A name mismatch alone keeps the connection open while the person decides.
    assert not run([make_leaf(ROOT, dns=["wrong.test"])]).closes_at_once


def test_pins_are_per_identity() -> None:
    store = PinStore()
    cert = make_self_signed(dns=["example.test", "other.test"])
    apply_decision(store, run([cert], pins=store), TrustDecision.ALWAYS_TRUST, now=NOW)
    other = run([cert], Identity.domain("other.test"), pins=store)
    assert other.pin_state is PinState.NONE
    assert decide_automatically(other) is None


def test_always_trust_needs_a_store() -> None:
    report = run([make_self_signed(dns=["example.test"])])
    with pytest.raises(TrustDecisionError, match="store"):
        apply_decision(None, report, TrustDecision.ALWAYS_TRUST, now=NOW)


def test_purpose_may_be_given_as_text() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    report = run([leaf], purpose="client")
    assert report.purpose is Purpose.CLIENT
    assert found(report) == [(P.BAD_KEY_USAGE, 0)]


def test_details_for_each_certificate() -> None:
    leaf = make_leaf(ROOT, dns=["example.test"], key_type="rsa", key_size=2048)
    details = run([leaf]).certificates
    assert [(d.index, d.subject, d.issuer, d.key, d.signature_hash) for d in details] == [
        (0, "Example Telephony", "Test Root CA", "RSA 2048", "sha256"),
        (1, "Test Root CA", "Test Root CA", "EC P-256", "sha256"),
    ]
    assert details[0].not_after == leaf.cert.not_valid_after_utc
    assert len(details[0].fingerprint.split()) == 16
