"""The trust dialog, for the screenshot test: each variant, with its details closed and open.

``python -m tests.ui.trust_screens OUTDIR SUFFIX`` saves ``trust-dialog<SUFFIX>.png`` (a
self-signed certificate for the wrong name: several problems), ``trust-dialog-details``
(a certificate from a trusted CA for the wrong name, its chain opened), ``trust-dialog-changed``
(the loud variant: a different certificate from the pinned one, no "Always trust" yet) and
``trust-dialog-changed-details`` (the same with its details opened, "Always trust" offered).
The reports are the engine's own (:func:`softphone.security.trust.evaluate` on certificates
from :mod:`tests.transport.certs`). Run with ``QT_SCALE_FACTOR=2`` for the 200% shots.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DOMAIN = "example.test"

#: Every screen :func:`screens` makes, in order.
NAMES = (
    "trust-dialog",
    "trust-dialog-details",
    "trust-dialog-changed",
    "trust-dialog-changed-details",
)


def questions() -> dict[str, Any]:
    """name -> a ``TrustDecisionRequired`` for ``example.test`` (as ``tests/ui/conftest.py``)."""
    from softphone.security.certificates import Identity, fingerprint_sha256
    from softphone.security.pins import Pin, PinReason, PinStore
    from softphone.security.trust import TrustDecisionRequired, evaluate
    from tests.transport import certs

    now = dt.datetime.now(dt.UTC)
    ca = certs.make_ca("Softphone Test CA")
    pins = PinStore()
    pinned = certs.issue(ca, DOMAIN)
    pins.add(
        Identity.domain(DOMAIN),
        Pin(fingerprint_sha256(pinned.cert), now, PinReason.ALWAYS_TRUST, DOMAIN),
    )

    def ask(chain: Any, with_pins: PinStore | None = None) -> TrustDecisionRequired:
        report = evaluate(
            chain, Identity.domain(DOMAIN), now=now, anchors=(ca.cert,), pins=with_pins
        )
        return TrustDecisionRequired(report, f"registration to {DOMAIN}")

    return {
        "self_signed_wrong_name": ask(certs.self_signed("wrong.test").chain),
        "wrong_name": ask(certs.issue(ca, "wrong.test").chain),
        "changed": ask(certs.self_signed(DOMAIN).chain, pins),
    }


def screens() -> dict[str, Any]:
    """name -> a trust dialog ready to be shot."""
    from ui.presenters import TrustDialogModel
    from ui.trust_dialog import TrustDialog

    asked = questions()

    def dialog(which: str, details: bool) -> TrustDialog:
        made = TrustDialog(TrustDialogModel.from_required(asked[which]))
        made.details_button.setChecked(details)
        return made

    return {
        "trust-dialog": dialog("self_signed_wrong_name", False),
        "trust-dialog-details": dialog("wrong_name", True),
        "trust-dialog-changed": dialog("changed", False),
        "trust-dialog-changed-details": dialog("changed", True),
    }


def build(out: Path, suffix: str) -> list[Path]:
    """Build each screen, save it, return the files."""
    from PySide6.QtWidgets import QApplication

    from tests.ui.shots import save_screens

    QApplication.instance() or QApplication(sys.argv[:1])  # before any widget is built

    def dispose(widget: Any) -> None:
        widget.dismiss()
        widget.deleteLater()  # now, while the QApplication exists (not at exit)

    return save_screens(screens(), out, suffix, done=dispose)


if __name__ == "__main__":
    for done in build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""):
        print(done)
