"""``softphone doctor``: what stands between this machine and a working, secure phone.

Each check prints one verdict in plain words, ``OK`` or ``PROBLEM`` with what to do::

    OK       Password store: the system keyring (SecretService Keyring)
    PROBLEM  Registrar certificate: This may not be example.test's server. ...
             What to do: ...

The checks (``--only`` picks some):

``keyring``  the password store is a secure keyring, not a file (:mod:`softphone.ua.secrets`;
             ARCHITECTURE.md "secrets"); with ``--account``, the account's password is there;
``audio``    PortAudio (``sounddevice``) sees a microphone and a speaker;
``ca``       the system's trusted CAs can be read (:func:`softphone.ua.trustgate.system_anchors`);
``account``  (with ``--account FILE``) the account file loads; its registrar resolves by
             RFC 3263 (:func:`softphone.transport.locate.locate`); the first target answers
             on TCP or TLS; its certificate is evaluated as the phone would (RFC 5922 §7,
             :func:`softphone.security.trust.evaluate`, with the account's ``ca_file``, the
             system CAs and the pin store) and its SHA-256 fingerprint printed to compare.

The doctor never sends a REGISTER and never prints a password. Exit status: 0 when every
verdict is OK, 1 when one is a PROBLEM, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from cryptography import x509

from softphone.cliparse import Parser, UsageError
from softphone.security.certificates import Identity, fingerprint_groups
from softphone.security.pins import PinState, PinStoreError
from softphone.security.trust import Purpose, TrustReport, evaluate
from softphone.storage import default_pin_store_path, load_pin_store
from softphone.transport.locate import LocateError, ResolverConfigError, Target, locate
from softphone.transport.stream import TLSStreamError, open_tcp_connection, open_tls_connection
from softphone.transport.tls import TLSConfig
from softphone.ua.account import Account, AccountError, load_account
from softphone.ua.secrets import NoSecureKeyringError, SecretsError, get_secret
from softphone.ua.secrets import check_keyring as secure_keyring
from softphone.ua.trustgate import SYSTEM_CA_BUNDLE, load_anchors, system_anchors

__all__ = [
    "CHECKS",
    "Status",
    "Verdict",
    "amain",
    "build_parser",
    "check_account",
    "check_audio",
    "check_ca_store",
    "check_keyring",
    "check_registrar",
    "main",
]

CHECKS = ("keyring", "audio", "ca", "account")
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class Status(StrEnum):
    OK = "OK"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True)
class Verdict:
    """One check's answer: ``what`` says what was found, ``todo`` what to do about it."""

    check: str
    status: Status
    what: str
    todo: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def render(self) -> str:
        text = f"{self.status.value:<8} {self.check}: {self.what}"
        if self.todo:
            text += f"\n{'':<8} What to do: {self.todo}"
        return text


def _ok(check: str, what: str) -> Verdict:
    return Verdict(check, Status.OK, what)


def _problem(check: str, what: str, todo: str) -> Verdict:
    return Verdict(check, Status.PROBLEM, what, todo)


# --- keyring ----------------------------------------------------------------------------------


def check_keyring(
    account: Account | None = None, *, environ: Mapping[str, str] | None = None
) -> list[Verdict]:
    """The password store and, for ``account``, its password (never shown)."""
    verdicts: list[Verdict] = []
    try:
        backend = check_keyring_backend()
    except NoSecureKeyringError as exc:
        if account is not None and account.password_env is not None:
            verdicts.append(
                _ok(
                    "Password store",
                    f"no secure keyring ({exc.why}), but the account does not need one: "
                    f"it reads its password from ${account.password_env}",
                )
            )
        else:
            verdicts.append(
                _problem(
                    "Password store",
                    f"no secure keyring: {exc.why}. The phone will not keep passwords in a "
                    "plain file",
                    "install and unlock a keyring (GNOME Keyring, KeePassXC's Secret Service, "
                    "KWallet); for unattended use put password_env in the account file",
                )
            )
    else:
        verdicts.append(_ok("Password store", f"the system keyring ({backend})"))
    if account is not None:
        try:
            get_secret(account, environ=environ)
        except SecretsError as exc:
            if not (isinstance(exc, NoSecureKeyringError) and verdicts[0].ok):
                verdicts.append(
                    _problem(
                        "Password",
                        str(exc),
                        "store the password with the phone (it asks when you add the account)",
                    )
                )
        else:
            where = (
                f"the environment variable {account.password_env}"
                if account.password_env is not None
                else "the keyring"
            )
            verdicts.append(_ok("Password", f"found for {account.aor} in {where}"))
    return verdicts


def check_keyring_backend() -> str:
    """The secure backend's name, or :class:`NoSecureKeyringError`."""
    backend = secure_keyring()
    name = getattr(backend, "name", None)
    return str(name) if name else type(backend).__name__


# --- audio ------------------------------------------------------------------------------------


def check_audio() -> Verdict:
    """A microphone and a speaker through PortAudio (``sounddevice``), if installed."""
    check = "Audio devices"
    try:
        sounddevice = importlib.import_module("sounddevice")
    except ImportError:
        return _problem(
            check,
            "audio input/output is not installed (the Python package sounddevice is "
            "missing): calls connect but cannot use a microphone or a speaker",
            "pip install sounddevice; on Debian also apt-get install libportaudio2",
        )
    except OSError as exc:
        return _problem(
            check,
            f"the PortAudio library could not be loaded ({exc})",
            "on Debian: apt-get install libportaudio2",
        )
    try:
        devices = list(sounddevice.query_devices())
    except Exception as exc:  # noqa: BLE001  # PortAudio errors have no common base
        return _problem(check, f"PortAudio could not list the devices ({exc})", _NO_DEVICE_TODO)
    inputs = [d for d in devices if int(d.get("max_input_channels", 0)) > 0]
    outputs = [d for d in devices if int(d.get("max_output_channels", 0)) > 0]
    missing = [what for what, found in (("microphone", inputs), ("speaker", outputs)) if not found]
    if missing:
        return _problem(check, f"no {' and no '.join(missing)} found", _NO_DEVICE_TODO)
    return _ok(check, f"{len(inputs)} input and {len(outputs)} output device(s)")


_NO_DEVICE_TODO = (
    "plug in a headset, or start the sound server (PipeWire or PulseAudio) and check that "
    "your user may use it"
)


# --- system CAs -------------------------------------------------------------------------------


def check_ca_store(bundle: Path = SYSTEM_CA_BUNDLE) -> Verdict:
    """The system's trusted CAs, which vouch for providers with public certificates."""
    check = "Trusted CAs"
    anchors = system_anchors(bundle) if bundle.exists() else ()
    if not anchors:
        return _problem(
            check,
            f"the system's list of trusted certificate authorities ({bundle}) is missing or "
            "empty: no server certificate from a public CA can be checked, every one will "
            "look untrusted",
            "on Debian: apt-get install ca-certificates",
        )
    return _ok(check, f"{len(anchors)} certificate authorities in {bundle}")


# --- the account and its registrar ------------------------------------------------------------


def check_account(path: Path) -> tuple[Account | None, Verdict]:
    """Load the account file; the verdict says what is wrong with it."""
    try:
        account = load_account(path)
    except AccountError as exc:
        return None, _problem("Account file", str(exc), f"correct {path}")
    except OSError as exc:
        return None, _problem(
            "Account file", f"{path} cannot be read ({exc.strerror})", "check the path"
        )
    return account, _ok("Account file", f"{path}: {account.aor}")


async def check_registrar(
    account: Account,
    *,
    pin_store_path: Path,
    now: dt.datetime,
    timeout: float = 10.0,
    anchors: Sequence[x509.Certificate] | None = None,
) -> list[Verdict]:
    """Resolve, reach and (over TLS) judge the certificate of the account's registrar.

    ``anchors`` default to the account's ``ca_file`` plus the system CAs, as the phone uses.
    """
    # The same transport choice as the phone's (sips: means TLS only): one rule, one place.
    from softphone.ua.upkeep import resolver_config as _resolver_config

    uri = account.registrar_uri
    try:
        config = _resolver_config(account)
        targets = await asyncio.wait_for(locate(uri, resolver_config=config), timeout)
    except (LocateError, ResolverConfigError, TimeoutError) as exc:
        reason = str(exc) or "no answer in time"
        return [
            _problem(
                "Registrar address",
                f"{uri} could not be found ({reason})",
                "check registrar, resolve and nameserver in the account file, and this "
                "network's DNS",
            )
        ]
    shown = ", ".join(_target_text(t) for t in targets[:3])
    verdicts = [_ok("Registrar address", f"{uri} → {shown}")]

    failures: list[str] = []
    for target in targets:
        if target.transport == "UDP":
            failures.append(f"{_target_text(target)}: UDP is not checked (no connection)")
            continue
        try:
            chain = await _connect(target, timeout)
        except (OSError, TimeoutError, TLSStreamError) as exc:
            failures.append(f"{_target_text(target)}: {_why(exc)}")
            continue
        if chain is None:
            verdicts.append(
                _ok(
                    "Registrar connection",
                    f"{_target_text(target)} answers over TCP: call setup not encrypted",
                )
            )
            return verdicts
        verdicts.append(_ok("Registrar connection", f"{_target_text(target)} answers over TLS"))
        verdicts.append(
            _certificate_verdict(
                account, target, chain, pin_store_path=pin_store_path, now=now, anchors=anchors
            )
        )
        return verdicts
    verdicts.append(
        _problem(
            "Registrar connection",
            "no registrar address answered: " + "; ".join(failures),
            "check that the registrar is running and that no firewall blocks the port",
        )
    )
    return verdicts


def _target_text(target: Target) -> str:
    ip = f"[{target.host_ip}]" if ":" in target.host_ip else target.host_ip
    return f"{target.transport} {ip}:{target.port}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TLSStreamError):
        return f"TLS failed ({exc})"
    return str(exc) or type(exc).__name__


async def _connect(target: Target, timeout: float) -> tuple[x509.Certificate, ...] | None:
    """The registrar's certificate chain (TLS), or ``None`` for a plain TCP target."""
    if target.transport == "TCP":
        tcp = await open_tcp_connection(target.host_ip, target.port, timeout=timeout)
        tcp.close()
        return None
    config = TLSConfig.client(server_name=target.server_name)
    stream = await open_tls_connection(target.host_ip, target.port, config, timeout=timeout)
    try:
        return tuple(stream.peer_chain())
    finally:
        stream.close()


def _certificate_verdict(
    account: Account,
    target: Target,
    chain: tuple[x509.Certificate, ...],
    *,
    pin_store_path: Path,
    now: dt.datetime,
    anchors: Sequence[x509.Certificate] | None,
) -> Verdict:
    check = "Registrar certificate"
    try:
        pins = load_pin_store(pin_store_path)
    except (OSError, PinStoreError) as exc:
        return _problem(
            check,
            f"the trusted-certificates file {pin_store_path} cannot be read ({exc})",
            "restore it from a backup; the phone refuses to connect without it",
        )
    try:
        trusted = load_anchors(account.ca_file) if anchors is None else tuple(anchors)
    except (OSError, ValueError) as exc:
        return _problem(check, f"the account's ca_file cannot be read ({exc})", "correct ca_file")
    report = evaluate(
        chain,
        Identity.domain(target.server_name),
        now=now,
        anchors=trusted,
        pins=pins,
        purpose=Purpose.SERVER,
    )
    fingerprint = _fingerprint(report)
    if report.acceptable:
        if report.findings:  # pinned: accepted by the person earlier
            return _ok(
                check,
                f"you chose to always trust this certificate for {target.server_name} "
                f"(it has problems: {report.headline}); SHA-256 {fingerprint}",
            )
        issuer = report.certificates[0].issuer if report.certificates else "?"
        return _ok(check, f"{report.headline} Issued by {issuer}. SHA-256 {fingerprint}")
    what = " ".join(report.messages) + f" SHA-256 {fingerprint}"
    if report.changed:
        todo = (
            "this is not the certificate you trusted before: do not connect until your "
            "provider confirms the new fingerprint"
        )
    elif report.overridable:
        todo = (
            "if your provider confirms this fingerprint, choose 'Always trust' when the phone "
            "asks, or put their CA in ca_file; otherwise don't connect"
        )
    else:
        todo = "don't connect: this certificate cannot be accepted"
    if report.pin_state is PinState.NONE and not report.anchored and account.ca_file is None:
        todo += " (the account names no ca_file)"
    return _problem(check, what, todo)


def _fingerprint(report: TrustReport) -> str:
    digest = report.fingerprint
    return fingerprint_groups(digest) if digest is not None else "(no certificate)"


# --- the command ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="softphone doctor",
        description="Check the password store, audio, trusted CAs and (with --account) the "
        "registrar; say in plain words what is wrong. Exit 0: all OK, 1: a problem.",
    )
    parser.add_argument("--account", type=Path, metavar="FILE", help="the account file (TOML)")
    parser.add_argument(
        "--pin-store",
        type=Path,
        metavar="FILE",
        default=None,
        help=f"the trusted-certificates file (default: {default_pin_store_path()})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=CHECKS,
        metavar="CHECK",
        help=f"run only this check (repeatable): {', '.join(CHECKS)}",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for DNS and each connection"
    )
    return parser


async def amain(argv: Sequence[str], *, out: TextIO | None = None) -> int:
    """Run the doctor inside a running event loop (tests); :func:`main` for the command."""
    stream = sys.stdout if out is None else out
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except UsageError as exc:
        print(f"{parser.format_usage()}softphone doctor: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    wanted = set(args.only or CHECKS)
    if "account" in wanted and args.only and args.account is None:
        print("softphone doctor: error: --only account needs --account FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout <= 0:
        print("softphone doctor: error: --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE

    verdicts: list[Verdict] = []

    def say(*found: Verdict) -> None:
        for verdict in found:
            verdicts.append(verdict)
            print(verdict.render(), file=stream, flush=True)

    account: Account | None = None
    if args.account is not None and "account" in wanted:
        account, verdict = check_account(args.account)
        say(verdict)
    if "keyring" in wanted:
        say(*check_keyring(account))
    if "audio" in wanted:
        say(check_audio())
    if "ca" in wanted:
        say(check_ca_store())
    if account is not None:
        say(
            *await check_registrar(
                account,
                pin_store_path=args.pin_store or default_pin_store_path(),
                now=dt.datetime.now(dt.UTC),
                timeout=args.timeout,
            )
        )
    problems = sum(not v.ok for v in verdicts)
    summary = "Everything checked is OK." if not problems else f"{problems} problem(s) found."
    print(summary, file=stream)
    return EXIT_OK if not problems else EXIT_PROBLEM


def main(argv: Sequence[str] | None = None) -> int:
    """``softphone doctor``; returns the exit status."""
    return asyncio.run(amain(list(sys.argv[1:] if argv is None else argv)))
