"""An ``argparse`` parser that raises instead of exiting, for subcommands that must report a
usage error their own way (a JSON line, exit status 2) and for tests that call ``main()``."""

from __future__ import annotations

import argparse

__all__ = ["Parser", "UsageError"]


class UsageError(Exception):
    """A bad command line; the message is argparse's."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raise, don't exit
        raise UsageError(message)
