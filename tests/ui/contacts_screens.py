"""The contacts view with its S/MIME setting and its ledger actions, for the screenshot test.

``python -m tests.ui.contacts_screens OUTDIR SUFFIX`` saves ``contacts-smime<SUFFIX>.png``
(a contact set to "Sign and encrypt", saved to a real ledger file),
``contacts-smime-error<SUFFIX>.png`` (a save that failed: the ledger file is unreadable),
``contacts-verify`` (a contact with its safety number and "We compared the safety number"),
``contacts-changed`` (a changed contact: the red frame with "Accept the new certificate…",
after a declined confirmation), ``contacts-accept-change`` (that loud confirmation),
``contacts-added-warning`` (a certificate added by hand that changed a verified contact) and
``contacts-export-error`` (an export that failed, in words). Run with ``QT_SCALE_FACTOR=2``
for the 200% shots.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

BOB = "sip:bob@biloxi.test"
CAROL = "sip:carol@chicago.test"
DAVE = "sip:dave@example.test"

#: Every screen :func:`screens` makes (the screenshot test checks each one).
NAMES = (
    "contacts-smime",
    "contacts-smime-error",
    "contacts-verify",
    "contacts-changed",
    "contacts-accept-change",
    "contacts-added-warning",
    "contacts-export-error",
)


def screens(workdir: Path) -> dict[str, Any]:
    """name -> a contacts view ready to be shot (no event loop runs: all is made at once)."""
    from softphone.contacts import save_ledger
    from tests.ui.screens import sample_ledger
    from ui.contacts_presenters import smime_index
    from ui.contacts_view import ContactsView

    ledger, own = sample_ledger()
    saved = workdir / "contacts.json"
    save_ledger(saved, ledger)
    view = ContactsView()
    view.show_ledger(ledger, own, "", saved)
    view.select(BOB)
    view.smime.activated.emit(3)  # "Sign and encrypt", as a person would choose it
    view.resize(1000, 720)

    broken = workdir / "broken.json"
    save_ledger(broken, ledger)
    failing = ContactsView()
    failing.show_ledger(ledger, own, "", broken)
    failing.select(BOB)
    broken.write_bytes(b"not a ledger")  # another program broke it meanwhile
    failing.smime.activated.emit(smime_index(None) + 2)  # "Sign"
    failing.resize(1000, 720)
    shots: dict[str, Any] = {"contacts-smime": view, "contacts-smime-error": failing}
    shots.update(_action_screens(workdir))
    assert tuple(shots) == NAMES
    return shots


def _action_screens(workdir: Path) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    from softphone.contacts import save_ledger
    from tests.transport import certs
    from tests.ui.screens import sample_ledger
    from ui.contacts_presenters import accept_change_words
    from ui.contacts_view import AcceptChangeDialog, ContactsView

    def view_of(name: str, select: str) -> ContactsView:
        ledger, own = sample_ledger()
        path = workdir / f"{name}.json"
        save_ledger(path, ledger)
        view = ContactsView()
        view.show_ledger(ledger, own, "", path, pins_path=workdir / f"{name}-pins.json")
        view.select(select)
        view.resize(1000, 720)
        return view

    verify = view_of("verify", CAROL)
    changed = view_of("changed", DAVE)
    changed.confirm_accept_change = lambda words: False  # the person chose "Not now"
    changed.accept_button.click()
    assert changed.details is not None
    dialog = AcceptChangeDialog(accept_change_words(changed.details))

    added = view_of("added", BOB)
    pem = workdir / "bob-new.pem"
    new_bob = certs.self_signed("bob@biloxi.test").cert
    pem.write_bytes(new_bob.public_bytes(serialization.Encoding.PEM))
    added.ask_certificate_file = lambda: pem
    added.ask_contact_aor = lambda suggested: suggested
    added.add_button.click()

    exported = view_of("exported", BOB)
    # A folder that is a file (the PEM above): the export cannot be written.
    exported.ask_export_path = lambda: pem / "contacts-export.json"
    exported.export_button.click()
    return {
        "contacts-verify": verify,
        "contacts-changed": changed,
        "contacts-accept-change": dialog,
        "contacts-added-warning": added,
        "contacts-export-error": exported,
    }


def build(out: Path, suffix: str) -> list[Path]:
    """Build each screen, save it, return the files."""
    from PySide6.QtWidgets import QApplication

    from tests.ui.shots import save_screens

    QApplication.instance() or QApplication(sys.argv[:1])  # before any widget is built
    with tempfile.TemporaryDirectory(prefix="contacts-screens-") as workdir:
        return save_screens(screens(Path(workdir)), out, suffix)


if __name__ == "__main__":
    for done in build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""):
        print(done)
