"""Digest authentication: known answers, parsing, client and server (RFC 3261 §22, RFC 7616).

Known answers come from ../shared/vectors/digest_vectors.md (RFC 2617 §3.5, RFC 7616
§3.9.1/§3.9.2 with its erratum, draft-smith-sipping-auth-examples-01 §3.1-3.6).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softphone.sip.digest import (
    REDACTED,
    Algorithm,
    AuthenticationFailedError,
    Challenge,
    Credentials,
    DigestClient,
    NoUsableChallengeError,
    Qop,
    compute_ha1,
    compute_response,
    compute_userhash,
    format_credentials,
    parse_challenges,
    parse_credentials,
    redact_authorization,
    select_challenge,
    select_challenges,
)
from softphone.sip.digest_server import (
    DigestServer,
    InMemoryCredentials,
    Outcome,
    format_challenge,
)
from softphone.sip.errors import LocalProtocolError, ParseError

# ------------------------------------------------------------------------------ known answers

RFC2617 = {
    "user": "Mufasa",
    "realm": "testrealm@host.com",
    "password": "Circle Of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    "cnonce": "0a4f113b",
}
RFC7616 = {
    "user": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}
SMITH = {
    "user": "bob",
    "realm": "biloxi.com",
    "password": "zanzibar",
    "method": "INVITE",
    "uri": "sip:bob@biloxi.com",
    "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    "cnonce": "0a4f113b",
}
SMITH_BODY_HASH = "c1ed018b8ec4a3b170c0921f5b564e48"

VECTORS = [
    # (row, inputs, algorithm, qop, body_hash, expected response)
    (1, RFC2617, Algorithm.MD5, "auth", None, "6629fae49393a05397450978507c4ef1"),
    (2, RFC7616, Algorithm.MD5, "auth", None, "8ca523f5e9506fed4657c9700eebdbec"),
    (
        3,
        RFC7616,
        Algorithm.SHA_256,
        "auth",
        None,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    ),
    (4, SMITH, Algorithm.MD5, None, None, "bf57e4e0d0bffc0fbaedce64d59add5e"),
    (5, SMITH, Algorithm.MD5, "auth", None, "89eb0059246c02b2f6ee02c7961d5ea3"),
    (6, SMITH, Algorithm.MD5_SESS, "auth", None, "e4e4ea61d186d07a92c9e1f6919902e9"),
    (7, SMITH, Algorithm.MD5, "auth-int", SMITH_BODY_HASH, "bdbeebb2da6adb6bca02599c2239e192"),
    (8, SMITH, Algorithm.MD5_SESS, "auth-int", SMITH_BODY_HASH, "91984da2d8663716e91554859c22ca70"),
]


@pytest.mark.parametrize(
    ("row", "v", "algorithm", "qop", "body_hash", "expected"),
    VECTORS,
    ids=[f"row{r[0]}" for r in VECTORS],
)
def test_known_answer(
    row: int,
    v: dict[str, str],
    algorithm: Algorithm,
    qop: str | None,
    body_hash: str | None,
    expected: str,
) -> None:
    ha1 = compute_ha1(algorithm, v["user"], v["realm"], v["password"])
    response = compute_response(
        algorithm,
        ha1,
        nonce=v["nonce"],
        method=v["method"],
        uri=v["uri"],
        qop=qop,
        nc="00000001" if qop else None,
        cnonce=v["cnonce"] if qop else None,
        body_hash=body_hash,
    )
    assert response == expected


# RFC 7616 §3.9.2 inputs (SHA-512-256, userhash=true).
R392 = {
    "user": "J\u00e4s\u00f8n Doe",
    "realm": "api@example.org",
    "password": "Secret, or not?",
    "method": "GET",
    "uri": "/doe.json",
    "nonce": "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
    "cnonce": "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    "opaque": "HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS",
}
R392_USERHASH_FIPS = "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
R392_RESPONSE_FIPS = "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
R392_USERHASH_PRINTED = "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec"
R392_RESPONSE_PRINTED = "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"


def _r392_response() -> str:
    ha1 = compute_ha1(Algorithm.SHA_512_256, R392["user"], R392["realm"], R392["password"])
    return compute_response(
        Algorithm.SHA_512_256,
        ha1,
        nonce=R392["nonce"],
        method=R392["method"],
        uri=R392["uri"],
        qop="auth",
        nc="00000001",
        cnonce=R392["cnonce"],
    )


def test_rfc7616_3_9_2_erratum_we_compute_fips_sha512_256_not_the_printed_values() -> None:
    """RFC 7616 §3.9.2 printed SHA-512 truncated to 256 bits; SHA-512/256 (FIPS 180-4) differs.

    A correct SHA-512-256 must give hashlib's sha512_256 values, and must NOT give the
    values printed in the RFC (a test asserting those would assert the wrong algorithm).
    """
    userhash = compute_userhash(Algorithm.SHA_512_256, R392["user"], R392["realm"])
    response = _r392_response()
    assert userhash == R392_USERHASH_FIPS
    assert response == R392_RESPONSE_FIPS
    assert userhash != R392_USERHASH_PRINTED
    assert response != R392_RESPONSE_PRINTED
    # And the printed ones are indeed truncated SHA-512, which we are not.
    truncated = hashlib.sha512(f"{R392['user']}:{R392['realm']}".encode()).hexdigest()[:64]
    assert truncated == R392_USERHASH_PRINTED


def test_rfc7616_3_9_2_client_header_uses_userhash() -> None:
    challenge = (
        f'Digest realm="{R392["realm"]}", qop="auth", algorithm=SHA-512-256, '
        f'nonce="{R392["nonce"]}", opaque="{R392["opaque"]}", charset=UTF-8, userhash=true'
    )
    client = DigestClient(R392["user"], R392["password"], cnonce_factory=lambda: R392["cnonce"])
    [header] = client.handle_challenge(401, [challenge], "GET", "/doe.json")
    creds = parse_credentials(header.value)
    assert header.name == "Authorization"
    assert creds.username == R392_USERHASH_FIPS
    assert creds.userhash
    assert creds.response == R392_RESPONSE_FIPS
    assert creds.opaque == R392["opaque"]
    assert not header.weak


def test_rfc7616_3_9_1_client_header_sha256() -> None:
    challenge = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616["cnonce"])
    [header] = client.handle_challenge(401, [challenge], "GET", "/dir/index.html")
    assert header.value == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        "algorithm=SHA-256, qop=auth, nc=00000001, "
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


def test_draft_smith_3_1_client_without_qop() -> None:
    """RFC 2069 compatibility: no qop in the challenge, so no nc/cnonce in the answer."""
    challenge = (
        'Digest realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = DigestClient("bob", "zanzibar")
    [header] = client.handle_challenge(401, [challenge], "INVITE", "sip:bob@biloxi.com")
    creds = parse_credentials(header.value)
    assert creds.response == "bf57e4e0d0bffc0fbaedce64d59add5e"
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert "nc=" not in header.value and "cnonce" not in header.value
    assert header.weak and header.algorithm is Algorithm.MD5


def test_auth_int_empty_body_hashes_the_empty_string() -> None:
    ha1 = compute_ha1(Algorithm.MD5, "bob", "biloxi.com", "zanzibar")
    respond = functools.partial(
        compute_response,
        Algorithm.MD5,
        ha1,
        nonce="n",
        method="INVITE",
        uri="sip:bob@biloxi.com",
        qop="auth-int",
        nc="00000001",
        cnonce="c",
    )
    empty = respond(body=b"")
    empty_hash = "d41d8cd98f00b204e9800998ecf8427e"  # MD5 of the empty string
    assert empty == respond(body_hash=empty_hash)
    # Recomputed by hand: HA2 = MD5("INVITE:sip:bob@biloxi.com:" + MD5(""))
    assert empty == "fa4d1e371743ee7d30c248b4ec2beaf6"
    other = respond(body=b"v=0\r\n")
    assert other != empty


def test_sess_without_cnonce_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        compute_response(Algorithm.MD5_SESS, "00", nonce="n", method="M", uri="u")


# ------------------------------------------------------------------------------ algorithms


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("MD5", Algorithm.MD5),
        ("md5", Algorithm.MD5),
        ("MD5-sess", Algorithm.MD5_SESS),
        ("md5-SESS", Algorithm.MD5_SESS),
        ("SHA-256", Algorithm.SHA_256),
        ("sha-256-sess", Algorithm.SHA_256_SESS),
        ("SHA-512-256", Algorithm.SHA_512_256),
        ("SHA-512-256-sess", Algorithm.SHA_512_256_SESS),
        ("SHA-1", None),
        ("SHA-512", None),
        ("AKAv1-MD5", None),
    ],
)
def test_algorithm_names(token: str, expected: Algorithm | None) -> None:
    assert Algorithm.from_token(token) is expected


def test_weak_flags_only_md5() -> None:
    assert {a for a in Algorithm if a.weak} == {Algorithm.MD5, Algorithm.MD5_SESS}


# ------------------------------------------------------------------------------ challenge parsing


def test_parse_challenge_all_parameters() -> None:
    [ch] = parse_challenges(
        'DIGEST Realm="atlanta.com", DOMAIN="sip:ss1.carrier.com sip:ss2.carrier.com", '
        'NONCE="a\\"b\\\\c", Opaque="xyz", STALE=TRUE, Algorithm=sha-256-SESS, '
        'qop="auth,auth-int", charset=utf-8, userhash=TRUE, unknown-ext="ignored"'
    )
    assert ch == Challenge(
        realm="atlanta.com",
        nonce='a"b\\c',
        algorithm=Algorithm.SHA_256_SESS,
        algorithm_name="sha-256-SESS",
        qop=("auth", "auth-int"),
        opaque="xyz",
        stale=True,
        domain=("sip:ss1.carrier.com", "sip:ss2.carrier.com"),
        userhash=True,
        charset_utf8=True,
    )
    assert ch.supported and not ch.weak


def test_parse_challenge_defaults_and_tokens() -> None:
    [ch] = parse_challenges("Digest realm=biloxi.com,nonce=abc , stale=false")
    assert ch.algorithm is Algorithm.MD5 and ch.algorithm_name == "MD5"
    assert ch.qop is None and not ch.stale and ch.weak and ch.supported


@pytest.mark.parametrize("stale", ["true", "TRUE", "True", '"true"'])
def test_stale_true_spellings(stale: str) -> None:
    [ch] = parse_challenges(f'Digest realm="r", nonce="n", stale={stale}')
    assert ch.stale


@pytest.mark.parametrize("stale", ["false", "FALSE", "yes", "1"])
def test_stale_anything_else_is_false(stale: str) -> None:
    [ch] = parse_challenges(f'Digest realm="r", nonce="n", stale={stale}')
    assert not ch.stale


def test_scheme_then_token68_is_another_challenge() -> None:
    """RFC 7235 §2.1: after a comma, `token SP token68` starts a new challenge."""
    [ch] = parse_challenges('Digest realm="r", nonce="n", Other abc')
    assert ch.nonce == "n"


def test_several_challenges_in_one_value_and_other_schemes() -> None:
    value = (
        'Basic realm="x", Newauth realm="apps", type=1, title="Login, to \\"apps\\"", '
        'Digest realm="a", nonce="1", algorithm=SHA-256, Bearer, '
        'Negotiate YIIB/w==, Digest realm="a", nonce="1", algorithm=MD5'
    )
    challenges = parse_challenges(value)
    assert [c.algorithm for c in challenges] == [Algorithm.SHA_256, Algorithm.MD5]


def test_unknown_algorithm_is_parsed_but_unsupported() -> None:
    [ch] = parse_challenges('Digest realm="r", nonce="n", algorithm=SHA-1')
    assert ch.algorithm is None and ch.algorithm_name == "SHA-1" and not ch.supported


def test_unknown_qop_only_is_unsupported() -> None:
    [ch] = parse_challenges('Digest realm="r", nonce="n", qop="auth-conf"')
    assert not ch.supported


def test_sess_without_qop_is_unsupported() -> None:
    [ch] = parse_challenges('Digest realm="r", nonce="n", algorithm=MD5-sess')
    assert not ch.supported


@pytest.mark.parametrize(
    "value",
    [
        "Digest",  # no realm, no nonce
        'Digest nonce="n"',  # realm missing
        'Digest realm="r"',  # nonce missing
        'Digest realm="r, nonce="n"',  # unterminated quote
        'Digest realm="r", nonce="n\\',  # escape at the very end
        'Digest realm="r" nonce="n"',  # missing comma
        'Digest realm=, nonce="n"',  # empty value
        'Digest realm="r", realm="s", nonce="n"',  # repeated parameter
        'Digest realm="r", nonce="n", qop=""',  # empty qop list
        'Digest realm="r", nonce="n", =x',  # no name
        'Digest realm="r", nonce="n", bad param x',  # garbage (not token68, not a param)
        'Digest realm="a\r\nb", nonce="n"',  # raw CR LF in a quoted string
        'Digest realm="a\x00", nonce="n"',  # control character
        "Digest abcdef==",  # token68 is not Digest syntax
        'Digest realm="r", nonce="n", é=1',  # non-token name
        'Digestrealm="r"',  # no space after the scheme
        '"Digest" realm="r", nonce="n"',  # quoted scheme
    ],
)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_challenges(value)
    assert info.value.status_code == 400


def test_empty_value_has_no_challenge() -> None:
    assert parse_challenges("") == []
    assert parse_challenges(" , ,") == []


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from('Digest realm="\\,= \t\x00é-'), max_size=40))
def test_challenge_parser_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_challenges(text)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_credentials_parser_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_credentials("Digest " + text)


@given(
    realm=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
    nonce=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
    algorithm=st.sampled_from(list(Algorithm)),
    stale=st.booleans(),
)
def test_format_parse_challenge_round_trip(
    realm: str, nonce: str, algorithm: Algorithm, stale: bool
) -> None:
    ch = Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        algorithm_name=algorithm.value,
        qop=("auth", "auth-int"),
        opaque='o"p',
        stale=stale,
    )
    assert parse_challenges(format_challenge(ch)) == [ch]


# ------------------------------------------------------------------------------ selection

MD5_R = 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
MD5S_R = 'Digest realm="r", nonce="n1", algorithm=MD5-sess, qop="auth"'
S256_R = 'Digest realm="r", nonce="n1", algorithm=SHA-256, qop="auth"'
S256S_R = 'Digest realm="r", nonce="n1", algorithm=SHA-256-sess, qop="auth"'
S512_R = 'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"'
SHA1_R = 'Digest realm="r", nonce="n1", algorithm=SHA-1, qop="auth"'
BASIC = 'Basic realm="r"'


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([MD5_R, S256_R], Algorithm.SHA_256),
        ([S256_R, MD5_R], Algorithm.SHA_256),
        ([MD5_R, S512_R, S256_R], Algorithm.SHA_512_256),
        ([SHA1_R, MD5_R], Algorithm.MD5),
        ([BASIC, MD5S_R], Algorithm.MD5_SESS),
        ([S256S_R, S256_R], Algorithm.SHA_256_SESS),  # equal strength: server order wins
        ([S256_R, S256S_R], Algorithm.SHA_256),
        ([f"{MD5_R}, {S256_R}"], Algorithm.SHA_256),  # two challenges in one value
        (['Digest realm="r", nonce="n", qop="auth"'], Algorithm.MD5),  # algorithm absent
        (["Digest realm=r, nonce=broken\\", S256_R], Algorithm.SHA_256),  # bad one skipped
    ],
)
def test_select_challenge(values: list[str], expected: Algorithm) -> None:
    assert select_challenge(values).algorithm is expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        [BASIC],
        [SHA1_R],
        [SHA1_R, BASIC],
        ['Digest realm="r"'],
        ['Digest realm="r", nonce="n", qop="x"'],
    ],
)
def test_select_challenge_none_usable(values: list[str]) -> None:
    with pytest.raises(NoUsableChallengeError, match="no usable Digest challenge"):
        select_challenge(values)


def test_select_challenges_per_realm() -> None:
    values = [
        'Digest realm="proxy1", nonce="a", algorithm=MD5, qop="auth"',
        'Digest realm="proxy2", nonce="b", algorithm=MD5, qop="auth"',
        'Digest realm="proxy1", nonce="c", algorithm=SHA-256, qop="auth"',
    ]
    chosen = select_challenges(values)
    assert [(c.realm, c.nonce) for c in chosen] == [("proxy1", "c"), ("proxy2", "b")]
    # Equal strength within a realm: the server's first (preferred) one.
    tie = [S256S_R.replace("n1", "first"), S256_R.replace("n1", "second")]
    assert [c.nonce for c in select_challenges(tie)] == ["first"]


# ------------------------------------------------------------------------------ credentials


def test_parse_credentials_draft_smith_example() -> None:
    creds = parse_credentials(
        'Digest username="bob", realm="biloxi.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert creds.username == "bob" and creds.nc == 1 and creds.nc_text == "00000001"
    assert creds.qop == "auth" and creds.cnonce == "0a4f113b"
    assert creds.algorithm is Algorithm.MD5
    assert "6629fae4" not in repr(creds)


def test_username_star_rfc5987() -> None:
    creds = parse_credentials(
        'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", uri="/", '
        'response="00"'
    )
    assert creds.username == "J\u00e4s\u00f8n Doe" and creds.username_star


CRED = 'Digest username="u", realm="r", nonce="n", uri="/", response="0"'


@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", nonce="n", uri="/", response="0"',  # no username
        'Digest username="u", nonce="n", uri="/", response="0"',  # no realm
        'Digest username="u", realm="r", uri="/", response="0"',  # no nonce
        'Digest username="u", realm="r", nonce="n", response="0"',  # no uri
        'Digest username="u", realm="r", nonce="n", uri="/"',  # no response
        CRED + ', qop=auth, cnonce="c"',  # nc missing
        CRED + ", qop=auth, nc=1, cnonce=c",  # nc not 8 hex digits
        CRED + ", qop=auth, nc=0000000g, cnonce=c",
        CRED + ", qop=auth, nc=00000001",  # cnonce missing
        'Digest username="u", username*=UTF-8\'\'u, realm="r", nonce="n", uri="/", response="0"',
        'Digest username*=KOI8-R\'\'u, realm="r", nonce="n", uri="/", response="0"',
        'Digest username*=UTF-8\'\'%FF, realm="r", nonce="n", uri="/", response="0"',
        'Digest username*=nope, realm="r", nonce="n", uri="/", response="0"',
        'Digest username="u", realm="r", nonce="n", uri="/", response="0", Digest realm="x"',
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(ParseError):
        parse_credentials(value)


@given(
    username=st.text(min_size=1, max_size=15),
    star=st.booleans(),
    nc=st.integers(1, 2**32 - 1),
)
def test_format_parse_credentials_round_trip(username: str, star: bool, nc: int) -> None:
    printable = all(ord(c) >= 0x20 and c != "\x7f" for c in username)
    creds = Credentials(
        username=username,
        realm="r",
        nonce="n",
        uri='sip:a@b;x="1"',
        response="ab",
        qop="auth",
        nc=nc,
        cnonce="c",
        username_star=star or not printable,
    )
    assert parse_credentials(format_credentials(creds)) == creds


# ------------------------------------------------------------------------------ redaction


def test_redaction_hides_response_cnonce_and_userhash() -> None:
    value = (
        'Digest username="488869477bf257147b804c45308cd62a", realm="r", nonce="n", uri="/", '
        'response="deadbeef", cnonce="c0ffee", qop=auth, nc=00000001, userhash=true'
    )
    redacted = redact_authorization(value)
    for secret in ("deadbeef", "c0ffee", "488869477bf257147b804c45308cd62a"):
        assert secret not in redacted
    assert redacted.count(REDACTED) == 3
    assert 'realm="r"' in redacted and 'nonce="n"' in redacted


def test_redaction_keeps_plain_username_and_handles_tokens() -> None:
    redacted = redact_authorization('Digest username="bob", response=abc123, cnonce=xyz')
    assert 'username="bob"' in redacted
    assert "abc123" not in redacted and "xyz" not in redacted


def test_redaction_of_unparseable_value() -> None:
    redacted = redact_authorization('Digest username="bob" response="abc123", cnonce="xy')
    assert "abc123" not in redacted and "xy" not in redacted.replace(REDACTED, "")


def test_password_never_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    password = "S3cr3t-Pa55"
    client = DigestClient("bob", password, cnonce_factory=lambda: "cn0nce")
    [header] = client.handle_challenge(401, [S256_R], "REGISTER", "sip:r")
    response = parse_credentials(header.value).response
    logging.getLogger("test").warning("client %r %s header %r", client, client, header)
    texts = [repr(client), str(client), repr(header), str(header), caplog.text]
    texts.append(repr(client.__dict__))
    for text in texts:
        assert password not in text
        assert response not in text
        assert "cn0nce" not in text
    store = InMemoryCredentials()
    store.add_password("bob", "r", password)
    assert compute_ha1(Algorithm.MD5, "bob", "r", password) not in repr(store)


# ------------------------------------------------------------------------------ client


def _md5_challenge(nonce: str, *, stale: bool = False, realm: str = "biloxi.com") -> str:
    s = ", stale=true" if stale else ""
    return f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm=MD5{s}'


def test_header_names_for_401_and_407() -> None:
    """RFC 3261 §22.2/§22.3: 401 -> Authorization, 407 -> Proxy-Authorization.

    (The thesis excerpt in shared/spec pairs a registrar's 401 with Proxy-Authorization;
    that is a slip in the thesis, not the RFC.)
    """
    client = DigestClient("bob", "pw")
    [www] = client.handle_challenge(401, [_md5_challenge("n")], "REGISTER", "sip:biloxi.com")
    [proxy] = client.handle_challenge(407, [_md5_challenge("m")], "INVITE", "sip:alice@x")
    assert www.name == "Authorization" and proxy.name == "Proxy-Authorization"
    with pytest.raises(LocalProtocolError):
        client.handle_challenge(403, [_md5_challenge("n")], "REGISTER", "sip:biloxi.com")


def test_nc_counts_per_nonce_and_cnonce_per_request() -> None:
    cnonces = (f"c{i}" for i in itertools.count())
    client = DigestClient("bob", "zanzibar", cnonce_factory=lambda: next(cnonces))
    [first] = client.handle_challenge(401, [_md5_challenge("n1")], "REGISTER", "sip:biloxi.com")
    second, third = (client.authorize("REGISTER", "sip:biloxi.com")[0] for _ in range(2))
    creds = [parse_credentials(h.value) for h in (first, second, third)]
    assert [c.nc_text for c in creds] == ["00000001", "00000002", "00000003"]
    assert [c.cnonce for c in creds] == ["c0", "c1", "c2"]
    assert {c.nonce for c in creds} == {"n1"}
    # A new nonce restarts the count.
    [fresh] = client.handle_challenge(
        401, [_md5_challenge("n2", stale=True)], "REGISTER", "sip:biloxi.com"
    )
    assert parse_credentials(fresh.value).nc == 1


def test_nc_is_eight_hex_digits_past_nine() -> None:
    client = DigestClient("bob", "pw")
    client.handle_challenge(401, [_md5_challenge("n")], "M", "sip:x")
    headers = [client.authorize("M", "sip:x")[0] for _ in range(10)]
    assert "nc=0000000b" in headers[-1].value


def test_preemptive_authorize_without_cache_is_empty() -> None:
    assert DigestClient("bob", "pw").authorize("REGISTER", "sip:x") == []


def test_wrong_password_reports_failure_instead_of_looping() -> None:
    client = DigestClient("bob", "wrong")
    client.handle_challenge(401, [_md5_challenge("n1")], "REGISTER", "sip:biloxi.com")
    with pytest.raises(AuthenticationFailedError) as info:
        client.handle_challenge(401, [_md5_challenge("n2")], "REGISTER", "sip:biloxi.com")
    assert info.value.realm == "biloxi.com"
    assert client.realms == []  # the bad credentials are not sent pre-emptively any more


def test_stale_challenge_is_retried_not_a_failure() -> None:
    client = DigestClient("bob", "zanzibar")
    client.handle_challenge(401, [_md5_challenge("n1")], "REGISTER", "sip:biloxi.com")
    [retry] = client.handle_challenge(
        401, [_md5_challenge("n2", stale=True)], "REGISTER", "sip:biloxi.com"
    )
    assert 'nonce="n2"' in retry.value


def test_endless_stale_gives_up() -> None:
    client = DigestClient("bob", "zanzibar")
    client.handle_challenge(401, [_md5_challenge("n0")], "REGISTER", "sip:b")
    with pytest.raises(AuthenticationFailedError, match="stale"):
        for i in range(1, 10):
            client.handle_challenge(401, [_md5_challenge(f"n{i}", stale=True)], "REGISTER", "sip:b")


def test_preemptive_credentials_rejected_get_one_fresh_try() -> None:
    """A server that forgot our cached nonce and did not say stale: retry once, then fail."""
    client = DigestClient("bob", "zanzibar")
    client.handle_challenge(401, [_md5_challenge("n1")], "REGISTER", "sip:b")
    client.authorize("REGISTER", "sip:b")  # nc=2 with the cached nonce
    [retry] = client.handle_challenge(401, [_md5_challenge("n2")], "REGISTER", "sip:b")
    assert 'nonce="n2"' in retry.value
    with pytest.raises(AuthenticationFailedError):
        client.handle_challenge(401, [_md5_challenge("n3")], "REGISTER", "sip:b")


def test_sent_tells_which_request_was_challenged() -> None:
    """Two requests in flight: the challenge of the one sent without credentials is no failure."""
    client = DigestClient("bob", "zanzibar")
    client.handle_challenge(401, [_md5_challenge("n1")], "REGISTER", "sip:b")
    [ok] = client.handle_challenge(401, [_md5_challenge("n2")], "OPTIONS", "sip:b", sent=[])
    assert 'nonce="n2"' in ok.value
    with pytest.raises(AuthenticationFailedError):
        client.handle_challenge(401, [_md5_challenge("n3")], "OPTIONS", "sip:b", sent=[ok.value])


def test_multiple_realms_answered_each() -> None:
    client = DigestClient("bob", "pw")
    headers = client.handle_challenge(
        407,
        [_md5_challenge("a", realm="p1"), _md5_challenge("b", realm="p2")],
        "INVITE",
        "sip:alice@atlanta.com",
    )
    assert [(h.name, h.realm) for h in headers] == [
        ("Proxy-Authorization", "p1"),
        ("Proxy-Authorization", "p2"),
    ]
    assert len(client.authorize("BYE", "sip:alice@atlanta.com")) == 2
    client.forget("p1")
    assert [h.realm for h in client.authorize("BYE", "sip:x")] == ["p2"]


def test_auth_int_preference_and_fallback() -> None:
    both = 'Digest realm="r", nonce="n", qop="auth-int,auth"'
    only_int = 'Digest realm="r", nonce="n", qop="auth-int"'
    assert "qop=auth," in DigestClient("u", "p").handle_challenge(401, [both], "M", "u")[0].value
    pref = DigestClient("u", "p", prefer_auth_int=True)
    assert "qop=auth-int" in pref.handle_challenge(401, [both], "M", "u")[0].value
    assert (
        "qop=auth-int"
        in DigestClient("u", "p").handle_challenge(401, [only_int], "M", "u")[0].value
    )


def test_username_star_when_non_ascii_without_charset() -> None:
    plain = 'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256'
    client = DigestClient("J\u00e4s\u00f8n Doe", "pw")
    [header] = client.handle_challenge(401, [plain], "M", "sip:x")
    assert "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe" in header.value
    assert parse_credentials(header.value).username == "J\u00e4s\u00f8n Doe"
    # With charset=UTF-8 SIP's quoted-string carries it as is (RFC 3261 §25.1).
    utf8 = DigestClient("J\u00e4s\u00f8n Doe", "pw")
    [header] = utf8.handle_challenge(401, [plain + ", charset=UTF-8"], "M", "sip:x")
    assert 'username="J\u00e4s\u00f8n Doe"' in header.value


@pytest.mark.parametrize("charset", [", charset=UTF-8", ""])
def test_names_and_passwords_are_normalised_to_nfc(charset: str) -> None:
    nfd_user, nfc_user = "Jo\u0308rg", "J\u00f6rg"
    ch = 'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256' + charset
    a = DigestClient(nfd_user, "pa\u0308ss", cnonce_factory=lambda: "c").handle_challenge(
        401, [ch], "M", "u"
    )
    b = DigestClient(nfc_user, "p\u00e4ss", cnonce_factory=lambda: "c").handle_challenge(
        401, [ch], "M", "u"
    )
    assert a[0].value == b[0].value


def test_client_no_usable_challenge() -> None:
    with pytest.raises(NoUsableChallengeError):
        DigestClient("u", "p").handle_challenge(401, [SHA1_R, BASIC], "M", "u")


# ------------------------------------------------------------------------------ server


def _server(**kwargs: object) -> DigestServer:
    store = InMemoryCredentials()
    store.add_password("bob", "biloxi.com", "zanzibar")
    store.add_password("J\u00e4s\u00f8n Doe", "biloxi.com", "Secret, or not?")
    options: dict[str, object] = {"secret": b"k" * 32, "random_bytes": lambda n: b"\x01" * n}
    options.update(kwargs)
    return DigestServer("biloxi.com", store, **options)  # type: ignore[arg-type]


def _values(headers: list[tuple[str, str]]) -> list[str]:
    return [v for _, v in headers]


REQ = ("REGISTER", "sip:biloxi.com")


def test_server_challenge_order_and_header_names() -> None:
    uas = _server()
    headers = uas.challenge(now=10.0)
    assert [n for n, _ in headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    algorithms = [parse_challenges(v)[0].algorithm for v in _values(headers)]
    assert algorithms == [Algorithm.SHA_256, Algorithm.MD5]  # RFC 8760 §2.4: preference order
    assert uas.status_code == 401 and uas.credentials_header == "Authorization"
    proxy = _server(proxy=True)
    assert proxy.status_code == 407
    assert {n for n, _ in proxy.challenge(now=0.0)} == {"Proxy-Authenticate"}
    assert proxy.credentials_header == "Proxy-Authorization"


ALL_QOPS: list[tuple[Qop, ...]] = [(), (Qop.AUTH,), (Qop.AUTH_INT,)]


@pytest.mark.parametrize("algorithm", list(Algorithm), ids=lambda a: a.value)
@pytest.mark.parametrize("qop", ALL_QOPS, ids=["no-qop", "auth", "auth-int"])
def test_round_trip_every_algorithm_and_qop(algorithm: Algorithm, qop: tuple[Qop, ...]) -> None:
    if algorithm.is_session and not qop:
        with pytest.raises(LocalProtocolError):
            _server(algorithms=[algorithm], qop=qop)
        return
    server = _server(algorithms=[algorithm], qop=qop)
    client = DigestClient("bob", "zanzibar")
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    headers = client.handle_challenge(
        401, _values(server.challenge(100.0)), "INVITE", "sip:bob@biloxi.com", body
    )
    verdict = server.verify("INVITE", "sip:bob@biloxi.com", [h.value for h in headers], 101.0, body)
    assert verdict.outcome is Outcome.OK, verdict.reason
    assert verdict.username == "bob" and verdict.algorithm is algorithm
    assert headers[0].weak is algorithm.weak
    if Qop.AUTH_INT in qop:  # the body is covered
        tampered = server.verify(
            "INVITE", "sip:bob@biloxi.com", [h.value for h in headers], 101.0, b"x"
        )
        assert tampered.outcome is not Outcome.OK


def test_round_trip_preemptive_refresh_costs_no_round_trip() -> None:
    server = _server()
    client = DigestClient("bob", "zanzibar")
    first = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert server.verify(*REQ, [first[0].value], 1.0).ok
    for t in (60.0, 120.0, 180.0):
        refresh = client.authorize(*REQ)
        assert server.verify(*REQ, [refresh[0].value], t).ok


def test_round_trip_userhash_and_utf8() -> None:
    server = _server(algorithms=[Algorithm.SHA_512_256], userhash=True, charset_utf8=True)
    client = DigestClient("J\u00e4s\u00f8n Doe", "Secret, or not?")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert "J\u00e4s" not in h.value
    verdict = server.verify(*REQ, [h.value], 1.0)
    assert verdict.ok and verdict.username == "J\u00e4s\u00f8n Doe"


def test_round_trip_username_star() -> None:
    server = _server()
    client = DigestClient("J\u00e4s\u00f8n Doe", "Secret, or not?")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert "username*=" in h.value
    assert server.verify(*REQ, [h.value], 1.0).ok


def test_stale_nonce_flow() -> None:
    server = _server(nonce_lifetime=30.0)
    client = DigestClient("bob", "zanzibar")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert server.verify(*REQ, [h.value], 1.0).ok
    [late] = client.authorize(*REQ)
    verdict = server.verify(*REQ, [late.value], 31.0)
    assert verdict.outcome is Outcome.STALE and verdict.stale and verdict.status_code == 401
    rechallenge = server.challenge(31.0, stale=verdict.stale)
    assert all(parse_challenges(v)[0].stale for v in _values(rechallenge))
    [retry] = client.handle_challenge(401, _values(rechallenge), *REQ)  # no failure raised
    assert server.verify(*REQ, [retry.value], 32.0).ok


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    """RFC 7616 §3.3: stale=true only when the response was right."""
    server = _server(nonce_lifetime=30.0)
    client = DigestClient("bob", "wrong")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert server.verify(*REQ, [h.value], 100.0).outcome is Outcome.BAD_CREDENTIALS


def test_wrong_password_end_to_end_fails_without_loop() -> None:
    server = _server()
    client = DigestClient("bob", "wrong")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    verdict = server.verify(*REQ, [h.value], 1.0)
    assert verdict.outcome is Outcome.BAD_CREDENTIALS and verdict.status_code == 401
    with pytest.raises(AuthenticationFailedError):
        client.handle_challenge(401, _values(server.challenge(1.0)), *REQ)


def test_nc_replay_rejected() -> None:
    server = _server()
    client = DigestClient("bob", "zanzibar")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert server.verify(*REQ, [h.value], 1.0).ok
    replay = server.verify(*REQ, [h.value], 2.0)
    assert replay.outcome is Outcome.REPLAY
    [h2] = client.authorize(*REQ)  # nc=2
    [h3] = client.authorize(*REQ)  # nc=3
    assert server.verify(*REQ, [h3.value], 3.0).ok
    assert server.verify(*REQ, [h2.value], 3.0).outcome is Outcome.REPLAY  # nc went backwards


def test_forged_nonce_rejected() -> None:
    server = _server()
    other = _server(secret=b"x" * 32)
    client = DigestClient("bob", "zanzibar")
    challenges = _values(other.challenge(0.0))
    # Opaque would give it away: copy the real server's so only the nonce is forged.
    challenges = [c.replace(other.opaque, server.opaque) for c in challenges]
    [h] = client.handle_challenge(401, challenges, *REQ)
    verdict = server.verify(*REQ, [h.value], 1.0)
    assert verdict.outcome is Outcome.FORGED_NONCE and verdict.status_code == 401


@pytest.mark.parametrize("nonce", ["", "abc", "!!!!", "A" * 75, "AAAA" * 30])
def test_garbage_nonces_are_forged(nonce: str) -> None:
    server = _server()
    ha1 = compute_ha1(Algorithm.MD5, "bob", "biloxi.com", "zanzibar")
    creds = Credentials(
        username="bob",
        realm="biloxi.com",
        nonce=nonce or "x",
        uri="sip:biloxi.com",
        response=compute_response(
            Algorithm.MD5,
            ha1,
            nonce=nonce or "x",
            method="REGISTER",
            uri="sip:biloxi.com",
            qop="auth",
            nc="00000001",
            cnonce="c",
        ),
        qop="auth",
        nc=1,
        cnonce="c",
        opaque=server.opaque,
    )
    assert server.verify(*REQ, [format_credentials(creds)], 1.0).outcome is Outcome.FORGED_NONCE


def test_tampered_uri_and_method_rejected() -> None:
    server = _server()
    client = DigestClient("bob", "zanzibar")
    [h] = client.handle_challenge(
        401, _values(server.challenge(0.0)), "INVITE", "sip:bob@biloxi.com"
    )
    uri = server.verify("INVITE", "sip:mallory@biloxi.com", [h.value], 1.0)
    assert uri.outcome is Outcome.MISMATCH and uri.status_code == 400
    # Rewriting the uri parameter to match breaks the response instead.
    forged = h.value.replace('uri="sip:bob@biloxi.com"', 'uri="sip:mallory@biloxi.com"')
    assert (
        server.verify("INVITE", "sip:mallory@biloxi.com", [forged], 1.0).outcome
        is Outcome.BAD_CREDENTIALS
    )
    method = server.verify("BYE", "sip:bob@biloxi.com", [h.value], 1.0)
    assert method.outcome is Outcome.BAD_CREDENTIALS


def test_uri_in_another_but_equivalent_form_is_accepted() -> None:
    """The server may only have a re-serialised Request-URI; §19.1.4 equivalence suffices."""
    server = _server()
    client = DigestClient("bob", "zanzibar")
    wire_uri = "sip:%62ob@BILOXI.com;Transport=TCP"
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), "INVITE", wire_uri)
    verdict = server.verify("INVITE", "sip:bob@biloxi.com;transport=tcp", [h.value], 1.0)
    assert verdict.outcome is Outcome.OK
    # Equivalence is not a wildcard: a different port is a different URI.
    [h2] = DigestClient("bob", "zanzibar").handle_challenge(
        401, _values(server.challenge(0.0)), "INVITE", wire_uri
    )
    other = server.verify("INVITE", "sip:bob@biloxi.com:5060;transport=tcp", [h2.value], 1.0)
    assert other.outcome is Outcome.MISMATCH


def test_unknown_user_and_other_realms() -> None:
    server = _server()
    [h] = DigestClient("eve", "x").handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    assert server.verify(*REQ, [h.value], 1.0).outcome is Outcome.UNKNOWN_USER
    foreign = 'Digest username="bob", realm="other", nonce="n", uri="sip:biloxi.com", response="00"'
    verdict = server.verify(*REQ, [foreign, "Basic Ym9iOnBhc3M="], 1.0)
    assert verdict.outcome is Outcome.NO_CREDENTIALS and verdict.status_code == 401
    assert server.verify(*REQ, [], 1.0).outcome is Outcome.NO_CREDENTIALS


def test_malformed_credentials_are_400() -> None:
    verdict = _server().verify(*REQ, ['Digest username="bob", realm="biloxi.com"'], 1.0)
    assert verdict.outcome is Outcome.MALFORMED and verdict.status_code == 400


def _tamper(server: DigestServer, old: str, new: str) -> Outcome:
    client = DigestClient("bob", "zanzibar")
    [h] = client.handle_challenge(401, _values(server.challenge(0.0)), *REQ)
    return server.verify(*REQ, [h.value.replace(old, new)], 1.0).outcome


def test_parameters_must_match_the_offer() -> None:
    server = _server(algorithms=[Algorithm.SHA_256])
    assert _tamper(server, "algorithm=SHA-256", "algorithm=MD5") is Outcome.MISMATCH
    assert _tamper(server, "qop=auth", "qop=auth-int") is Outcome.MISMATCH
    assert _tamper(server, f'opaque="{server.opaque}"', 'opaque="x"') is Outcome.MISMATCH
    assert _tamper(server, ", qop=auth, nc=00000001", "") is Outcome.MISMATCH
    assert _tamper(server, 'realm="biloxi.com"', 'realm="atlanta.com"') is Outcome.NO_CREDENTIALS


def test_md5_only_offer_rejects_client_upgrade() -> None:
    """The server verifies with an algorithm it offered, never one the client picked alone."""
    server = _server(algorithms=[Algorithm.MD5])
    assert _tamper(server, "algorithm=MD5", "algorithm=SHA-256") is Outcome.MISMATCH


def test_server_stores_ha1_not_password() -> None:
    store = InMemoryCredentials()
    store.add_ha1(
        "bob",
        "biloxi.com",
        Algorithm.MD5,
        compute_ha1(Algorithm.MD5, "bob", "biloxi.com", "zanzibar"),
    )
    server = DigestServer("biloxi.com", store, algorithms=[Algorithm.MD5_SESS], secret=b"s" * 32)
    [h] = DigestClient("bob", "zanzibar").handle_challenge(
        401, _values(server.challenge(0.0)), *REQ
    )
    assert server.verify(*REQ, [h.value], 1.0).ok  # -sess shares its base H(A1)


def test_nonce_is_deterministic_with_injected_randomness() -> None:
    server = _server()
    assert server.new_nonce(5.0) == server.new_nonce(5.0)
    assert server.new_nonce(5.0) != server.new_nonce(6.0)
    assert server.new_nonce(5.0) != _server(secret=b"z" * 32).new_nonce(5.0)


def test_nonce_from_the_future_is_stale() -> None:
    server = _server()
    [h] = DigestClient("bob", "zanzibar").handle_challenge(
        401, _values(server.challenge(1000.0)), *REQ
    )
    assert server.verify(*REQ, [h.value], 5.0).outcome is Outcome.STALE


def test_evicted_nonce_records_cannot_be_replayed() -> None:
    counter = itertools.count()
    server = _server(max_tracked_nonces=2, random_bytes=lambda n: next(counter).to_bytes(n, "big"))
    sent = []
    for t in (0.0, 1.0, 2.0):
        [h] = DigestClient("bob", "zanzibar").handle_challenge(
            401, _values(server.challenge(t)), *REQ
        )
        assert server.verify(*REQ, [h.value], t + 0.5).ok
        sent.append(h.value)
    # The first nonce's record was evicted to make room: its replay must not be accepted.
    assert server.verify(*REQ, [sent[0]], 3.0).outcome is Outcome.STALE
    assert server.verify(*REQ, [sent[2]], 3.0).outcome is Outcome.REPLAY


def test_server_repr_has_no_secret() -> None:
    server = _server(secret=b"topsecretkey0123456789abcdefghij")
    assert "topsecret" not in repr(server)


@settings(max_examples=60, deadline=None)
@given(
    username=st.text(min_size=1, max_size=12) | st.sampled_from(["e\u0301", "Jo\u0308rg"]),
    password=st.text(max_size=12) | st.just("pa\u0308ss"),
    uri=st.sampled_from(["sip:bob@biloxi.com", "sips:x@[2001:db8::1]:5061;transport=tcp"]),
    body=st.binary(max_size=64),
    algorithm=st.sampled_from(list(Algorithm)),
    qop=st.sampled_from([Qop.AUTH, Qop.AUTH_INT]),
)
def test_round_trip_property(
    username: str, password: str, uri: str, body: bytes, algorithm: Algorithm, qop: Qop
) -> None:
    store = InMemoryCredentials()
    store.add_password(username, "realm", password)
    server = DigestServer("realm", store, algorithms=[algorithm], qop=[qop], secret=b"s" * 32)
    client = DigestClient(username, password)
    headers = client.handle_challenge(401, _values(server.challenge(0.0)), "INVITE", uri, body)
    assert server.verify("INVITE", uri, [h.value for h in headers], 1.0, body).ok
    [wrong] = DigestClient(username, password + "x").handle_challenge(
        401, _values(server.challenge(0.0)), "INVITE", uri, body
    )
    assert server.verify("INVITE", uri, [wrong.value], 1.0, body).outcome is Outcome.BAD_CREDENTIALS
