"""The PyInstaller entry point: the ``softphone`` command, frozen (see softphone.spec)."""

import sys

from softphone.cli import main

if __name__ == "__main__":
    sys.exit(main())
