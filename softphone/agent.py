"""``softphone agent``: the headless phone. Registers an account, places or answers a call,
and prints what happens.

    softphone agent --list-devices
    softphone agent --account alice.toml [--on-untrusted reject|ask|accept-once]
                    [--exit-after registered|call-ended] [--pin-store PATH]
                    [--call URI | --auto-answer] [--play WAV] [--record WAV]
                    [--hangup-after SECONDS] [--stats-interval SECONDS]
                    [--sipsec-policy accept|reject|ask] [--fallback-sips]
                    [--dtmf DIGITS [--dtmf-after SECONDS]] [--keying sdes|dtls-srtp]
                    [--hold-after SECONDS [--resume-after SECONDS]]
                    [--input-device SPEC] [--output-device SPEC]

Standard output carries one JSON object per line, each with ``"event"`` first (the events of
:mod:`softphone.ua.events`): ``trust_required`` (the report: identity, every problem with its
plain-words message, the certificate's fingerprint, the chain's subjects, ``changed``),
``registered`` (expires, the registrar's fingerprint, and here also the Digest ``algorithm``
and ``weak`` for MD5), ``registration_failed`` (with the reason), ``unregistered``,
``connection_lost``, ``connection_restored``; for calls ``call_state`` (``calling``,
``ringing``, ``established``, ``ended`` with the reason in words and the SIP status code),
``media_started`` (codec, ``encrypted``, ``srtp_suite``, ``keying``, the audio and signalling
protection in words) and ``media_statistics`` (the call's counters: packets and octets both
ways, loss, jitter, round-trip time, concealed frames, drops by reason; every
``--stats-interval`` seconds while the call is up, and once more with ``"final": true`` just
before its ``ended``). Prompts and logs go to standard error, so the output stays
machine-readable. Nothing printed ever holds a password, a Digest response or an SRTP key.

Calls: ``--call URI`` places one call once registered; ``--auto-answer`` answers incoming calls
(one at a time: another call while one is up gets 486 Busy). ``--play WAV`` is what the
other side hears, looped for the whole call (default: silence); ``--record WAV`` records what
we hear (48 kHz mono 16-bit; every call of the run, one after the other).
Sound card (PortAudio, :mod:`softphone.ua.sound`): ``--input-device SPEC`` is the microphone
and ``--output-device SPEC`` the speaker of every call (a device name or the part of one that
matches a single device, an index, or ``default``); they override the account's
``input_device``/``output_device`` (each flag its own direction), and ``--play`` and
``--record`` win over both.
``--list-devices`` prints one ``audio_device`` object per device (index, name, host API,
channels, defaults) and exits 0 (1 when PortAudio is missing). A device that does not exist is
a usage error (2, the message lists the devices there are); one that fails during a call ends
that call with the reason.
``--hangup-after SECONDS`` hangs up that long after a call is established.
``--dtmf DIGITS`` sends them as RFC 4733 telephone-events ``--dtmf-after`` seconds (default 1)
after the call is established; ``--hold-after SECONDS`` puts the other side on hold (RFC 3264
§8.4 re-INVITE) that long after it is established and ``--resume-after SECONDS`` takes it off
hold that long after the hold. ``--keying sdes|dtls-srtp`` overrides the account's ``keying``
(how our offers key SRTP). What happens is printed too: ``call_held`` (``by`` us or the peer,
``held``), ``dtmf_received`` (each digit the other side pressed), ``media_downgraded`` (the
other side turned encryption off and the policy let the call go on), ``smime_status`` (how
the SDP was protected, RFC 3261 §23); a failed DTMF or hold is said on standard error and the
call goes on.

End-to-end calls (draft-gurbani-sip-sipsec-01 §6): ``--call sipsec:bob@biloxi.test`` sends a
CONNECT, opens the nested TLS through the proxies and calls inside it; ``tunnel_state``
(``connecting``, ``tunnel-open``, ``verified``, ``failed`` with the reason, ``closed``) and
``peer_identity`` (the AOR the certificate names, its fingerprint, ``identity_state``, the
safety number, and ``ledger_state``: the contact in the trust ledger, issue 6) are printed
too. ``--fallback-sips`` is the consent to call the same address as
``sips:`` (encrypted to each server only) when the path does not do sipsec; without it the
reason says how to retry. ``--sipsec-policy`` overrides the account's ``sipsec_accept`` for
incoming tunnels (``ask`` puts the question on the terminal when standard input is one;
otherwise it declines and says why on standard error).

A certificate that is not trusted is answered by ``--on-untrusted``: ``reject`` (default: the
"Don't connect" button), ``ask`` (a y/n/always question on the terminal; the default answer is
no) or ``accept-once`` (for unattended test set-ups; never for a certificate that changed
since it was pinned: that needs a person).

Exit status: 0 once ``--exit-after registered`` is reached (the agent then unregisters and
leaves), or after SIGINT/SIGTERM (it hangs up and unregisters first); with ``--call`` (which
implies ``--exit-after call-ended``) or ``--exit-after call-ended``, once the first call ends:
0 when it was established and then hung up by either side, 1 otherwise (busy, declined, not
found, no audio, connection lost...; the ``call_state`` ``ended`` event says why: a call that
could not even be placed gets one too, with an empty ``call_id``); 1 when registration failed
and will not be retried (wrong password, 403, refused certificate...); 2 for usage errors (bad
options, an unreadable account or WAV file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import wave
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from softphone.cliparse import Parser, UsageError
from softphone.media.devices import AudioDeviceError, list_devices
from softphone.media.dtmf import DTMF_DIGITS
from softphone.media.rtp_session import MediaSession, MediaStatistics
from softphone.media.tone import FrameSource
from softphone.media.wav import WavReader, WavWriter
from softphone.security.certificates import fingerprint_hex
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.storage import default_pin_store_path
from softphone.ua.account import (
    Account,
    AccountError,
    MediaKeying,
    SipsecAccept,
    ensure_instance_id,
    load_account,
)
from softphone.ua.call import Call, CallError, CallPhase
from softphone.ua.events import CallState, Event, MediaStarted, RegistrationFailed
from softphone.ua.registration import RegistrationError
from softphone.ua.sipsec import IncomingTunnel, TunnelAnswerer
from softphone.ua.sound import AudioDevices, check_devices
from softphone.ua.trustgate import TrustPolicy
from softphone.ua.useragent import UserAgent

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("softphone.agent")

#: How a call that was established may end and still be a success (exit status 0).
NORMAL_ENDINGS = frozenset({"hung up", "the other side hung up"})
STATS_INTERVAL = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="softphone agent",
        description="Register a SIP account headlessly; one JSON event per line on stdout.",
    )
    parser.add_argument("--account", type=Path, help="the account file (TOML); required")
    parser.add_argument(
        "--on-untrusted",
        choices=[p.value for p in TrustPolicy],
        default=TrustPolicy.REJECT.value,
        help="what to do with a certificate that is not trusted (default: reject)",
    )
    parser.add_argument(
        "--exit-after",
        choices=["registered", "call-ended"],
        help="leave (unregistering first) once this is reached: registered, or the end of "
        "the first call (implied by --call)",
    )
    parser.add_argument(
        "--call",
        metavar="URI",
        help="once registered, call URI (sips:bob@example.test, or just bob) and leave when "
        "the call ends: exit 0 if it was established and hung up, 1 otherwise",
    )
    parser.add_argument(
        "--auto-answer",
        action="store_true",
        help="answer incoming calls at once (one at a time: 486 Busy while in a call)",
    )
    parser.add_argument(
        "--play",
        metavar="WAV",
        type=Path,
        help="what the other side hears, looped for the whole call (default: silence)",
    )
    parser.add_argument(
        "--record",
        metavar="WAV",
        type=Path,
        help="record what we hear to WAV (48 kHz mono 16-bit; every call, one after another)",
    )
    parser.add_argument(
        "--hangup-after",
        metavar="SECONDS",
        type=_positive,
        help="hang up a call this many seconds after it is established",
    )
    parser.add_argument(
        "--stats-interval",
        metavar="SECONDS",
        type=_not_negative,
        default=STATS_INTERVAL,
        help="print media_statistics this often during a call; 0: only the final one "
        f"(default: {STATS_INTERVAL:g})",
    )
    parser.add_argument(
        "--sipsec-policy",
        choices=[p.value for p in SipsecAccept],
        default=None,
        help="incoming end-to-end (sipsec) calls: accept, reject or ask (overrides the "
        "account's sipsec_accept; ask declines when nobody can answer)",
    )
    parser.add_argument(
        "--fallback-sips",
        action="store_true",
        help="if a sipsec: call cannot be made end to end because the path does not support "
        "it, call the same address as sips: (encrypted to each server only)",
    )
    parser.add_argument(
        "--dtmf",
        metavar="DIGITS",
        type=_dtmf_digits,
        help="send these DTMF digits (0-9 * # A-D, RFC 4733) once the call is established",
    )
    parser.add_argument(
        "--dtmf-after",
        metavar="SECONDS",
        type=_not_negative,
        default=1.0,
        help="seconds after the call is established to send --dtmf (default: 1)",
    )
    parser.add_argument(
        "--hold-after",
        metavar="SECONDS",
        type=_not_negative,
        help="put the other side on hold this many seconds after the call is established",
    )
    parser.add_argument(
        "--resume-after",
        metavar="SECONDS",
        type=_not_negative,
        help="take the other side off hold this many seconds after --hold-after put it on hold",
    )
    parser.add_argument(
        "--keying",
        choices=[k.value for k in MediaKeying],
        default=None,
        help="how our offers key SRTP: sdes or dtls-srtp (overrides the account's keying)",
    )
    parser.add_argument(
        "--pin-store",
        type=Path,
        default=None,
        help=f"the trusted-certificates file (default: {default_pin_store_path()})",
    )
    parser.add_argument(
        "--list-devices",
        action="store_true",
        help="print the sound-card devices (one audio_device JSON object each) and exit",
    )
    parser.add_argument(
        "--input-device",
        metavar="SPEC",
        help="the microphone for calls: a device name (or part of one), an index, or default "
        "(--play wins over it)",
    )
    parser.add_argument(
        "--output-device",
        metavar="SPEC",
        help="the speaker for calls: a device name (or part of one), an index, or default "
        "(--record wins over it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parser


def _positive(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _dtmf_digits(text: str) -> str:
    digits = text.strip().upper()
    if not digits or any(d not in DTMF_DIGITS for d in digits):
        raise argparse.ArgumentTypeError(f"DTMF digits are 0-9 * # A-D, not {text!r}")
    return digits


def _not_negative(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; returns the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"{parser.format_usage()}softphone agent: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.list_devices:
        return _list_devices(sys.stdout)
    problem = None
    if args.account is None:
        problem = "the following arguments are required: --account"
    elif args.call is not None and args.exit_after == "registered":
        problem = "--call cannot be used with --exit-after registered"
    elif args.resume_after is not None and args.hold_after is None:
        problem = "--resume-after needs --hold-after"
    if problem is not None:
        print(f"{parser.format_usage()}softphone agent: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        account = _load(args.account)
        if args.keying is not None:
            account = dataclasses.replace(account, keying=MediaKeying(args.keying))
    except AccountError as exc:
        print(f"softphone agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.play is not None:
            WavReader(args.play)  # read once now: a bad file is a usage error, not a call
        recorder = None
        if args.record is not None:
            args.record.open("wb").close()  # an OSError here, not inside wave (noisy __del__)
            recorder = _Recorder(WavWriter(args.record))
    except (OSError, EOFError, wave.Error) as exc:
        print(f"softphone agent: cannot use the WAV file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    devices = _audio_devices(args, account)
    if devices is not None:
        try:
            check_devices(devices)
        except AudioDeviceError as exc:
            where = ""
            if account.audio_devices is not None:
                where = (
                    " (the account's input_device/output_device, unless --input-device/"
                    "--output-device say otherwise)"
                )
            print(f"softphone agent: cannot use the sound card{where}: {exc}", file=sys.stderr)
            if recorder is not None:
                recorder.close()
            return EXIT_USAGE
    try:
        return asyncio.run(_run(args, account, recorder, devices))
    finally:
        if recorder is not None:
            recorder.close()


def _list_devices(out: TextIO) -> int:
    """``--list-devices``: one ``audio_device`` object per line."""
    try:
        found = list_devices()
    except AudioDeviceError as exc:
        print(f"softphone agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for device in found:
        line = {"event": "audio_device", **dataclasses.asdict(device)}
        print(json.dumps(line), file=out, flush=True)
    if not found:
        print("softphone agent: no audio device found", file=sys.stderr)
    return EXIT_OK


def _audio_devices(args: argparse.Namespace, account: Account | None = None) -> AudioDevices | None:
    """The sound-card specs of the calls: ``--input-device``/``--output-device``, else the
    account's devices (:attr:`Account.audio_devices`); ``--play``/``--record`` win over both."""
    wanted, played = (None, None) if account is None else account.audio_devices or (None, None)
    if args.input_device is not None:
        wanted = args.input_device
    if args.output_device is not None:
        played = args.output_device
    if args.play is not None:
        wanted = None
    if args.record is not None:
        played = None
    return None if wanted is None and played is None else (wanted, played)


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


class _Recorder:
    """``--record``: the WAV writer as every call's sink; writes after close are dropped (the
    media loop may play one last frame while the call is being torn down)."""

    def __init__(self, writer: WavWriter) -> None:
        self.writer = writer
        self.closed = False

    def write(self, pcm: bytes) -> None:
        if not self.closed:
            self.writer.write(pcm)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


def statistics_json(call_id: str, stats: MediaStatistics, *, final: bool) -> dict[str, object]:
    """The ``media_statistics`` event: counters only (no key ever is in MediaStatistics)."""
    data = dataclasses.asdict(stats)
    host, port = stats.remote_address
    data["remote_address"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    data["srtp_suite"] = data.pop("suite")
    for key in ("jitter_ms", "remote_jitter_ms", "rtt_ms", "jitter_delay_ms"):
        if isinstance(data[key], float):
            data[key] = round(data[key], 3)
    return {"event": "media_statistics", "call_id": call_id, "final": final, **data}


class _Calls:
    """The agent's calls: what they play and record, when they hang up, their statistics,
    and the exit status the first one leaves (``first``)."""

    def __init__(self, args: argparse.Namespace, out: _Printer, recorder: _Recorder | None) -> None:
        self.play: Path | None = args.play
        self.hangup_after: float | None = args.hangup_after
        self.dtmf: str | None = args.dtmf
        self.dtmf_after: float = args.dtmf_after
        self.hold_after: float | None = args.hold_after
        self.resume_after: float | None = args.resume_after
        self.stats_interval: float = args.stats_interval
        self.out = out
        self.recorder = recorder
        self.current: Call | None = None
        self.first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.sessions: dict[str, MediaSession] = {}
        self.established: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def source(self) -> FrameSource | None:
        return None if self.play is None else WavReader(self.play, loop=True)

    def busy(self) -> bool:
        return self.current is not None and self.current.phase is not CallPhase.ENDED

    def incoming(self, call: Call) -> None:
        """``on_incoming_call``: take it (auto-answer then answers it) or 486 when busy."""
        if self.busy():
            call.reject(486)
            return
        call.source, call.sink = self.source(), self.recorder
        self.take(call)

    def take(self, call: Call) -> None:
        self.current = call
        task = asyncio.ensure_future(self._supervise(call))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def before(self, event: Event) -> None:
        """Called before ``event`` is printed: the final statistics precede ``ended``."""
        if isinstance(event, CallState) and event.state == "ended":
            session = self.sessions.pop(event.call_id, None)
            if session is not None:
                self.out(statistics_json(event.call_id, session.statistics(), final=True))

    def after(self, event: Event) -> None:
        if isinstance(event, CallState) and event.state == "established":
            self.established.add(event.call_id)
        elif isinstance(event, MediaStarted):
            call = self.current
            if call is not None and call.call_id == event.call_id and call.media is not None:
                self.sessions[event.call_id] = call.media

    async def _supervise(self, call: Call) -> None:
        with contextlib.suppress(CallError):
            await call.wait_for(CallPhase.ESTABLISHED)
        if call.phase is CallPhase.ESTABLISHED:
            ticker = asyncio.ensure_future(self._tick(call)) if self.stats_interval else None
            for step in self._steps(call):
                task = asyncio.ensure_future(step)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            try:
                if self.hangup_after is not None:
                    await asyncio.wait({call.ended}, timeout=self.hangup_after)
                    if not call.ended.done():
                        with contextlib.suppress(CallError):
                            await call.hangup()
                await asyncio.shield(call.ended)
            finally:
                if ticker is not None:
                    ticker.cancel()
        await asyncio.shield(call.ended)
        normal = call.call_id in self.established and call.reason in NORMAL_ENDINGS
        if not self.first.done():
            self.first.set_result(EXIT_OK if normal else EXIT_FAILED)

    def _steps(self, call: Call) -> list[Coroutine[Any, Any, None]]:
        steps = []
        if self.dtmf is not None:
            steps.append(self._send_dtmf(call, self.dtmf))
        if self.hold_after is not None:
            steps.append(self._hold(call, self.hold_after, self.resume_after))
        return steps

    async def _send_dtmf(self, call: Call, digits: str) -> None:
        await asyncio.sleep(self.dtmf_after)
        if call.phase is CallPhase.ESTABLISHED:
            try:
                call.send_dtmf(digits)
            except CallError as exc:
                print(f"softphone agent: DTMF not sent: {exc.reason}", file=sys.stderr)

    async def _hold(self, call: Call, after: float, resume_after: float | None) -> None:
        await asyncio.sleep(after)
        if call.phase is not CallPhase.ESTABLISHED:
            return
        try:
            await call.hold()
            if resume_after is not None:
                await asyncio.sleep(resume_after)
                if call.phase is CallPhase.ESTABLISHED:
                    await call.resume()
        except CallError as exc:
            print(f"softphone agent: hold/resume failed: {exc.reason}", file=sys.stderr)

    async def _tick(self, call: Call) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            session = self.sessions.get(call.call_id)
            if session is not None and call.phase is CallPhase.ESTABLISHED:
                self.out(statistics_json(call.call_id, session.statistics(), final=False))

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


async def _run(
    args: argparse.Namespace,
    account: Account,
    recorder: _Recorder | None,
    devices: AudioDevices | None = None,
) -> int:
    out = _Printer(sys.stdout)
    stop = asyncio.Event()
    fatal = asyncio.Event()
    policy = TrustPolicy(args.on_untrusted)
    calls = _Calls(args, out, recorder)

    def on_event(event: Event) -> None:
        calls.before(event)
        out(event.to_json())
        calls.after(event)
        if isinstance(event, RegistrationFailed) and not event.retrying:
            fatal.set()

    ua = UserAgent(
        account,
        pin_store_path=args.pin_store,
        trust_policy=policy,
        answerer=_TerminalAsker(sys.stdin, sys.stderr) if policy is TrustPolicy.ASK else None,
        on_event=on_event,
        on_incoming_call=calls.incoming,
        auto_answer=args.auto_answer,
        sipsec_policy=args.sipsec_policy,
        tunnel_answerer=_tunnel_answerer(sys.stdin, sys.stderr),
        audio_devices=devices,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _drive(ua, args, stop, fatal, calls)
    finally:
        await ua.close()  # hangs up a call still up (its events are printed), unregisters
        calls.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _drive(
    ua: UserAgent,
    args: argparse.Namespace,
    stop: asyncio.Event,
    fatal: asyncio.Event,
    calls: _Calls,
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
        if args.call is not None:
            try:
                call = await ua.call(
                    args.call,
                    source=calls.source(),
                    sink=calls.recorder,
                    allow_sips_fallback=args.fallback_sips,
                )
            except CallError as exc:
                reason = exc.reason
                if getattr(exc, "fallback_ok", False) and not args.fallback_sips:
                    reason += " (with --fallback-sips the agent does that by itself)"
                ended = CallState(
                    call_id="",
                    direction="outgoing",
                    peer=args.call,
                    state="ended",
                    reason=reason,
                )
                calls.out(ended.to_json())
                return EXIT_FAILED
            calls.take(call)
        failing = asyncio.ensure_future(fatal.wait())
        waiting: set[asyncio.Future[Any]] = {stopping, failing}
        if args.call is not None or args.exit_after == "call-ended":
            waiting.add(calls.first)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        failing.cancel()
        if stop.is_set():
            return EXIT_OK
        if calls.first.done():
            return calls.first.result()
        return EXIT_FAILED if fatal.is_set() else EXIT_OK
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


def _tunnel_answerer(stdin: TextIO, stderr: TextIO) -> TunnelAnswerer:
    """``--sipsec-policy ask`` (or the account's ``sipsec_accept = "ask"``): the question on
    the terminal when stdin is one; otherwise no (nobody can answer) and say why."""

    async def answer(offer: IncomingTunnel) -> bool:
        who = offer.claimed_from or "someone"
        try:
            interactive = stdin.isatty()
        except (OSError, ValueError):
            interactive = False
        if not interactive:
            stderr.write(
                f"softphone agent: declined an end-to-end (sipsec) call from {who}: "
                "--sipsec-policy ask needs a terminal to ask on (standard input is not one); "
                "use --sipsec-policy accept to take such calls unattended\n"
            )
            stderr.flush()
            return False
        stderr.write(
            f"\nAn end-to-end (sipsec) call is coming in from {who} (via {offer.via}). "
            "Their certificate is checked next. Accept the tunnel? [y]es / [n]o "
            "(default: no): "
        )
        stderr.flush()
        line = await _read_line(stdin)
        return line.strip().lower() in ("y", "yes")

    return answer


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
