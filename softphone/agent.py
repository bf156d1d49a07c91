"""``softphone agent``: the headless phone. Registers an account and prints what happens.

    softphone agent --account alice.toml [--on-untrusted reject|ask|accept-once]
                    [--exit-after registered] [--pin-store PATH]

Standard output carries one JSON object per line, each with ``"event"`` first (the events of
:mod:`softphone.ua.events`): ``trust_required`` (the report: identity, every problem with its
plain-words message, the certificate's fingerprint, the chain's subjects, ``changed``),
``registered`` (expires, the registrar's fingerprint, and here also the Digest ``algorithm``
and ``weak`` for MD5), ``registration_failed`` (with the reason), ``unregistered``,
``connection_lost``, ``connection_restored``. Prompts and logs go to standard error, so the
output stays machine-readable. Nothing printed ever holds a password or a Digest response.

A certificate that is not trusted is answered by ``--on-untrusted``: ``reject`` (default: the
"Don't connect" button), ``ask`` (a y/n/always question on the terminal; the default answer is
no) or ``accept-once`` (for unattended test set-ups; never for a certificate that changed
since it was pinned: that needs a person).

Exit status: 0 once ``--exit-after registered`` is reached (the agent then unregisters and
leaves), or after SIGINT/SIGTERM (it unregisters first); 1 when registration failed and will
not be retried (wrong password, 403, refused certificate...); 2 for usage errors (bad options,
an unreadable account file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from softphone.security.certificates import fingerprint_hex
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.storage import default_pin_store_path
from softphone.ua.account import Account, AccountError, ensure_instance_id, load_account
from softphone.ua.events import Event, RegistrationFailed
from softphone.ua.registration import RegistrationError
from softphone.ua.trustgate import TrustPolicy
from softphone.ua.useragent import UserAgent

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("softphone.agent")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raise, don't exit
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="softphone agent",
        description="Register a SIP account headlessly; one JSON event per line on stdout.",
    )
    parser.add_argument("--account", required=True, type=Path, help="the account file (TOML)")
    parser.add_argument(
        "--on-untrusted",
        choices=[p.value for p in TrustPolicy],
        default=TrustPolicy.REJECT.value,
        help="what to do with a certificate that is not trusted (default: reject)",
    )
    parser.add_argument(
        "--exit-after",
        choices=["registered"],
        help="leave (unregistering first) once this is reached",
    )
    parser.add_argument(
        "--pin-store",
        type=Path,
        default=None,
        help=f"the trusted-certificates file (default: {default_pin_store_path()})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; returns the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as exc:
        print(f"{parser.format_usage()}softphone agent: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        account = _load(args.account)
    except AccountError as exc:
        print(f"softphone agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run(args, account))


def _load(path: Path) -> Account:
    account = load_account(path)
    if account.outbound and account.instance_id is None:
        # RFC 5626 §4.1: the instance ID must survive restarts, so it is written to the file.
        try:
            account = ensure_instance_id(path)
        except OSError as exc:
            log.warning("cannot save an instance_id in %s (%s): using one for this run", path, exc)
    return account


class _Printer:
    """One JSON object per line, flushed at once (a pipe reader sees each event as it happens)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, data: Mapping[str, object]) -> None:
        self.stream.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stream.flush()


async def _run(args: argparse.Namespace, account: Account) -> int:
    out = _Printer(sys.stdout)
    stop = asyncio.Event()
    fatal = asyncio.Event()
    policy = TrustPolicy(args.on_untrusted)

    def on_event(event: Event) -> None:
        out(event.to_json())
        if isinstance(event, RegistrationFailed) and not event.retrying:
            fatal.set()

    ua = UserAgent(
        account,
        pin_store_path=args.pin_store,
        trust_policy=policy,
        answerer=_TerminalAsker(sys.stdin, sys.stderr) if policy is TrustPolicy.ASK else None,
        on_event=on_event,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _drive(ua, args, stop, fatal)
    finally:
        await ua.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _drive(
    ua: UserAgent, args: argparse.Namespace, stop: asyncio.Event, fatal: asyncio.Event
) -> int:
    registering = asyncio.ensure_future(ua.register())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({registering, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not registering.done():
            registering.cancel()  # a signal while connecting or asking: leave now
            with contextlib.suppress(asyncio.CancelledError, RegistrationError):
                await registering
            return EXIT_OK
        try:
            registering.result()
        except RegistrationError:
            return EXIT_FAILED
        if args.exit_after == "registered":
            return EXIT_OK
        failing = asyncio.ensure_future(fatal.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        failing.cancel()
        return EXIT_FAILED if fatal.is_set() and not stop.is_set() else EXIT_OK
    finally:
        stopping.cancel()


class _TerminalAsker:
    """``--on-untrusted ask``: the question on stderr, the answer from stdin (y/n/always).

    stdin is read by a daemon thread, so a question nobody answers never keeps the process
    alive after a signal. Anything but yes/always is no (UX.md: "Don't connect" is the
    default). For a *changed* certificate "always" must be typed in full: the details are
    printed first, so the person has seen them (UX.md: no "always" before the details).
    """

    def __init__(self, stdin: TextIO, stderr: TextIO) -> None:
        self.stdin = stdin
        self.stderr = stderr

    async def __call__(self, required: TrustDecisionRequired) -> TrustDecision:
        self.stderr.write(_describe(required))
        self.stderr.flush()
        line = await _read_line(self.stdin)
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return TrustDecision.ACCEPT_ONCE
        if answer == "always" or (answer == "a" and not required.loud):
            return TrustDecision.ALWAYS_TRUST
        return TrustDecision.REJECT


def _describe(required: TrustDecisionRequired) -> str:
    report = required.report
    lines = [""]
    if required.loud:
        lines.append("!!! WARNING: THE CERTIFICATE CHANGED SINCE YOU CHOSE TO TRUST IT !!!")
    lines.append(report.headline)
    lines += [f"  - {message}" for message in report.messages[1:]]
    for cert in report.certificates:
        lines.append(f"  certificate {cert.index}: {cert.subject} (issued by {cert.issuer})")
    if report.fingerprint is not None:
        lines.append(f"  SHA-256 fingerprint: {fingerprint_hex(report.fingerprint)}")
    who = report.identity.value
    always = "type 'always'" if required.loud else "[a]lways"
    lines.append(
        f"Waiting: {required.waiting_for}. Connect to {who}? "
        f"[y]es this time / [n]o / {always} trust this certificate for {who} (default: no): "
    )
    return "\n".join(lines)


async def _read_line(stream: TextIO) -> str:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        try:
            line = stream.readline()
        except (OSError, ValueError):
            line = ""
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="agent-stdin", daemon=True).start()
    return await future


if __name__ == "__main__":
    sys.exit(main())
