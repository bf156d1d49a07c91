"""The ``softphone`` command: one entry point, one subcommand per job.

What a subcommand cannot do yet it says, both in ``--help`` and when run (``demo --gui``
exits with status 2 rather than pretending to work). ``gui`` is imported by name only when
asked for, so the engine never imports Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from softphone import __version__

# Subcommands with their own argument parser: everything after the name is theirs.
_DELEGATED: dict[str, tuple[str, str]] = {
    "demo": (
        "softphone.demo",
        "the sipsec demo: one call as sips: and as sipsec: on an embedded network, "
        "and what each proxy could read (GUI with a display, else --headless)",
    ),
    "proxy": ("softphone.server.cli", "registrar, proxy and sipsec relay over TLS with Digest"),
    "cert": ("softphone.cert_cli", "your identity: new, import, export, show"),
    "contacts": (
        "softphone.contacts_cli",
        "the trust ledger: list, show, verify, export, forget contacts",
    ),
    "gui": ("ui.app", "the desktop phone (PySide6): calls, security panel, contacts, history"),
    "agent": (
        "softphone.agent",
        "the headless phone: registers, calls (sips:, sipsec:), answers; prints JSON events",
    ),
    "doctor": (
        "softphone.doctor",
        "checks keyring, audio, trusted CAs and the registrar; says what is wrong",
    ),
}


def _delegate(name: str, argv: Sequence[str]) -> int:
    module = importlib.import_module(_DELEGATED[name][0])
    entry: Callable[[list[str]], int] = module.main
    return entry(list(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone",
        description="A SIP softphone whose security you can see.",
    )
    parser.add_argument("--version", action="version", version=f"softphone {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, (_module, what) in _DELEGATED.items():
        sub.add_parser(name, help=f"{what}; `softphone {name} --help` for its options")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
