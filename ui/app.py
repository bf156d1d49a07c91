"""``softphone gui [--account FILE] [URI]``: the QApplication, the qasync loop and the phone.

ARCHITECTURE.md: qasync runs asyncio on the Qt thread (PySide6.QtAsyncio lacks
create_connection/start_tls), so the engine and the widgets share one thread and one loop.
:class:`Phone` is the window, the bridge and the user agents together; :func:`main` builds it
inside the loop and runs until the window closes, then closes the user agents (unregistering).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.ua import (
    Account,
    AccountError,
    CallHistory,
    ensure_instance_id,
    hand_over_the_gil_promptly,
    load_account,
)

if TYPE_CHECKING:  # imported with the first account, after the window shows (cold start)
    from softphone.ua import UserAgent

__all__ = ["Phone", "build_parser", "desktop_account", "main"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raise, don't exit
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="softphone gui", description="The desktop phone.")
    parser.add_argument(
        "--account", type=Path, metavar="FILE", help="the account file (TOML) to register"
    )
    parser.add_argument(
        "--pin-store",
        type=Path,
        default=None,
        help="the trusted-certificates file (default: the one the agent uses)",
    )
    parser.add_argument(
        "--history",
        type=Path,
        default=None,
        metavar="FILE",
        help="the call history file (default: history.json in the user data directory)",
    )
    parser.add_argument(
        "--no-single-instance",
        action="store_true",
        help="do not hand the URI to a running phone, and do not listen for other launches",
    )
    parser.add_argument(
        "uri",
        nargs="?",
        help="a sip:, sips:, sipsec: or tel: URI to open the dialer with (a running phone "
        "gets it instead)",
    )
    parser.add_argument(
        "--exit-after-show",
        action="store_true",
        help="exit with status 0 as soon as the main window is shown (a smoke test for "
        "packaged builds: Qt, its platform plugin and the window all work)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parser


class Phone:
    """The main window, its bridge, and one user agent per account (Qt must be running)."""

    def __init__(self, *, history_path: Path | None = None) -> None:
        """``history_path``: the call history file (default: the user data directory)."""
        from ui.bridge import EngineBridge
        from ui.calls import CallManager
        from ui.main_window import MainWindow
        from ui.tray import Tray

        # Worker threads run Python beside this loop from the first call on (safety numbers,
        # QR codes): at Python's 5 ms switch interval each hand-back of the GIL can cost the
        # loop 5 ms (issue 7: the loop never stalls 20 ms).
        hand_over_the_gil_promptly()
        self.bridge = EngineBridge()
        self.window = MainWindow(self.bridge)
        self.tray = Tray.create(self.window)
        self.calls = CallManager(
            self.bridge,
            self.window,
            history=CallHistory.load(history_path, background=True),  # fsync off the loop
            notify=None if self.tray is None else self.tray.notify,
        )
        self.user_agents: list[UserAgent] = []
        #: The account file of the first account (for the settings dialog), if any.
        self.account_path: Path | None = None
        self.closed = asyncio.Event()
        self.window.closed.connect(self.closed.set)
        self.window.settings_requested.connect(self.open_settings)

    def open_settings(self) -> None:
        """The settings dialog for the first account (non-modal: asyncio keeps running)."""
        from PySide6.QtCore import Qt

        from ui.settings import SettingsDialog

        if not self.user_agents:
            self.window.statusBar().showMessage(
                "No account to set up: start with softphone gui --account FILE"
            )
            return
        ua = self.user_agents[0]
        dialog = SettingsDialog(ua.account, self.account_path, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda saved, ua=ua: self.devices_saved(ua, saved))
        dialog.show()

    @staticmethod
    def devices_saved(ua: UserAgent, saved: Account) -> None:
        """The sound devices saved in Settings are the next call's (a call in progress keeps
        its own). Only those two fields change under the running UA: the rest of a saved
        account (registrar, transport…) takes effect at the next start, as Settings says."""
        ua.account = dataclasses.replace(
            ua.account, input_device=saved.input_device, output_device=saved.output_device
        )

    def add_account(self, account: Account, **options: Any) -> UserAgent:
        """Show ``account`` and start registering it; ``options`` go to the UserAgent."""
        self.window.add_account(account.aor)
        ua = self.bridge.user_agent(account, **options)
        self.user_agents.append(ua)
        self.bridge.start(ua)
        # The engine's modules, Qt's wrappers and the windows (~95,000 objects) live as long
        # as the phone: out of the cyclic collector's scans from now on, so that a full
        # collection during a call walks only what the call made (35 ms → a few here).
        gc.freeze()
        return ua

    def open_uri(self, uri: str) -> None:
        """Open the dialer with ``uri`` (from the command line or another launch)."""
        self.window.set_dial_text(uri)
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    async def close(self) -> None:
        """Stop registering, unregister and close every user agent, then the window."""
        await self.bridge.stop()
        await asyncio.gather(*(ua.close() for ua in self.user_agents), return_exceptions=True)
        self.calls.close_all()
        if self.calls.history is not None:  # the last call's entry is on disk before we go
            await asyncio.to_thread(self.calls.history.flush, 5.0)
        if self.tray is not None:
            self.tray.hide()
        self.window.close()


async def run(
    account: Account | None,
    pin_store: Path | None,
    *,
    uri: str | None = None,
    history: Path | None = None,
    single_instance: bool = True,
    account_path: Path | None = None,
    exit_after_show: bool = False,
) -> int:
    """Show the phone, register ``account`` (if any), run until the window is closed.
    ``uri`` opens the dialer with it; other launches hand theirs over (single instance).
    ``exit_after_show``: return as soon as the window is exposed (packaging smoke test)."""
    from ui.single_instance import InstanceServer

    phone = Phone(history_path=history)
    phone.window.show()
    if exit_after_show:
        await _shown(phone.window)
        print("softphone gui: the main window was shown", file=sys.stderr)
        await phone.close()
        return EXIT_OK
    # The window first, the engine after (issue 7: a visible window within 1 s): the account's
    # UserAgent (media, aiortc, S/MIME: the engine's heavy imports) is made once Qt has shown
    # the window, or after 2 s if the platform never says so.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_shown(phone.window), 2.0)
    server = None
    if single_instance:
        server = InstanceServer(parent=phone.window)
        server.uri_received.connect(phone.open_uri)
        server.listen()
    if uri is not None:
        phone.open_uri(uri)
    if account is not None:
        phone.account_path = account_path
        phone.add_account(desktop_account(account), pin_store_path=pin_store)
    try:
        await phone.closed.wait()
    finally:
        if server is not None:
            server.close()
        await phone.close()
    return EXIT_OK


def desktop_account(account: Account) -> Account:
    """The account as the desktop phone runs it: with the system's default microphone and
    speaker when the file names none (the headless agent and the tests use no sound card
    unless told; a person at a desktop expects to hear the call)."""
    if account.audio_devices is not None:
        return account
    return dataclasses.replace(account, input_device="default", output_device="default")


async def _shown(window: Any) -> None:
    """Wait until Qt has mapped ``window`` (``isVisible`` and a window handle exposed)."""
    for _ in range(600):  # bounded: 30 s, then the caller reports what it has
        handle = window.windowHandle()
        if window.isVisible() and handle is not None and handle.isExposed():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the main window was never shown")


def _load(path: Path) -> Account:
    account = load_account(path)
    if account.outbound and account.instance_id is None:
        # RFC 5626 §4.1: the instance ID must survive restarts, so it is written to the file.
        try:
            account = ensure_instance_id(path)
        except OSError as exc:
            log.warning("cannot save an instance_id in %s (%s): using one for this run", path, exc)
    return account


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GUI; returns the exit status (2: bad arguments or account file)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as exc:
        print(f"{parser.format_usage()}softphone gui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    account = None
    if args.account is not None:
        try:
            account = _load(args.account)
        except AccountError as exc:
            print(f"softphone gui: {exc}", file=sys.stderr)
            return EXIT_USAGE

    from ui.single_instance import acceptable_uri

    if args.uri is not None and not acceptable_uri(args.uri):
        print(
            f"softphone gui: {args.uri!r} is not a sip:, sips:, sipsec: or tel: URI",
            file=sys.stderr,
        )
        return EXIT_USAGE

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    if args.uri is not None and not args.no_single_instance:
        from ui.single_instance import hand_off

        if hand_off(args.uri):
            print(f"softphone gui: handed {args.uri} to the running phone", file=sys.stderr)
            return EXIT_OK
    app.setApplicationName("Softphone")
    app.setApplicationDisplayName("Softphone")
    # The loop ends when run() returns (after unregistering), not when Qt sees no window.
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return int(
            loop.run_until_complete(
                run(
                    account,
                    args.pin_store,
                    uri=args.uri,
                    history=args.history,
                    single_instance=not args.no_single_instance,
                    account_path=args.account,
                    exit_after_show=args.exit_after_show,
                )
            )
        )
    finally:
        loop.close()
        asyncio.set_event_loop(None)
