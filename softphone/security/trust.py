"""Certificate trust decisions: evaluate a presented chain, report every problem, decide.

The model (ARCHITECTURE.md "TLS and trust"): the TLS adapter never fails a handshake on a
certificate problem; it hands the peer's chain to :func:`evaluate`, which returns a
:class:`TrustReport` listing **every** problem with the certificate it concerns (not the
first one, as stdlib ``ssl`` does). :func:`decide_automatically` answers the easy cases (a
clean report, a matching pin, a problem the draft says must always close the connection);
the rest become a :class:`TrustDecisionRequired` event that a person answers with a
:class:`TrustDecision`, applied by :func:`apply_decision`.

The behaviour for each test case of appendix A of draft-gurbani-sip-tls-use-00:

=========  =========================================  =====================================
case       input                                      here
=========  =========================================  =====================================
A.1.1      trusted CA, host in subject CN, no SAN     no findings: continue
A.1.2      trusted CA, host in SAN, other DN fields   no findings: continue
A.2.1      expired                                    EXPIRED: the connection is closed at
                                                      once ("must immediately close"); the
                                                      person is then told and asked, and
                                                      "connect this time" opens a new one
A.2.2      trusted CA, no name anywhere               NO_NAME: "depends on the implementation";
                                                      we ask the person (default: don't)
A.2.3      trusted CA, wrong CN, no SAN               NAME_MISMATCH: ask (default: don't)
A.2.4      trusted CA, wrong SAN                      NAME_MISMATCH: ask (default: don't)
A.2.5      unknown CA                                 UNKNOWN_CA: ask (default: don't)
A.3        depth ("how deep?" is left open)           more than ``max_depth`` (4) intermediate
                                                      CAs: DEPTH_EXCEEDED, ask
=========  =========================================  =====================================

Name checks follow RFC 5922 §7 (see :class:`~softphone.security.certificates.Identity`), not
``cryptography``'s server verifier: that one matches wildcards and ignores CN-only and
``sip:`` URI certificates, all of which RFC 5922 rules differently. The library still builds
and checks the chain (RFC 5280 §6) through ``PolicyBuilder``; when it refuses, our own checks
over the chain find out why, so that the report names each reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TypeVar

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from softphone.security.certificates import (
    CertificationPath,
    Identity,
    IdentityKind,
    SecurityError,
    build_path,
    describe_key,
    fingerprint_groups,
    fingerprint_sha256,
    is_self_signed,
    signature_hash_name,
    subject_alt_dns,
    subject_alt_uris,
    summary,
    weak_signature_hash,
)
from softphone.security.pins import Pin, PinReason, PinState, PinStore

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "CertificateSummary",
    "Finding",
    "Problem",
    "Purpose",
    "TrustDecision",
    "TrustDecisionError",
    "TrustDecisionRequired",
    "TrustReport",
    "apply_decision",
    "decide_automatically",
    "evaluate",
]

#: Intermediate CAs allowed between the leaf and the trust anchor (draft A.3 leaves the limit
#: open). Public CAs use one or two; four leaves room for a corporate PKI.
DEFAULT_MAX_DEPTH = 4

#: RFC 5924 §4: id-kp-sipDomain, the EKU a SIP domain certificate may carry instead of
#: serverAuth/clientAuth.
ID_KP_SIP_DOMAIN = ObjectIdentifier("1.3.6.1.5.5.7.3.20")


class TrustDecisionError(SecurityError):
    """A decision the report does not allow, such as accepting an expired certificate."""


class Purpose(StrEnum):
    """The role the certificate's owner plays in the TLS connection."""

    SERVER = "server"  # we connected to it (registrar, proxy, sipsec callee)
    CLIENT = "client"  # it connected to us (sipsec caller, a peer proxy)


class Problem(Enum):
    """One thing wrong with a presented chain. The order is the order of importance."""

    CHANGED_SINCE_PINNED = "changed-since-pinned"  # not the certificate pinned (SSH-style)
    NO_CERTIFICATE = "no-certificate"  # the peer sent none
    BAD_SIGNATURE = "bad-signature"  # its named issuer's key does not verify it: altered
    NAME_MISMATCH = "name-mismatch"  # RFC 5922 §7.3 / RFC 3261 §23.2: names someone else
    NO_NAME = "no-name"  # names nobody (draft A.2.2)
    UNKNOWN_CA = "unknown-ca"  # RFC 5280 §6.1: the path reaches no trust anchor
    SELF_SIGNED = "self-signed"  # the peer's own certificate vouches for itself
    EXPIRED = "expired"  # RFC 5280 §4.1.2.5, after notAfter (draft A.2.1)
    NOT_YET_VALID = "not-yet-valid"  # before notBefore
    CHAIN_INVALID = "chain-invalid"  # refused by the RFC 5280 verifier for another reason
    NOT_A_CA = "not-a-ca"  # RFC 5280 §4.2.1.9: an issuer without basicConstraints cA
    BAD_KEY_USAGE = "bad-key-usage"  # RFC 5280 §4.2.1.3/§4.2.1.12: key not meant for this
    WEAK_SIGNATURE = "weak-signature"  # SHA-1 or MD5 (RFC 9155)
    WEAK_KEY = "weak-key"  # RSA < 2048, EC < 256 bits, DSA
    DEPTH_EXCEEDED = "depth-exceeded"  # draft A.3 limit, or a pathLenConstraint

    @property
    def overridable(self) -> bool:
        """Whether a person may choose to connect anyway.

        Not for a signature that does not verify (a forgery, not a configuration slip) or a
        missing certificate (nothing to decide about). An expired certificate is put in front
        of the person like any other problem (the product promise: every trust decision is
        theirs, with the reason), but see :attr:`closes_at_once`.
        """
        return self not in _NEVER_OVERRIDABLE

    @property
    def closes_at_once(self) -> bool:
        """Whether the connection is closed before the person is asked.

        draft-gurbani-sip-tls-use-00 A.2.1: on an expired certificate "the client must
        immediately close the connection". If the person then chooses to connect anyway, the
        engine opens a new connection, which must present the same certificate.
        """
        return self in _CLOSE_AT_ONCE

    @property
    def covered_by_pin(self) -> bool:
        """Whether a matching pin answers this problem without asking again.

        A pin records a decision about a certificate, not about time: a pinned certificate
        that has since expired (or is not valid yet) is asked about again.
        """
        return self not in _NOT_COVERED_BY_PIN

    @property
    def rank(self) -> int:
        return _RANK[self]


_NEVER_OVERRIDABLE = frozenset({Problem.BAD_SIGNATURE, Problem.NO_CERTIFICATE})
_CLOSE_AT_ONCE = frozenset({Problem.EXPIRED})
_NOT_COVERED_BY_PIN = frozenset({Problem.EXPIRED, Problem.NOT_YET_VALID})
_RANK = {p: i for i, p in enumerate(Problem)}
# Problems the library is not asked to look for (SIP names, the leaf's usage: RFC 5922 and
# RFC 5924 decide those), so they cannot explain why it refused a chain.
_UNCHECKED_BY_LIBRARY = frozenset(
    {Problem.NAME_MISMATCH, Problem.NO_NAME, Problem.CHANGED_SINCE_PINNED}
)


@dataclass(frozen=True)
class Finding:
    """A problem, the index in :attr:`TrustReport.chain` of the certificate it concerns (0 is
    the peer's own certificate), a technical ``detail`` for logs, and a ``message`` in plain
    words for the person deciding (UX.md: the consequence first, then the reason)."""

    problem: Problem
    certificate_index: int
    detail: str
    message: str


def _explains_refusal(finding: Finding) -> bool:
    if finding.problem is Problem.BAD_KEY_USAGE:
        return finding.certificate_index > 0
    return finding.problem not in _UNCHECKED_BY_LIBRARY


@dataclass(frozen=True)
class CertificateSummary:
    """What the details view shows for each certificate of the chain."""

    index: int
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    key: str
    signature_hash: str | None
    fingerprint: str  # "AB12 CD34 ..." groups


@dataclass(frozen=True)
class TrustReport:
    """Everything known about a presented chain, for a decision and for the dialog."""

    identity: Identity
    purpose: Purpose
    presented: tuple[x509.Certificate, ...]
    chain: tuple[x509.Certificate, ...]
    findings: tuple[Finding, ...]
    anchored: bool
    pin_state: PinState = PinState.NONE
    pinned: tuple[Pin, ...] = ()
    verifier_error: str | None = None
    fingerprints: tuple[bytes, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprints", tuple(fingerprint_sha256(c) for c in self.chain))

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(dict.fromkeys(f.problem for f in self.findings))

    @property
    def changed(self) -> bool:
        """The loud case: a certificate pinned for this identity was replaced by another."""
        return self.pin_state is PinState.CHANGED

    @property
    def overridable(self) -> bool:
        """Whether a person may accept despite the findings."""
        return all(f.problem.overridable for f in self.findings)

    @property
    def closes_at_once(self) -> bool:
        """The transport closes the connection before asking (draft A.2.1)."""
        return any(f.problem.closes_at_once for f in self.findings)

    @property
    def acceptable(self) -> bool:
        """No findings, or the leaf is pinned for this identity and the pin covers them all."""
        if not self.findings:
            return True
        return self.pin_state is PinState.MATCHES and all(
            f.problem.overridable and f.problem.covered_by_pin for f in self.findings
        )

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    @property
    def fingerprint(self) -> bytes | None:
        """SHA-256 of the peer's own certificate (what a pin stores)."""
        return self.fingerprints[0] if self.fingerprints else None

    @property
    def headline(self) -> str:
        """The most important message (findings are kept in order of importance)."""
        if not self.findings:
            return f"The certificate is valid for {_who(self.identity)}."
        return self.findings[0].message

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings)

    @property
    def certificates(self) -> tuple[CertificateSummary, ...]:
        return tuple(
            CertificateSummary(
                index=i,
                subject=summary(c.subject),
                issuer=summary(c.issuer),
                not_before=c.not_valid_before_utc,
                not_after=c.not_valid_after_utc,
                key=describe_key(c).description,
                signature_hash=signature_hash_name(c),
                fingerprint=fingerprint_groups(self.fingerprints[i]),
            )
            for i, c in enumerate(self.chain)
        )


# --- wording (UX.md "Trust dialog wording") -------------------------------------------------


def _who(identity: Identity) -> str:
    if identity.kind is IdentityKind.DOMAIN:
        return f"{identity.value}'s server"
    return str(identity)


def _whose(identity: Identity, chain: Sequence[x509.Certificate], index: int) -> str:
    if index == 0:
        return "Its certificate" if identity.kind is IdentityKind.DOMAIN else "Their certificate"
    return f"The certificate of the authority “{summary(chain[index].subject)}”"


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "nothing"


# --- the checks -----------------------------------------------------------------------------


@dataclass
class _Checker:
    """Collects findings for one chain; each method is one RFC rule."""

    identity: Identity
    chain: tuple[x509.Certificate, ...]
    now: dt.datetime
    findings: list[Finding] = field(default_factory=list)

    def add(self, problem: Problem, index: int, detail: str, message: str) -> None:
        self.findings.append(Finding(problem, index, detail, message))

    def whose(self, index: int) -> str:
        return _whose(self.identity, self.chain, index)

    def check_name(self) -> None:
        """RFC 5922 §7.1-7.3 (domains) or RFC 3261 §23.2 (AORs) against the leaf."""
        leaf, who = self.chain[0], _who(self.identity)
        if self.identity.matches(leaf):
            return
        names = self.identity.names_in(leaf)
        if self.identity.kind is IdentityKind.AOR:
            aors = tuple(f"sip:{n}" for n in names)
            # Show what it does name, a domain certificate included.
            names = aors or (*subject_alt_uris(leaf), *subject_alt_dns(leaf))
        if not names:
            what = "server or domain" if self.identity.kind is IdentityKind.DOMAIN else "address"
            self.add(
                Problem.NO_NAME,
                0,
                "no subjectAltName sip URI/dNSName and no DNS name in the subject CN",
                f"This may not be {who}. {self.whose(0)} does not name any {what}; the "
                "connection would be encrypted, but to an unknown party.",
            )
            return
        self.add(
            Problem.NAME_MISMATCH,
            0,
            f"wanted {self.identity.value}; certificate names {', '.join(names)}",
            f"This may not be {who}. {self.whose(0)} was issued for {_names(names)}.",
        )

    def check_path(self, path: CertificationPath) -> None:
        """Who vouches for the chain (RFC 5280 §6.1: the path must end at a trust anchor)."""
        if path.anchored:
            return
        index = path.broken_at if path.broken_at is not None else len(self.chain) - 1
        who = _who(self.identity)
        cert = self.chain[index]
        if path.bad_signature:
            self.add(
                Problem.BAD_SIGNATURE,
                index,
                f"signature of {cert.subject.rfc4514_string()} does not verify with its issuer",
                "This certificate chain may have been tampered with. The signature on "
                f"{self.whose(index).lower()} does not match its issuer "
                f"“{summary(cert.issuer)}”.",
            )
        elif index == 0 and path.missing_issuer is None:
            self.add(
                Problem.SELF_SIGNED,
                0,
                "self-signed certificate not among the trust anchors",
                f"No authority you trust vouches that this is {who}. {self.whose(0)} is "
                "self-signed: anyone can make one like it.",
            )
        else:
            # Past the leaf: a self-signed root the peer sent, or the issuer nobody sent of
            # an intermediate it did send.
            how = "was issued by" if index == 0 else "chain leads to"
            self.add(
                Problem.UNKNOWN_CA,
                index,
                f"issuer {cert.issuer.rfc4514_string()} is not a trust anchor",
                f"No authority you trust vouches that this is {who}. {self.whose(0)} {how} "
                f"“{summary(cert.issuer)}”, which is not one of your trusted authorities.",
            )

    def check_dates(self, index: int) -> None:
        """RFC 5280 §4.1.2.5: valid from notBefore to notAfter inclusive."""
        cert = self.chain[index]
        before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if self.now > after:
            self.add(
                Problem.EXPIRED,
                index,
                f"notAfter {after.isoformat()} < now {self.now.isoformat()}",
                f"Nobody vouches for this certificate any more. {self.whose(index)} expired "
                f"on {after:%Y-%m-%d}.",
            )
        if self.now < before:
            self.add(
                Problem.NOT_YET_VALID,
                index,
                f"notBefore {before.isoformat()} > now {self.now.isoformat()}",
                f"This certificate is not valid yet. {self.whose(index)} is valid from "
                f"{before:%Y-%m-%d}; if that day has passed, this computer's clock is wrong.",
            )

    def check_strength(self, index: int, *, check_signature: bool) -> None:
        """Key sizes (NIST SP 800-57) and signature hashes (RFC 9155: no SHA-1, no MD5)."""
        cert, who = self.chain[index], _who(self.identity)
        key = describe_key(cert)
        if key.weak:
            self.add(
                Problem.WEAK_KEY,
                index,
                f"{key.description} key",
                f"Someone with enough computing power could pose as {who}. "
                f"{self.whose(index)} uses a weak key ({key.description}).",
            )
        if check_signature and weak_signature_hash(cert):
            name = (signature_hash_name(cert) or "?").upper().replace("SHA", "SHA-")
            self.add(
                Problem.WEAK_SIGNATURE,
                index,
                f"signed with {cert.signature_algorithm_oid.dotted_string} ({name})",
                f"This certificate could be forged. {self.whose(index)} is signed with {name}, "
                "which is no longer safe.",
            )

    def check_leaf_usage(self, purpose: Purpose) -> None:
        """RFC 5280 §4.2.1.3/§4.2.1.12 and RFC 5924 §4: may this key do TLS in this role?"""
        leaf = self.chain[0]
        usage = _extension(leaf, x509.KeyUsage)
        if usage is not None and not (
            usage.digital_signature or usage.key_encipherment or usage.key_agreement
        ):
            self.add(
                Problem.BAD_KEY_USAGE,
                0,
                "keyUsage allows neither digitalSignature nor keyEncipherment",
                f"This certificate was not issued for this use. {self.whose(0)} may not be used "
                "to set up an encrypted connection.",
            )
        eku = _extension(leaf, x509.ExtendedKeyUsage)
        wanted = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if purpose is Purpose.SERVER
            else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        allowed = {wanted, ID_KP_SIP_DOMAIN, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
        if eku is not None and not allowed.intersection(eku):
            role = "a server" if purpose is Purpose.SERVER else "a client"
            self.add(
                Problem.BAD_KEY_USAGE,
                0,
                f"extendedKeyUsage lacks {wanted.dotted_string} and id-kp-sipDomain",
                f"This certificate was not issued for this use. {self.whose(0)} may not be used "
                f"by {role}.",
            )

    def check_issuer(self, index: int) -> None:
        """RFC 5280 §4.2.1.9/§4.2.1.3: an issuer must be a CA allowed to sign certificates."""
        cert = self.chain[index]
        name = summary(cert.subject)
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            self.add(
                Problem.NOT_A_CA,
                index,
                "issuer has no basicConstraints cA=TRUE",
                f"“{name}” was not allowed to vouch for other certificates. It is not a "
                "certificate authority.",
            )
        usage = _extension(cert, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            self.add(
                Problem.BAD_KEY_USAGE,
                index,
                "issuer keyUsage lacks keyCertSign",
                f"“{name}” was not allowed to vouch for other certificates. Its key may not "
                "sign certificates.",
            )
        below = index - 1  # intermediate CAs between the leaf and this one
        limit = constraints.path_length if constraints is not None else None
        if limit is not None and below > limit:
            self.add(
                Problem.DEPTH_EXCEEDED,
                index,
                f"pathLenConstraint {limit} < {below} intermediates",
                "This certificate is vouched for through too many intermediaries. "
                f"“{name}” may vouch through at most {limit}, but the chain uses {below}.",
            )

    def check_depth(self, intermediates: int, max_depth: int) -> None:
        """Draft A.3: a limit on intermediate CAs between leaf and anchor."""
        if intermediates > max_depth:
            self.add(
                Problem.DEPTH_EXCEEDED,
                max_depth + 1,
                f"{intermediates} intermediate CAs > max_depth {max_depth}",
                "This certificate is vouched for through too many intermediaries. The chain "
                f"has {intermediates} intermediate authorities; at most {max_depth} are allowed.",
            )


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# --- evaluation -----------------------------------------------------------------------------


def evaluate(
    chain: Sequence[x509.Certificate],
    identity: Identity,
    *,
    now: dt.datetime,
    anchors: Sequence[x509.Certificate] = (),
    pins: PinStore | None = None,
    purpose: Purpose | str = Purpose.SERVER,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> TrustReport:
    """Check the chain a peer presented (its own certificate first) for ``identity``.

    ``anchors`` are the configured CA file plus the system store (loaded by the caller);
    ``now`` must carry a time zone. Every problem found is reported, each with the index of
    the certificate it concerns in :attr:`TrustReport.chain` (the path actually followed: the
    peer's certificate, the issuers it sent that were used, and the trust anchor when found).
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    now = now.astimezone(dt.UTC)
    purpose = Purpose(purpose)  # "server" works too
    if not chain:
        return _no_certificate(identity, purpose)
    verified, verifier_error = _library_chain(chain, anchors, now, max_depth)
    path = (
        CertificationPath(tuple(verified), anchored=True)
        if verified is not None
        else build_path(chain, anchors)
    )
    checker = _Checker(identity, path.certificates, now)
    checker.check_name()
    checker.check_path(path)
    _check_every_certificate(checker, path, purpose, max_depth)
    if verifier_error is not None and not any(map(_explains_refusal, checker.findings)):
        # The library saw something our own rules do not cover (name constraints, a critical
        # extension nobody understands...): never let that pass silently.
        checker.add(
            Problem.CHAIN_INVALID,
            0,
            verifier_error,
            f"This certificate chain breaks the rules certificates must follow ({verifier_error}).",
        )
    pin_state = PinState.NONE
    pinned: tuple[Pin, ...] = ()
    if pins is not None:
        pinned = pins.pins_for(identity)
        pin_state = pins.state(identity, fingerprint_sha256(chain[0]))
        if pin_state is PinState.CHANGED:
            _changed_since_pinned(checker, pinned)
    findings = sorted(checker.findings, key=lambda f: (f.problem.rank, f.certificate_index))
    return TrustReport(
        identity=identity,
        purpose=purpose,
        presented=tuple(chain),
        chain=path.certificates,
        findings=tuple(findings),
        anchored=path.anchored,
        pin_state=pin_state,
        pinned=pinned,
        verifier_error=verifier_error,
    )


def _check_every_certificate(
    checker: _Checker, path: CertificationPath, purpose: Purpose, max_depth: int
) -> None:
    certs = path.certificates
    last = len(certs) - 1
    # The anchor's own signature, or a self-signed tail's, vouches for nothing: skip its hash.
    tail_self_signed = path.anchored or is_self_signed(certs[last])
    for index in range(len(certs)):
        checker.check_dates(index)
        checker.check_strength(index, check_signature=not (index == last and tail_self_signed))
        if index > 0:
            checker.check_issuer(index)
    checker.check_leaf_usage(purpose)
    intermediates = max(0, len(certs) - 1 - (1 if last > 0 and tail_self_signed else 0))
    checker.check_depth(intermediates, max_depth)


def _changed_since_pinned(checker: _Checker, pinned: Sequence[Pin]) -> None:
    leaf = checker.chain[0]
    trusted = "; ".join(fingerprint_groups(p.sha256) for p in pinned)
    now_fp = fingerprint_groups(leaf)
    checker.add(
        Problem.CHANGED_SINCE_PINNED,
        0,
        f"pinned {trusted}; presented {now_fp}",
        f"Warning: {_who(checker.identity)} is presenting a different certificate from the one "
        "you chose to trust. Someone may be intercepting the connection, or the certificate "
        f"was replaced. Trusted: {trusted}. Now: {now_fp}.",
    )


def _no_certificate(identity: Identity, purpose: Purpose) -> TrustReport:
    finding = Finding(
        Problem.NO_CERTIFICATE,
        0,
        "the peer presented no certificate",
        f"Nothing shows that this is {_who(identity)}. No certificate was presented.",
    )
    return TrustReport(identity, purpose, (), (), (finding,), anchored=False)


def _extension_policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    """webpki defaults, except where RFC 5922 and our own checks decide instead: a SIP domain
    certificate may have no subjectAltName (CN only, §7.1) or the id-kp-sipDomain EKU only
    (RFC 5924), and older SIP certificates often lack an authorityKeyIdentifier."""
    agnostic = verification.Criticality.AGNOSTIC
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, agnostic, None)
        .may_be_present(x509.ExtendedKeyUsage, agnostic, None)
        .may_be_present(x509.AuthorityKeyIdentifier, agnostic, None)
    )
    return verification.ExtensionPolicy.webpki_defaults_ca(), ee


def _library_chain(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    max_depth: int,
) -> tuple[list[x509.Certificate] | None, str | None]:
    """The chain ``cryptography``'s RFC 5280 verifier builds, or why it refused.

    The client verifier is used for both roles because it checks no names (ours do, per RFC
    5922). Not consulted when there are no anchors or when the peer's certificate is itself an
    anchor (a user who trusts exactly that certificate): the library cannot express either.
    """
    leaf = chain[0]
    if not anchors or leaf in anchors:
        return None, None
    ca_policy, ee_policy = _extension_policies()
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(now)
        .max_chain_depth(max_depth)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return verifier.verify(leaf, list(chain[1:])).chain, None
    except verification.VerificationError as exc:
        return None, str(exc).removeprefix("validation failed: ")


# --- decisions ------------------------------------------------------------------------------


class TrustDecision(Enum):
    """A person's answer (UX.md buttons: "Don't connect", "Connect this time", "Always trust
    this certificate for example.test")."""

    REJECT = "reject"
    ACCEPT_ONCE = "accept-once"
    ALWAYS_TRUST = "always-trust"


def decide_automatically(report: TrustReport) -> TrustDecision | None:
    """The decision policy alone can make, or None when a person must decide.

    ACCEPT_ONCE for a clean report or a certificate pinned for this identity; REJECT when a
    finding may never be overridden (a forged signature, no certificate); None otherwise. A
    changed pin is never accepted here, whatever else the report says.
    """
    if not report.overridable:
        return TrustDecision.REJECT
    if report.acceptable:
        return TrustDecision.ACCEPT_ONCE
    return None


def apply_decision(
    store: PinStore | None,
    report: TrustReport,
    decision: TrustDecision,
    *,
    now: dt.datetime,
) -> bool:
    """Carry out ``decision``; return whether the connection may go on.

    ALWAYS_TRUST pins the peer's certificate for the report's identity (replacing the old pin
    when the report is :attr:`~TrustReport.changed`, as removing a line from SSH's
    known_hosts does). Raises :class:`TrustDecisionError` when accepting what may not be
    accepted, or when there is no store to pin in.
    """
    if decision is TrustDecision.REJECT:
        return False
    if not report.overridable:
        blocking = ", ".join(f.problem.value for f in report.findings if not f.problem.overridable)
        raise TrustDecisionError(f"cannot accept a certificate that is {blocking}")
    if decision is TrustDecision.ALWAYS_TRUST:
        leaf, fingerprint = report.leaf, report.fingerprint
        if store is None or leaf is None or fingerprint is None:
            raise TrustDecisionError("nothing to pin, or no trust store to pin it in")
        pin = Pin(fingerprint, now, PinReason.ALWAYS_TRUST, summary(leaf.subject))
        if report.changed:
            store.replace(report.identity, pin)
        else:
            store.add(report.identity, pin)
    return True


@dataclass(frozen=True)
class TrustDecisionRequired:
    """A report only a person can decide on, and what is waiting for the answer.

    ``waiting_for`` names it in words: "registration to example.test", "sipsec call to
    sip:bob@example.test". The future or callback that carries the answer lives in the ua
    layer. Built only for reports :func:`decide_automatically` cannot decide.
    """

    report: TrustReport
    waiting_for: str

    def __post_init__(self) -> None:
        if decide_automatically(self.report) is not None:
            raise ValueError("this report needs no decision from a person")
        if not self.waiting_for:
            raise ValueError("say what is waiting for the decision")

    @property
    def choices(self) -> tuple[TrustDecision, ...]:
        """Every answer is allowed; for a changed certificate the UI offers ALWAYS_TRUST only
        once the details are open (UX.md)."""
        return (TrustDecision.REJECT, TrustDecision.ACCEPT_ONCE, TrustDecision.ALWAYS_TRUST)

    @property
    def default(self) -> TrustDecision:
        return TrustDecision.REJECT

    @property
    def loud(self) -> bool:
        """Show the distinct, blocking "certificate changed" warning."""
        return self.report.changed
