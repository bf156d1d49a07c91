"""Certificate evaluation and trust decisions, sans-I/O (no sockets, no files, no clock).

- :mod:`.certificates`: fingerprints, RFC 5922 names, keys, signatures, path building;
- :mod:`.trust`: :func:`evaluate` → :class:`TrustReport` (every problem found),
  :func:`decide_automatically`, :class:`TrustDecisionRequired`, :func:`apply_decision`;
- :mod:`.pins`: the :class:`PinStore` of certificates a person chose to trust.

Errors::

    SecurityError
    ├── InvalidIdentityError    (also ValueError) an Identity that can never match safely
    ├── PinStoreError           (also ValueError) trust store bytes we cannot read
    └── TrustDecisionError      a decision the report does not allow
"""

from __future__ import annotations

from softphone.security.certificates import (
    Identity,
    IdentityKind,
    InvalidIdentityError,
    KeyInfo,
    SecurityError,
    describe_key,
    fingerprint_groups,
    fingerprint_hex,
    fingerprint_sha256,
)
from softphone.security.pins import Pin, PinReason, PinState, PinStore, PinStoreError
from softphone.security.trust import (
    DEFAULT_MAX_DEPTH,
    CertificateSummary,
    Finding,
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

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "CertificateSummary",
    "Finding",
    "Identity",
    "IdentityKind",
    "InvalidIdentityError",
    "KeyInfo",
    "Pin",
    "PinReason",
    "PinState",
    "PinStore",
    "PinStoreError",
    "Problem",
    "Purpose",
    "SecurityError",
    "TrustDecision",
    "TrustDecisionError",
    "TrustDecisionRequired",
    "TrustReport",
    "apply_decision",
    "decide_automatically",
    "describe_key",
    "evaluate",
    "fingerprint_groups",
    "fingerprint_hex",
    "fingerprint_sha256",
]
