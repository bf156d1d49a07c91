"""``softphone contacts``: the trust ledger from the command line (issue 6 "Headless").

    softphone contacts list
    softphone contacts show AOR
    softphone contacts add AOR --cert FILE            (a certificate received by hand)
    softphone contacts verify AOR --fingerprint FP --means safety-number|qr
    softphone contacts verify AOR --safety-number "12345 67890 ..." [--dir D]
    softphone contacts accept-change AOR --fingerprint FP
    softphone contacts export [--out FILE]
    softphone contacts forget AOR [--yes]
    softphone contacts smime AOR off|sign|sign+encrypt|account

``smime`` sets the S/MIME protection of calls with one contact (issue 6; RFC 3261 §23.3):
our SDP to them goes out as set; ``account`` follows the account's ``smime`` setting again.
What we require of *their* bodies is the stricter of the account's and the contact's setting,
so ``off`` for a contact never weakens an account that requires S/MIME. An AOR not in the
ledger yet is added with no certificate (state "claimed"), so the setting can be made before
the first call.

Every command takes ``--ledger FILE`` (default ``<user data dir>/trust/contacts.json``) and
``--pins FILE`` (default the pin store beside it): marking a contact verified also pins its
certificate (``verified-safety-number``), so the next sipsec call to it is "verified" too.
States are UX.md's words: claimed, certificate, seen before, verified, changed. Exit status
0 on success, 1 on an error explained on stderr, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from softphone.contacts import (
    add_certificate,
    default_ledger_path,
    export_ledger,
    load_ledger,
    read_certificate_file,
    save_ledger,
    save_with_pins,
)
from softphone.security.certificates import SecurityError, fingerprint_groups, summary
from softphone.security.identity import identity_aor
from softphone.security.ledger import (
    ACCOUNT,
    Contact,
    ContactState,
    LedgerError,
    Means,
    TrustLedger,
    parse_fingerprint,
    parse_smime_preference,
)
from softphone.security.safety import safety_number
from softphone.security.smime import ProtectionMode
from softphone.storage import default_pin_store_path

__all__ = ["build_parser", "main"]

_SHORT_GROUPS = 4  # "AB12 CD34 EF56 7890": enough to tell certificates apart at a glance


class UsageError(Exception):
    """Arguments that parse but do not make sense together (exit status 2)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def _ledger_path(args: argparse.Namespace) -> Path:
    return Path(args.ledger) if args.ledger else default_ledger_path()


def _pins_path(args: argparse.Namespace) -> Path:
    return Path(args.pins) if args.pins else default_pin_store_path()


def _short(fingerprint: bytes | None) -> str:
    if fingerprint is None:
        return "-"
    return " ".join(fingerprint_groups(fingerprint).split()[:_SHORT_GROUPS])


def _state_words(contact: Contact) -> str:
    state = contact.state
    if state is ContactState.CHANGED:
        return "CHANGED (calls blocked until you answer)" if contact.blocked else "CHANGED"
    if state is ContactState.VERIFIED and contact.verified_by is not None:
        return f"verified ({contact.verified_by.value})"
    return state.value


def _smime_words(contact: Contact) -> str:
    if contact.smime is None:
        return "as the account (no setting of its own)"
    return contact.smime.value


def _cmd_list(args: argparse.Namespace) -> int:
    ledger = load_ledger(_ledger_path(args))
    if not len(ledger):
        print("No contacts yet: certificates are added as calls and S/MIME bodies bring them.")
        return 0
    width = max(len(c.aor) for c in ledger)
    for contact in ledger:
        print(f"{contact.aor:<{width}}  {_short(contact.current):<19}  {_state_words(contact)}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    contact = load_ledger(_ledger_path(args)).contact(args.aor)
    print(f"Contact:     {contact.aor}")
    print(f"State:       {_state_words(contact)}")
    print(f"S/MIME:      {_smime_words(contact)}")
    if not contact.certificates:
        print("\nNo certificate seen yet.")
    for record in contact.certificates:
        current = "current" if record.fingerprint == contact.current else "earlier"
        print(f"\nCertificate ({current}):")
        print(f"  SHA-256:     {fingerprint_groups(record.fingerprint)}")
        try:
            cert = record.certificate
            print(f"  Subject:     {summary(cert.subject) or '(empty)'}")
            print(
                f"  Valid:       {_when(cert.not_valid_before_utc)} to "
                f"{_when(cert.not_valid_after_utc)}"
            )
        except ValueError:
            print("  (the stored certificate cannot be read)")
        print(f"  First seen:  {_when(record.first_seen)}")
        print(f"  Last seen:   {_when(record.last_seen)} ({record.times_seen} times)")
        print(f"  Seen in:     {', '.join(sorted(v.value for v in record.seen_via))}")
        if record.verified_by is not None and record.verified_at is not None:
            print(f"  Verified:    by {record.verified_by.value}, {_when(record.verified_at)}")
    print("\nHistory:")
    for entry in contact.history:
        what = f"  {_when(entry.at)}  {entry.kind.value}"
        if entry.fingerprint is not None:
            what += f"  {_short(entry.fingerprint)}"
        if entry.detail:
            what += f"  ({entry.detail})"
        print(what)
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    cert = read_certificate_file(args.cert)
    path = _ledger_path(args)
    ledger = load_ledger(path)
    observation = add_certificate(ledger, args.aor, cert, _now())
    save_ledger(path, ledger)
    print(f"{observation.aor}: {observation.kind.value}, {_short(observation.fingerprint)}")
    if observation.kind.value == "changed":
        print(
            f"Warning: {observation.aor} had another certificate "
            f"({_short(observation.previous)}). Compare the safety number before trusting it.",
            file=sys.stderr,
        )
    return 0


def _save_verified(args: argparse.Namespace, ledger: TrustLedger, aor: str) -> None:
    save_with_pins(_ledger_path(args), ledger, _pins_path(args), aor, _now())


def _cmd_verify(args: argparse.Namespace) -> int:
    ledger = load_ledger(_ledger_path(args))
    contact = ledger.contact(args.aor)
    record = contact.current_record
    if record is None:
        raise LedgerError(f"no certificate known for {contact.aor}")
    if args.safety_number is not None:
        if args.fingerprint or args.means:
            raise UsageError("--safety-number cannot be combined with --fingerprint/--means")
        # Imported here: only this path needs the identity (list/show/export do not).
        from softphone.identity_store import (
            IdentityStore,
            IdentityStoreError,
            default_identity_dir,
        )

        own = IdentityStore(Path(args.dir) if args.dir else default_identity_dir())
        try:
            own_cert = own.load_certificate()
        except IdentityStoreError as exc:
            raise LedgerError(str(exc)) from exc
        expected = safety_number(own_cert, identity_aor(own_cert), record.certificate, contact.aor)
        typed = "".join(c for c in args.safety_number if not c.isspace())
        if not typed.isdigit() or len(typed) != len(expected.digits):
            raise UsageError(f"a safety number is {len(expected.digits)} digits")
        if typed != expected.digits:
            print(
                f"The safety number does NOT match the one computed for {contact.aor} and "
                "you. Someone may be between you: do not trust this contact. Nothing was "
                "marked verified.",
                file=sys.stderr,
            )
            return 1
        fingerprint, means = record.fingerprint, Means.SAFETY_NUMBER
    else:
        if not args.fingerprint or not args.means:
            raise UsageError("give --fingerprint FP and --means, or --safety-number DIGITS")
        fingerprint, means = parse_fingerprint(args.fingerprint), Means(args.means)
    ledger.mark_verified(contact.aor, fingerprint, means, _now())
    _save_verified(args, ledger, contact.aor)
    print(f"{contact.aor} is verified ({means.value}): {fingerprint_groups(fingerprint)}")
    return 0


def _cmd_accept_change(args: argparse.Namespace) -> int:
    ledger = load_ledger(_ledger_path(args))
    contact = ledger.accept_change(args.aor, parse_fingerprint(args.fingerprint), _now())
    _save_verified(args, ledger, contact.aor)
    print(
        f"{contact.aor}: the new certificate is accepted, not verified. Compare the safety "
        "number to verify it."
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    path = _ledger_path(args)
    ledger = load_ledger(path)
    out = None if args.out in (None, "-") else Path(args.out)
    data = export_ledger(ledger, path, out, _now())
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        print(f"Exported {len(ledger)} contacts to {out}", file=sys.stderr)
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    path = _ledger_path(args)
    ledger = load_ledger(path)
    contact = ledger.contact(args.aor)
    if not args.yes:
        print(
            f"Forget {contact.aor} and the {len(contact.certificates)} certificate(s) seen? "
            "A verified contact will have to be verified again. [y/N] ",
            end="",
            flush=True,
        )
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing forgotten.", file=sys.stderr)
            return 1
    ledger.forget(contact.aor)
    _save_verified(args, ledger, contact.aor)
    print(f"Forgot {contact.aor}.")
    return 0


def _cmd_smime(args: argparse.Namespace) -> int:
    path = _ledger_path(args)
    ledger = load_ledger(path)
    preference = parse_smime_preference(args.setting)
    known = args.aor in ledger
    contact = ledger.set_smime(args.aor, preference, _now())
    save_ledger(path, ledger)
    if not known:
        print(f"{contact.aor} added to the ledger (no certificate seen yet).", file=sys.stderr)
    print(f"{contact.aor}: S/MIME {_smime_words(contact)}")
    if preference is ProtectionMode.OFF:
        print(
            "Calls to this contact send plain SDP; an account that requires S/MIME still "
            "requires it of their messages.",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone contacts",
        description="The trust ledger: contacts, their certificates, and which you verified.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", metavar="FILE", help=f"default: {default_ledger_path()}")
    common.add_argument("--pins", metavar="FILE", help=f"default: {default_pin_store_path()}")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    sub.add_parser("list", parents=[common], help="every contact and its state").set_defaults(
        run=_cmd_list
    )
    show = sub.add_parser("show", parents=[common], help="certificates and history of a contact")
    show.add_argument("aor")
    show.set_defaults(run=_cmd_show)

    add = sub.add_parser("add", parents=[common], help="record a certificate received by hand")
    add.add_argument("aor")
    add.add_argument("--cert", required=True, metavar="FILE", help="their certificate (PEM)")
    add.set_defaults(run=_cmd_add)

    verify = sub.add_parser("verify", parents=[common], help="mark a contact verified")
    verify.add_argument("aor")
    verify.add_argument("--fingerprint", metavar="FP", help="SHA-256 of their certificate")
    verify.add_argument("--means", choices=[Means.SAFETY_NUMBER.value, Means.QR.value])
    verify.add_argument(
        "--safety-number", metavar="DIGITS", help="the 60 digits you compared (checked here)"
    )
    verify.add_argument("--dir", metavar="D", help="your identity directory (--safety-number)")
    verify.set_defaults(run=_cmd_verify)

    accept = sub.add_parser(
        "accept-change", parents=[common], help="go on with a contact's changed certificate"
    )
    accept.add_argument("aor")
    accept.add_argument("--fingerprint", required=True, metavar="FP", help="the new one")
    accept.set_defaults(run=_cmd_accept_change)

    export = sub.add_parser("export", parents=[common], help="the ledger as JSON, for an audit")
    export.add_argument("--out", metavar="FILE", help="file to write (default: standard output)")
    export.set_defaults(run=_cmd_export)

    forget = sub.add_parser("forget", parents=[common], help="remove a contact")
    forget.add_argument("aor")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget.set_defaults(run=_cmd_forget)

    smime = sub.add_parser(
        "smime", parents=[common], help="S/MIME for calls with a contact (or as the account)"
    )
    smime.add_argument("aor")
    smime.add_argument("setting", choices=[*(m.value for m in ProtectionMode), ACCOUNT])
    smime.set_defaults(run=_cmd_smime)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as exc:
        print(f"softphone contacts {args.action}: {exc}", file=sys.stderr)
        return 2
    except (LedgerError, SecurityError, OSError) as exc:
        print(f"softphone contacts {args.action}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
