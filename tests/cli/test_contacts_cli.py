"""``softphone contacts``: list, show, add, verify (fingerprint or safety number), accept-change,
export, forget; real files in a temporary directory, never the user's own ledger."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.contacts import load_ledger
from softphone.contacts_cli import main
from softphone.security.certificates import (
    Identity,
    fingerprint_groups,
    fingerprint_hex,
    fingerprint_sha256,
)
from softphone.security.pins import PinReason
from softphone.security.safety import safety_number
from softphone.storage import load_pin_store
from tests.security.pki import Issued, make_self_signed, new_key

BOB = "sip:bob@example.test"


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ledger = root / "trust" / "contacts.json"
        self.pins = root / "trust" / "pins.json"
        self.identity = root / "identity"

    def run(self, *args: str) -> int:
        return main([*args, "--ledger", str(self.ledger), "--pins", str(self.pins)])

    def pem(self, name: str, issued: Issued) -> str:
        path = self.root / f"{name}.pem"
        path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        return str(path)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


@pytest.fixture(scope="module")
def bob1() -> Issued:
    return make_self_signed(cn="bob", uris=[BOB], key=new_key())


@pytest.fixture(scope="module")
def bob2() -> Issued:
    return make_self_signed(cn="bob", uris=[BOB], key=new_key())


@pytest.fixture(scope="module")
def me() -> Issued:
    return make_self_signed(cn="alice", uris=["sip:alice@example.test"], key=new_key())


def _short(issued: Issued) -> str:
    return " ".join(fingerprint_groups(issued.cert).split()[:4])


def test_empty_ledger_lists_nothing(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert files.run("list") == 0
    assert "No contacts yet" in capsys.readouterr().out


def test_add_list_show(files: Files, bob1: Issued, capsys: pytest.CaptureFixture[str]) -> None:
    assert files.run("add", "sips:bob@EXAMPLE.test", "--cert", files.pem("bob", bob1)) == 0
    assert stat.S_IMODE(files.ledger.stat().st_mode) == 0o600
    assert files.run("add", BOB, "--cert", files.pem("bob", bob1)) == 0
    capsys.readouterr()
    assert files.run("list") == 0
    out = capsys.readouterr().out
    assert BOB in out and _short(bob1) in out and "seen before" in out
    assert files.run("show", BOB) == 0
    out = capsys.readouterr().out
    assert fingerprint_groups(bob1.cert) in out  # the whole fingerprint in hex groups
    assert "seen-new" in out and "manual" in out and "(2 times)" in out


def test_verify_by_fingerprint_pins_for_sipsec(
    files: Files, bob1: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run("add", BOB, "--cert", files.pem("bob", bob1))
    fp = fingerprint_hex(bob1.cert)  # AB:12:... as openssl prints it
    assert files.run("verify", BOB, "--fingerprint", fp, "--means", "qr") == 0
    capsys.readouterr()
    files.run("list")
    assert "verified (qr)" in capsys.readouterr().out
    (pin,) = load_pin_store(files.pins).pins_for(Identity.aor(BOB))
    assert pin.reason is PinReason.VERIFIED_SAFETY_NUMBER
    assert pin.sha256 == fingerprint_sha256(bob1.cert)


def test_verify_refuses_a_fingerprint_that_is_not_current(
    files: Files, bob1: Issued, bob2: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run("add", BOB, "--cert", files.pem("bob1", bob1))
    files.run("add", BOB, "--cert", files.pem("bob2", bob2))
    capsys.readouterr()
    status = files.run("verify", BOB, "--fingerprint", fingerprint_hex(bob1.cert), "--means", "qr")
    assert status == 1
    assert "no longer the certificate" in capsys.readouterr().err
    assert files.run("verify", BOB, "--fingerprint", "12:34", "--means", "qr") == 1
    assert files.run("verify", BOB, "--means", "qr") == 2  # no fingerprint: usage
    assert not files.pins.exists()


def test_verify_by_safety_number(
    files: Files, me: Issued, bob1: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    files.identity.mkdir()
    (files.identity / "cert.pem").write_bytes(me.cert.public_bytes(serialization.Encoding.PEM))
    files.run("add", BOB, "--cert", files.pem("bob", bob1))
    number = safety_number(me.cert, "sip:alice@example.test", bob1.cert, BOB)
    wrong = str(number)[:-1] + ("1" if str(number)[-1] != "1" else "2")
    ident = ["--dir", str(files.identity)]
    assert files.run("verify", BOB, "--safety-number", wrong, *ident) == 1
    assert "does NOT match" in capsys.readouterr().err
    assert load_ledger(files.ledger).state(BOB).value == "claimed"  # nothing marked
    assert files.run("verify", BOB, "--safety-number", "123", *ident) == 2
    assert files.run("verify", BOB, "--safety-number", str(number), *ident) == 0
    assert load_ledger(files.ledger).state(BOB).value == "verified"
    assert load_pin_store(files.pins).pins_for(Identity.aor(BOB))


def test_changed_certificate_is_loud_and_blocks_until_accepted(
    files: Files, bob1: Issued, bob2: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run("add", BOB, "--cert", files.pem("bob1", bob1))
    files.run("verify", BOB, "--fingerprint", fingerprint_hex(bob1.cert), "--means", "qr")
    files.run("add", BOB, "--cert", files.pem("bob2", bob2))
    assert "had another certificate" in capsys.readouterr().err
    files.run("list")
    assert "CHANGED (calls blocked until you answer)" in capsys.readouterr().out
    # The old verified pin stays until the user answers: TLS to Bob is blocked too.
    (pin,) = load_pin_store(files.pins).pins_for(Identity.aor(BOB))
    assert pin.sha256.hex() == fingerprint_hex(bob1.cert).replace(":", "").lower()

    fp2 = fingerprint_hex(bob2.cert)
    assert files.run("accept-change", BOB, "--fingerprint", fp2) == 0
    assert not load_ledger(files.ledger).contact(BOB).blocked
    assert load_pin_store(files.pins).pins_for(Identity.aor(BOB)) == ()
    assert files.run("accept-change", BOB, "--fingerprint", fp2) == 1  # nothing to answer


def test_export_to_file_and_stdout(
    files: Files, bob1: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run("add", BOB, "--cert", files.pem("bob", bob1))
    out = files.root / "audit.json"
    assert files.run("export", "--out", str(out)) == 0
    document = json.loads(out.read_bytes())
    assert document["version"] == 2 and BOB in document["contacts"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    capsys.readouterr()
    assert files.run("export") == 0
    assert json.loads(capsys.readouterr().out)["contacts"][BOB]["history"][-1]["kind"] == (
        "exported"
    )


def test_forget_asks_unless_yes(
    files: Files, bob1: Issued, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run("add", BOB, "--cert", files.pem("bob", bob1))
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert files.run("forget", BOB) == 1
    assert BOB in load_ledger(files.ledger)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert files.run("forget", BOB) == 0
    assert BOB not in load_ledger(files.ledger)
    files.run("add", BOB, "--cert", files.pem("bob", bob1))
    assert files.run("forget", BOB, "--yes") == 0
    assert files.run("forget", BOB, "--yes") == 1
    assert "no contact sip:bob@example.test" in capsys.readouterr().err


def test_corrupt_ledger_is_kept_aside_and_reported(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    files.ledger.parent.mkdir(parents=True)
    files.ledger.write_bytes(b"{not json")
    assert files.run("list") == 1
    err = capsys.readouterr().err
    assert "could not be read" in err and ".corrupt-" in err
    (kept,) = files.ledger.parent.glob("contacts.json.corrupt-*")
    assert kept.read_bytes() == b"{not json"


def test_bad_input_is_a_clear_error(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    bad = files.root / "bad.pem"
    bad.write_bytes(b"not a certificate")
    assert files.run("add", BOB, "--cert", str(bad)) == 1
    assert "no readable PEM certificate" in capsys.readouterr().err
    assert files.run("show", "not an aor") == 1
    assert "not an address of record" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["verify"])
    assert caught.value.code == 2


def test_reachable_from_the_softphone_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "contacts", "list", "--ledger",
         str(tmp_path / "c.json"), "--pins", str(tmp_path / "p.json")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "No contacts yet" in result.stdout


# --- contacts smime (issue 6: "sign, sign+encrypt, or off, per contact or account") -----------


def test_smime_set_show_reset_for_a_known_contact(
    files: Files, bob1: Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    assert files.run("add", BOB, "--cert", files.pem("bob", bob1)) == 0
    assert files.run("show", BOB) == 0
    assert "S/MIME:      as the account" in capsys.readouterr().out
    assert files.run("smime", "sips:bob@EXAMPLE.test", "sign+encrypt") == 0
    captured = capsys.readouterr()
    assert f"{BOB}: S/MIME sign+encrypt" in captured.out and "added" not in captured.err
    assert load_ledger(files.ledger).contact(BOB).smime is not None
    assert files.run("show", BOB) == 0
    out = capsys.readouterr().out
    assert "S/MIME:      sign+encrypt" in out
    assert "smime-preference" in out and "account -> sign+encrypt" in out  # in the history
    assert files.run("smime", BOB, "off") == 0
    assert "still requires it" in capsys.readouterr().err  # off never weakens the account
    assert files.run("smime", BOB, "account") == 0
    capsys.readouterr()
    contact = load_ledger(files.ledger).contact(BOB)
    assert contact.smime is None and contact.current == fingerprint_sha256(bob1.cert)
    details = [h.detail for h in contact.history if h.kind.value == "smime-preference"]
    assert details == ["account -> sign+encrypt", "sign+encrypt -> off", "off -> account"]
    assert files.run("show", BOB) == 0
    assert "S/MIME:      as the account" in capsys.readouterr().out


def test_smime_for_an_unknown_contact_adds_it_claimed(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    assert files.run("smime", "carol@example.test", "sign") == 0
    assert "added to the ledger (no certificate seen yet)" in capsys.readouterr().err
    assert stat.S_IMODE(files.ledger.stat().st_mode) == 0o600
    assert files.run("list") == 0
    assert "sip:carol@example.test" in capsys.readouterr().out
    assert files.run("show", "sip:carol@example.test") == 0
    out = capsys.readouterr().out
    assert "State:       claimed" in out and "S/MIME:      sign" in out
    assert "No certificate seen yet." in out


def test_smime_refuses_unknown_settings_and_bad_aors(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        files.run("smime", BOB, "encrypt")
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert files.run("smime", "not an aor", "sign") == 1
    assert "not an address of record" in capsys.readouterr().err
    assert not files.ledger.exists()  # nothing written for a refused request
