"""S/MIME on SIP messages (RFC 3261 §23.2 to §23.4): protect a request, judge what arrives, 493.

Every failure case asserts the precise verdict, so a test cannot pass for the wrong cause.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from softphone.security.certificates import Identity, aor_identities, fingerprint_sha256
from softphone.security.ledger import Means, Seen, TrustLedger
from softphone.security.pins import Pin, PinReason, PinStore
from softphone.security.smime import CERTS_ONLY_TYPE, ProtectionMode, certs_only, sign
from softphone.security.smime_sip import (
    Verdict,
    attach_certs_only,
    certificates_in,
    protect_message,
    undecipherable_response,
    verify_message,
)
from softphone.sip.message import Headers, Request, Response
from softphone.sip.multipart import BodyPart, build_multipart, parse_multipart
from softphone.sip.parser import parse_message
from tests.security.pki import NOW, Issued, make_ca, make_leaf, new_key

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\n"
)
USAGE = frozenset({"digital_signature", "key_encipherment"})
CA = make_ca("SIP S/MIME Test Root", key_type="rsa", key_size=2048, slot=8)


def _identity(aor: str, not_after: dt.datetime = NOW + dt.timedelta(days=60)) -> Issued:
    return make_leaf(
        CA,
        uris=[f"sip:{aor}"],
        key=new_key("rsa", 3072),
        key_usage=USAGE,
        eku=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
        not_after=not_after,
    )


@pytest.fixture(scope="module")
def alice() -> Issued:
    return _identity("alice@example.test")


@pytest.fixture(scope="module")
def bob() -> Issued:
    return _identity("bob@example.test")


@pytest.fixture(scope="module")
def eve() -> Issued:
    return _identity("eve@example.test")


def rsa_key(issued: Issued) -> rsa.RSAPrivateKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey)
    return issued.key


def invite(from_aor: str = "sip:alice@example.test") -> Request:
    raw = (
        "INVITE sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bK776asdhds\r\n"
        "Max-Forwards: 70\r\n"
        f"From: Alice <{from_aor}>;tag=1928301774\r\n"
        "To: Bob <sip:bob@example.test>\r\n"
        "Call-ID: a84b4c76e66710@pc33.example.test\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sips:alice@192.0.2.10>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


def over_the_wire(message: Request | Response) -> Request | Response:
    """What the peer parses: the bytes, not our object."""
    return parse_message(bytes(message))


def known(*people: Issued) -> TrustLedger:
    """A ledger that has seen each person's certificate (e.g. in an earlier certs-only)."""
    ledger = TrustLedger()
    for person in people:
        ledger.observe(aor_identities(person.cert)[0], person.cert, Seen.SMIME, NOW)
    return ledger


# --- sending and receiving --------------------------------------------------------------------


def test_signed_tunnelled_invite_verifies(alice: Issued) -> None:
    sent = protect_message(
        invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW
    )
    assert sent.headers.get("Date") == "Sun, 01 Jun 2025 12:00:00 GMT"
    assert "handling=required" in (sent.headers.get("Content-Disposition") or "")
    received = over_the_wire(sent)
    assert received.content_type == "multipart/signed"
    verdict = verify_message(received, now=NOW, ledger=known(alice), required="sign")
    assert verdict.verdict is Verdict.OK, verdict.reason
    assert verdict.sdp == SDP and verdict.signer == alice.cert
    assert verdict.signed and not verdict.encrypted and verdict.tunnelled
    assert verdict.status_code is None


def test_signed_and_encrypted_invite_opens_for_the_recipient_only(
    alice: Issued, bob: Issued, eve: Issued
) -> None:
    sent = protect_message(
        invite(),
        SDP,
        ProtectionMode.SIGN_AND_ENCRYPT,
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
        now=NOW,
    )
    received = over_the_wire(sent)
    assert received.content_type == "application/pkcs7-mime"
    assert SDP not in received.body
    verdict = verify_message(
        received,
        now=NOW,
        own_cert=bob.cert,
        own_key=rsa_key(bob),
        required="sign+encrypt",
        ledger=known(alice),
    )
    assert verdict.ok and verdict.sdp == SDP and verdict.signed and verdict.encrypted

    wrong = verify_message(received, now=NOW, own_cert=eve.cert, own_key=rsa_key(eve))
    assert wrong.verdict is Verdict.DECRYPTION_FAILED and wrong.status_code == 493
    assert wrong.sdp is None
    no_key = verify_message(received, now=NOW)
    assert no_key.verdict is Verdict.DECRYPTION_FAILED


def test_tampered_sdp_is_a_bad_signature(alice: Issued) -> None:
    sent = protect_message(
        invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW
    )
    sent.body = sent.body.replace(b"49170", b"49172", 1)
    verdict = verify_message(over_the_wire(sent), now=NOW, ledger=known(alice))
    assert verdict.verdict is Verdict.BAD_SIGNATURE and verdict.status_code == 493
    assert verdict.sdp is None  # nothing of a bad body is handed on


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Call-ID", "replayed@elsewhere.test"),
        ("To", "Bob <sip:mallory@example.test>"),
        ("CSeq", "314160 INVITE"),
        ("Date", "Sun, 01 Jun 2025 12:00:05 GMT"),
    ],
)
def test_outer_headers_changed_after_signing_are_caught(
    alice: Issued, header: str, value: str
) -> None:
    sent = protect_message(
        invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW
    )
    sent.headers.set(header, value)
    verdict = verify_message(over_the_wire(sent), now=NOW, ledger=known(alice))
    assert verdict.verdict is Verdict.HEADERS_MISMATCH, verdict.reason
    assert header.lower() in verdict.reason.lower()


def test_replayed_body_with_an_old_date_is_caught(alice: Issued) -> None:
    sent = protect_message(
        invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW
    )
    later = NOW + dt.timedelta(hours=1)
    verdict = verify_message(over_the_wire(sent), now=later, ledger=known(alice))
    assert verdict.verdict is Verdict.HEADERS_MISMATCH and "replay" in verdict.reason


def test_signer_who_is_not_the_from_aor(eve: Issued) -> None:
    sent = protect_message(invite(), SDP, "sign", own_cert=eve.cert, own_key=rsa_key(eve), now=NOW)
    verdict = verify_message(over_the_wire(sent), now=NOW, ledger=known(eve))
    assert verdict.verdict is Verdict.SIGNER_NOT_FROM
    assert "eve@example.test" in verdict.reason and verdict.signer == eve.cert


def test_unknown_changed_and_vouched_signers(alice: Issued) -> None:
    sent = over_the_wire(
        protect_message(invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW)
    )
    unknown = verify_message(sent, now=NOW)
    assert unknown.verdict is Verdict.UNKNOWN_SIGNER and unknown.signer == alice.cert
    assert unknown.sdp == SDP  # shown to the person who decides, with the fingerprint

    other = _identity("alice@example.test")  # the ledger knows another Alice
    changed = verify_message(sent, now=NOW, ledger=known(other))
    assert changed.verdict is Verdict.CHANGED_SIGNER

    ledger = known(other)  # ... a change the user has not answered yet is not "known"
    ledger.observe("sip:alice@example.test", alice.cert, Seen.SIPSEC, NOW)
    assert verify_message(sent, now=NOW, ledger=ledger).verdict is Verdict.CHANGED_SIGNER
    ledger.mark_verified(
        "sip:alice@example.test", fingerprint_sha256(alice.cert), Means.SAFETY_NUMBER, NOW
    )
    assert verify_message(sent, now=NOW, ledger=ledger).ok

    pins = PinStore()
    pins.add(
        Identity.aor("sip:alice@example.test"),
        Pin(fingerprint_sha256(alice.cert), NOW, PinReason.VERIFIED_SAFETY_NUMBER),
    )
    assert verify_message(sent, now=NOW, pins=pins).ok
    pins.replace(
        Identity.aor("sip:alice@example.test"),
        Pin(fingerprint_sha256(other.cert), NOW, PinReason.ALWAYS_TRUST),
    )
    assert verify_message(sent, now=NOW, pins=pins).verdict is Verdict.CHANGED_SIGNER

    assert verify_message(sent, now=NOW, anchors=[CA.cert]).ok  # an S/MIME CA vouches
    stranger_ca = make_ca("Someone Else", key_type="rsa", key_size=2048, slot=9)
    stranger = verify_message(sent, now=NOW, anchors=[stranger_ca.cert])
    assert stranger.verdict is Verdict.UNKNOWN_SIGNER


def test_expired_signer(alice: Issued) -> None:
    old = _identity("alice@example.test", not_after=NOW - dt.timedelta(days=1))
    sent = protect_message(invite(), SDP, "sign", own_cert=old.cert, own_key=rsa_key(old), now=NOW)
    verdict = verify_message(over_the_wire(sent), now=NOW, ledger=known(old))
    assert verdict.verdict is Verdict.EXPIRED_SIGNER and verdict.status_code == 493


def test_signature_without_the_signers_certificate_is_an_unknown_signer(alice: Issued) -> None:
    content_type, body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    # The same signature with the certificates taken out of the SignedData.
    signed, signature = parse_multipart(body, content_type)
    info = cms.ContentInfo.load(base64.b64decode(b"".join(signature.body.split())))
    info["content"]["certificates"] = []
    der = info.dump(force=True)
    rebuilt_type, rebuilt = build_multipart(
        [
            BodyPart(signed.headers, signed.body, raw=signed.raw),
            BodyPart(signature.headers, base64.b64encode(der)),
        ],
        "signed",
        params={"protocol": "application/pkcs7-signature", "micalg": "sha-256"},
    )
    message = invite()
    message.headers.set("Content-Type", rebuilt_type)
    message.body = rebuilt
    verdict = verify_message(over_the_wire(message), now=NOW)
    assert verdict.verdict is Verdict.UNKNOWN_SIGNER and verdict.signer is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ('multipart/signed; boundary=x; protocol="application/pkcs7-signature"', b"junk"),
        ("application/pkcs7-mime; smime-type=signed-data", b"\x30\x03\x02\x01\x00"),
        ("application/pkcs7-mime; smime-type=enveloped-data", b"not cms at all"),
    ],
)
def test_malformed_bodies_are_refused_not_crashed(
    content_type: str, body: bytes, bob: Issued
) -> None:
    message = invite()
    message.headers.set("Content-Type", content_type)
    message.body = body
    verdict = verify_message(message, now=NOW, own_cert=bob.cert, own_key=rsa_key(bob))
    assert not verdict.ok and verdict.status_code in (400, 415, 493)
    assert verdict.verdict in (Verdict.MALFORMED, Verdict.DECRYPTION_FAILED)


def test_protection_below_the_setting_is_not_accepted(alice: Issued, bob: Issued) -> None:
    plain = invite()
    plain.headers.set("Content-Type", "application/sdp")
    plain.body = SDP
    assert verify_message(plain, now=NOW).ok  # setting "off": plain SDP is fine
    refused = verify_message(plain, now=NOW, required="sign")
    assert refused.verdict is Verdict.NOT_PROTECTED and refused.status_code == 493

    signed_only = over_the_wire(
        protect_message(invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW)
    )
    verdict = verify_message(signed_only, now=NOW, ledger=known(alice), required="sign+encrypt")
    assert verdict.verdict is Verdict.NOT_PROTECTED and "signed" in verdict.reason


def test_off_mode_sends_plain_sdp(alice: Issued) -> None:
    sent = protect_message(invite(), SDP, "off", own_cert=None, own_key=None)
    assert sent.headers.get("Content-Type") == "application/sdp" and sent.body == SDP
    assert "Content-Disposition" not in sent.headers


# --- certificate exchange and 493 ---------------------------------------------------------------


def test_493_carries_our_certificate_and_the_caller_collects_it(alice: Issued, bob: Issued) -> None:
    request = over_the_wire(
        protect_message(
            invite(),
            SDP,
            "sign+encrypt",
            own_cert=alice.cert,
            own_key=rsa_key(alice),
            peer_cert=alice.cert,  # encrypted for the wrong person: Bob cannot open it
            now=NOW,
        )
    )
    assert isinstance(request, Request)
    verdict = verify_message(request, now=NOW, own_cert=bob.cert, own_key=rsa_key(bob))
    assert verdict.verdict is Verdict.DECRYPTION_FAILED
    response = undecipherable_response(request, [bob.cert, CA.cert], to_tag="8321234356")
    received = over_the_wire(response)
    assert isinstance(received, Response)
    assert received.status_code == 493 and received.reason == "Undecipherable"
    assert received.headers.get("Content-Type") == CERTS_ONLY_TYPE
    assert received.to.tag == "8321234356" and received.call_id == request.call_id
    assert certificates_in(received) == [bob.cert, CA.cert]

    # Alice's phone learns Bob's certificate and encrypts the retry for it.
    ledger = TrustLedger()
    ledger.observe("sip:bob@example.test", certificates_in(received)[0], Seen.SMIME, NOW)
    record = ledger.contact("sip:bob@example.test").current_record
    assert record is not None
    retry = protect_message(
        invite(),
        SDP,
        "sign+encrypt",
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=record.certificate,
        now=NOW,
    )
    opened = verify_message(
        over_the_wire(retry), now=NOW, own_cert=bob.cert, own_key=rsa_key(bob), ledger=known(alice)
    )
    assert opened.ok and opened.sdp == SDP


def test_certs_only_in_options_and_in_multipart_mixed(alice: Issued) -> None:
    options = invite()
    options.method = "OPTIONS"
    options.headers.set("CSeq", "314159 OPTIONS")
    received = over_the_wire(attach_certs_only(options, [alice.cert]))
    assert "handling=optional" in (received.headers.get("Content-Disposition") or "")
    assert certificates_in(received) == [alice.cert]

    certs_type, certs_body = certs_only([alice.cert])
    mixed_type, mixed = build_multipart(
        [
            BodyPart(_headers("application/sdp"), SDP),
            BodyPart(_headers(certs_type), certs_body),
        ]
    )
    message = invite()
    message.headers.set("Content-Type", mixed_type)
    message.body = mixed
    assert certificates_in(over_the_wire(message)) == [alice.cert]

    message.body = mixed.replace(certs_body[10:40], b"\x00" * 30)  # a broken certs-only part
    assert certificates_in(message) == []


def _headers(content_type: str) -> Headers:
    return Headers([("Content-Type", content_type)])


def _answer(request: Request) -> Response:
    response = Response.for_request(request, 200, to_tag="a6c85cf")
    response.headers.set("Contact", "<sips:bob@192.0.2.4>")
    return response


def test_signed_200_is_judged_against_to_the_answering_side(
    alice: Issued, bob: Issued, eve: Issued
) -> None:
    """RFC 3261 §23.3: the sender of a response is the UAS, named in To. Judging a 200 by
    From (the caller) once made every signed answer SIGNER_NOT_FROM."""
    received = over_the_wire(
        protect_message(
            _answer(invite()), SDP, "sign", own_cert=bob.cert, own_key=rsa_key(bob), now=NOW
        )
    )
    assert isinstance(received, Response)
    verdict = verify_message(received, now=NOW, ledger=known(bob), required="sign")
    assert verdict.verdict is Verdict.OK, verdict.reason
    assert verdict.sdp == SDP and verdict.signer == bob.cert and verdict.tunnelled

    # the same known/changed/unknown rule and the same CA check as for requests
    assert verify_message(received, now=NOW).verdict is Verdict.UNKNOWN_SIGNER
    other = _identity("bob@example.test")
    assert verify_message(received, now=NOW, ledger=known(other)).verdict is (
        Verdict.CHANGED_SIGNER
    )
    assert verify_message(received, now=NOW, anchors=[CA.cert]).ok

    # signed by the caller named in From, or by someone else: not the answering side
    for signer in (alice, eve):
        forged = over_the_wire(
            protect_message(
                _answer(invite()),
                SDP,
                "sign",
                own_cert=signer.cert,
                own_key=rsa_key(signer),
                now=NOW,
            )
        )
        judged = verify_message(forged, now=NOW, ledger=known(alice, bob, eve))
        assert judged.verdict is Verdict.SIGNER_NOT_FROM, judged.reason
        assert "bob@example.test" in judged.reason and judged.status_code == 493
