"""The contacts view with its S/MIME setting, for the screenshot test.

``python -m tests.ui.contacts_screens OUTDIR SUFFIX`` saves ``contacts-smime<SUFFIX>.png``
(a contact set to "Sign and encrypt", saved to a real ledger file) and
``contacts-smime-error<SUFFIX>.png`` (a save that failed: the ledger file is unreadable). Run
with ``QT_SCALE_FACTOR=2`` for the 200% shots.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

BOB = "sip:bob@biloxi.test"


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
    return {"contacts-smime": view, "contacts-smime-error": failing}


def build(out: Path, suffix: str) -> list[Path]:
    """Build each screen, save it, return the files."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    saved = []
    with tempfile.TemporaryDirectory(prefix="contacts-screens-") as workdir:
        for name, widget in screens(Path(workdir)).items():
            widget.show()
            app.processEvents()
            path = out / f"{name}{suffix}.png"
            if not widget.grab().save(str(path)):
                raise OSError(f"could not save {path}")
            saved.append(path)
            widget.close()
    return saved


if __name__ == "__main__":
    for done in build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""):
        print(done)
