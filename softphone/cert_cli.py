"""``softphone cert``: the user's identity, from the command line.

    softphone cert new --aor sip:alice@example.test [--dir D] [--days N] [--force]
    softphone cert import FILE.p12 [--password-env VAR] [--dir D] [--force]
    softphone cert export [--out FILE] [--chain] [--dir D]
    softphone cert show [--dir D] [--qr (--with AOR | --peer-cert FILE) [--png FILE]]

``new`` and ``import`` need a secure OS keyring (the private key's passphrase lives there);
``export`` and ``show`` read only the public certificate. ``show --qr`` prints the safety
number of a call with a contact (their current certificate in the trust ledger, or a PEM
file) and its QR code for in-person comparison (UX.md "Safety number").
Exit status 0 on success, 1 on an error explained on stderr, 2 on a usage error (argparse).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from cryptography import x509

from softphone.identity_store import (
    IdentityExistsError,
    IdentityStore,
    IdentityStoreError,
    default_identity_dir,
)
from softphone.security.certificates import (
    SecurityError,
    describe_key,
    fingerprint_groups,
    is_self_signed,
    summary,
)
from softphone.security.identity import (
    DEFAULT_DAYS,
    identity_aor,
    import_pkcs12,
    new_identity,
)
from softphone.security.ledger import LedgerError
from softphone.security.safety import (
    SafetyNumber,
    local_half,
    qr_png,
    qr_text,
    safety_number,
)
from softphone.storage import atomic_write
from softphone.ua.secrets import SecretsError, check_keyring

__all__ = ["build_parser", "describe", "main"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _store(args: argparse.Namespace) -> IdentityStore:
    return IdentityStore(Path(args.dir) if args.dir else default_identity_dir())


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def describe(cert: x509.Certificate, *, now: dt.datetime) -> list[str]:
    """The lines ``cert show`` prints about ``cert``."""
    key = describe_key(cert)
    issuer = "self-signed" if is_self_signed(cert) else summary(cert.issuer)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    state = ""
    if now < start:
        state = "  (NOT YET VALID)"
    elif now > end:
        state = "  (EXPIRED)"
    lines = [
        f"Subject:     {cert.subject.rfc4514_string() or '(empty)'}",
        f"Issuer:      {issuer}",
    ]
    try:
        aor = identity_aor(cert)
    except SecurityError:
        aor = None
    lines += [
        f"Address:     {aor or '(none: no sip: subjectAltName URI)'}",
        f"Key:         {key.description}{'  (WEAK)' if key.weak else ''}",
        f"Valid:       {_when(start)} to {_when(end)}{state}",
        f"SHA-256:     {fingerprint_groups(cert)}",
    ]
    if aor is not None:
        lines.append(f"Your half of the safety number: {local_half(cert, aor)}")
    return lines


def _print_identity(cert: x509.Certificate, out: TextIO) -> None:
    for line in describe(cert, now=_now()):
        print(line, file=out)


def _cmd_new(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.exists() and not args.force:
        raise _exists(store)
    check_keyring()  # before the slow part: no point making a key that cannot be stored
    print("Generating an RSA-3072 key...", file=sys.stderr)
    material = new_identity(args.aor, now=_now(), days=args.days)
    store.save(material, replace=args.force)
    print(f"Created the identity of {material.aor} in {store.directory}")
    _print_identity(material.cert, sys.stdout)
    return 0


def _exists(store: IdentityStore) -> IdentityExistsError:
    try:
        aor: str | None = identity_aor(store.load_certificate())
    except (IdentityStoreError, SecurityError, OSError):
        aor = None
    return IdentityExistsError(store.directory, aor)


def _import_password(args: argparse.Namespace) -> bytes | None:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise IdentityStoreError(f"the environment variable {args.password_env} is not set")
        return value.encode("utf-8") or None
    if sys.stdin.isatty():
        return getpass.getpass(f"Password of {args.file}: ").encode("utf-8") or None
    return None


def _cmd_import(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.exists() and not args.force:
        raise _exists(store)
    data = Path(args.file).read_bytes()
    check_keyring()
    imported = import_pkcs12(data, _import_password(args), now=_now())
    store.save(imported, replace=args.force)
    print(f"Imported the identity of {imported.aor} into {store.directory}")
    for warning in imported.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _print_identity(imported.cert, sys.stdout)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    pem = store.export_certificate(with_chain=args.chain)
    if args.out in (None, "-"):
        sys.stdout.write(pem.decode("ascii"))
    else:
        atomic_write(args.out, pem, mode=0o644)
        print(f"Wrote the certificate to {args.out}", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    own = _store(args).load_certificate()
    _print_identity(own, sys.stdout)
    if not args.qr:
        return 0
    number, peer_aor = _safety_number_with(args, own)
    print(f"\nSafety number with {peer_aor}:")
    for line in number.lines():
        print(f"  {line}")
    print()
    sys.stdout.write(qr_text(number.qr_payload()))
    if args.png:
        atomic_write(args.png, qr_png(number.qr_payload()), mode=0o644)
        print(f"Wrote the QR code to {args.png}", file=sys.stderr)
    return 0


def _safety_number_with(
    args: argparse.Namespace, own: x509.Certificate
) -> tuple[SafetyNumber, str]:
    """The safety number between our identity and ``--with AOR`` / ``--peer-cert FILE``."""
    from softphone.contacts import default_ledger_path, load_ledger

    own_aor = identity_aor(own)
    if args.peer_cert:
        try:
            peer = x509.load_pem_x509_certificates(Path(args.peer_cert).read_bytes())[0]
        except ValueError as exc:
            raise SecurityError(f"{args.peer_cert} holds no readable PEM certificate") from exc
        peer_aor = args.peer_aor or identity_aor(peer)
    elif args.with_aor:
        ledger = load_ledger(Path(args.ledger) if args.ledger else default_ledger_path())
        contact = ledger.contact(args.with_aor)
        record = contact.current_record
        if record is None:
            raise LedgerError(f"no certificate known for {contact.aor}")
        peer, peer_aor = record.certificate, contact.aor
    else:
        raise SecurityError(
            "a safety number needs the other party: --with AOR (a contact in the trust "
            "ledger) or --peer-cert FILE"
        )
    return safety_number(own, own_aor, peer, peer_aor), peer_aor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone cert",
        description="Your identity: the certificate and key for TLS, sipsec and S/MIME.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        metavar="D",
        help=f"identity directory (default: {default_identity_dir()})",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    new = sub.add_parser(
        "new", parents=[common], help="create a self-signed identity (one RSA-3072 key)"
    )
    new.add_argument("--aor", required=True, help="your address, e.g. sip:alice@example.com")
    new.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    new.add_argument("--force", action="store_true", help="replace an existing identity")
    new.set_defaults(run=_cmd_new)

    imp = sub.add_parser("import", parents=[common], help="import a PKCS#12 file from a CA")
    imp.add_argument("file", metavar="FILE.p12")
    imp.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the PKCS#12 password from this environment variable (default: ask)",
    )
    imp.add_argument("--force", action="store_true", help="replace an existing identity")
    imp.set_defaults(run=_cmd_import)

    exp = sub.add_parser("export", parents=[common], help="write the public certificate (PEM)")
    exp.add_argument("--out", metavar="FILE", help="file to write (default: standard output)")
    exp.add_argument("--chain", action="store_true", help="append the CA certificates")
    exp.set_defaults(run=_cmd_export)

    show = sub.add_parser(
        "show", parents=[common], help="fingerprint and your half of the safety number"
    )
    show.add_argument(
        "--qr", action="store_true", help="the safety number with a contact, and its QR code"
    )
    peer = show.add_mutually_exclusive_group()
    peer.add_argument("--with", dest="with_aor", metavar="AOR", help="a contact in the ledger")
    peer.add_argument("--peer-cert", metavar="FILE", help="the other party's certificate (PEM)")
    show.add_argument("--peer-aor", metavar="AOR", help="their address (default: from --peer-cert)")
    show.add_argument("--ledger", metavar="FILE", help="trust ledger (default: the user's)")
    show.add_argument("--png", metavar="FILE", help="also write the QR code as a PNG image")
    show.set_defaults(run=_cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (IdentityStoreError, SecurityError, SecretsError, OSError) as exc:
        # LedgerError is a SecurityError: an unknown contact or an unreadable ledger.
        print(f"softphone cert {args.action}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
