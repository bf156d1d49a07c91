"""The presenters, without Qt: every word and button rule of UX.md's trust dialog, and the
account states the window shows (words and colour, never colour alone)."""

from __future__ import annotations

import sys

import pytest

from softphone.ua import (
    ConnectionLost,
    ConnectionRestored,
    Registered,
    RegistrationFailed,
    Transport,
    TrustDecision,
    TrustProblem,
    TrustRequired,
    Unregistered,
)
from tests.ui.conftest import Questions
from ui.presenters import (
    PROTECTIONS,
    AccountPresenter,
    Protection,
    Tone,
    TrustButton,
    TrustDialogModel,
    describe_event,
    grouped_fingerprint,
    signalling_words,
    wrap_groups,
)

AOR = "sips:alice@example.test"
FP_HEX = ":".join(f"{b:02X}" for b in range(32))
FP_GROUPS = "0001 0203 0405 0607 0809 0A0B 0C0D 0E0F 1011 1213 1415 1617 1819 1A1B 1C1D 1E1F"


def test_presenters_import_no_qt() -> None:
    # Run in a fresh interpreter: this one may already have Qt loaded by other tests.
    import subprocess

    code = "import sys, ui.presenters; sys.exit(any(m.startswith('PySide6') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the trust dialog's words ---------------------------------------------------------------


def test_wrong_name_leads_with_the_consequence_then_the_reason(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.wrong_name)
    assert model.headline == (
        "This may not be example.test's server. Its certificate was issued for wrong.test."
    )
    assert model.title == "Is this really example.test?"
    assert model.waiting == "The registration to example.test is paused until you decide."
    assert not model.loud
    assert model.identity == "example.test"


def test_every_problem_is_listed(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.self_signed_wrong_name)
    assert len(model.problems) == 2
    assert model.problems[0] == model.headline
    assert "self-signed" in model.problems[1]
    assert model.other_problems == model.problems[1:]


def test_button_labels_and_the_safe_default(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.self_signed)
    assert model.label(TrustButton.DONT_CONNECT) == "Don't connect"
    assert model.label(TrustButton.CONNECT_ONCE) == "Connect this time"
    assert model.label(TrustButton.ALWAYS_TRUST) == (
        "Always trust this certificate for example.test"
    )
    assert model.default is TrustButton.DONT_CONNECT
    assert model.default.decision is TrustDecision.REJECT
    assert model.buttons(details_open=False) == tuple(TrustButton)


def test_changed_certificate_is_loud_and_hides_always_until_details(
    questions: Questions,
) -> None:
    model = TrustDialogModel.from_required(questions.changed)
    assert model.loud
    assert model.title == "Warning: the certificate of example.test changed"
    # The title says "Warning"; the engine's message under it does not say it again.
    assert model.headline.startswith("example.test's server is presenting a different")
    assert TrustButton.ALWAYS_TRUST not in model.buttons(details_open=False)
    assert model.buttons(details_open=False) == (
        TrustButton.DONT_CONNECT,
        TrustButton.CONNECT_ONCE,
    )
    assert TrustButton.ALWAYS_TRUST in model.buttons(details_open=True)
    assert "compare the fingerprint" in model.note


def test_expired_says_the_connection_was_closed(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.expired)
    assert "closed at once" in model.note


def test_details_list_the_chain_with_grouped_fingerprints(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.wrong_name)
    assert [e.subject for e in model.chain] == ["wrong.test", "Softphone Test CA"]
    assert model.chain[0].title == "The server's own certificate"
    assert model.chain[0].issuer == "Softphone Test CA"
    assert "authority at the top" in model.chain[1].title
    groups = model.chain[0].fingerprint.split()
    assert len(groups) == 16 and all(len(g) == 4 for g in groups)
    assert model.fingerprint == model.chain[0].fingerprint
    assert model.chain[0].fingerprint_lines.count("\n") == 1  # two lines of eight groups
    assert "UTC to" in model.chain[0].valid


def test_a_report_nobody_may_override_offers_only_dont_connect(questions: Questions) -> None:
    model = TrustDialogModel.from_required(questions.self_signed)
    forged = TrustDialogModel(**{**model.__dict__, "overridable": False})
    assert forged.buttons(details_open=True) == (TrustButton.DONT_CONNECT,)


# --- fingerprints and words -----------------------------------------------------------------


def test_fingerprint_groups_from_the_event_form() -> None:
    assert grouped_fingerprint(FP_HEX) == FP_GROUPS
    assert grouped_fingerprint("not hex") == "not hex"
    assert wrap_groups(FP_GROUPS) == (
        "0001 0203 0405 0607 0809 0A0B 0C0D 0E0F\n1011 1213 1415 1617 1819 1A1B 1C1D 1E1F"
    )


def test_protection_words_follow_ux_md() -> None:
    assert PROTECTIONS[0] is Protection.SIPSEC  # the strongest is the default
    assert Protection.PLAIN.words == "Call setup not encrypted"
    assert Protection.SIPS.words == "Encrypted to each server; servers on the way can read it"
    assert Protection.SIPSEC.words == (
        "Encrypted end to end; servers only see that a call was set up"
    )
    assert signalling_words(Transport.TLS) == Protection.SIPS.words
    assert signalling_words(Transport.TCP) == Protection.PLAIN.words


# --- one account's states -------------------------------------------------------------------


def registered(**changes: object) -> Registered:
    values: dict[str, object] = {
        "aor": AOR,
        "expires": 3600,
        "registrar": "sips:example.test:5061",
        "registrar_fingerprint": FP_HEX,
        "transport": Transport.TLS,
        "algorithm": "SHA-256",
    }
    values.update(changes)
    return Registered(**values)  # type: ignore[arg-type]


def trust_required(changed: bool = False) -> TrustRequired:
    return TrustRequired(
        waiting_for="registration to example.test",
        identity="example.test",
        problems=(TrustProblem("self-signed", 0, "No authority you trust vouches..."),),
        fingerprint=FP_HEX,
        chain_subjects=("example.test",),
        changed=changed,
        overridable=True,
    )


def test_starts_not_registered_in_grey() -> None:
    view = AccountPresenter(AOR).view
    assert (view.state, view.tone, view.fingerprint) == ("Not registered", Tone.NEUTRAL, None)
    assert view.colour == "dimgray"


def test_registering_then_registered_without_a_question() -> None:
    presenter = AccountPresenter(AOR)
    assert presenter.registering().state == "Registering…"
    assert presenter.view.tone is Tone.BUSY
    view = presenter.apply(registered())
    assert view.state == "Registered"
    assert view.tone is Tone.GOOD and view.colour == "forestgreen"
    assert view.fingerprint == FP_GROUPS
    assert view.certificate.startswith("Trusted")
    assert view.signalling == "Encrypted to each server; servers on the way can read it"
    assert "60 min" in view.detail


def test_weak_digest_is_said() -> None:
    view = AccountPresenter(AOR).apply(registered(algorithm="MD5", weak=True))
    assert "MD5" in view.detail and "weak" in view.detail


@pytest.mark.parametrize(
    ("decision", "certificate", "tone"),
    [
        (TrustDecision.ACCEPT_ONCE, "Accepted by you this time only (not trusted)", Tone.BUSY),
        (TrustDecision.ALWAYS_TRUST, "Always trusted by you", Tone.GOOD),
    ],
)
def test_question_answered_then_registered(
    decision: TrustDecision, certificate: str, tone: Tone
) -> None:
    presenter = AccountPresenter(AOR)
    presenter.registering()
    view = presenter.apply(trust_required())
    assert view.state == "Waiting for you"
    assert "registration to example.test waits" in view.detail
    assert view.certificate == "Not trusted; waiting for your decision"
    assert view.fingerprint == FP_GROUPS
    presenter.decided(decision)
    view = presenter.apply(registered())
    assert view.state == "Registered"
    assert (view.certificate, view.certificate_tone) == (certificate, tone)


def test_refused_certificate() -> None:
    presenter = AccountPresenter(AOR)
    presenter.apply(trust_required(changed=True))
    assert presenter.view.certificate == "Changed since you chose to trust it"
    view = presenter.decided(TrustDecision.REJECT)
    assert view.certificate == "Refused by you" and view.tone is Tone.BAD
    view = presenter.apply(RegistrationFailed(AOR, "Not connected: ...", None, False))
    assert view.state == "Registration failed" and view.tone is Tone.BAD


def test_failures_losses_and_unregistering() -> None:
    presenter = AccountPresenter(AOR)
    view = presenter.apply(RegistrationFailed(AOR, "Forbidden", 403, False))
    assert (view.state, view.detail, view.colour) == (
        "Registration failed",
        "Forbidden (403)",
        "firebrick",
    )
    view = presenter.apply(RegistrationFailed(AOR, "timeout", None, True))
    assert view.state == "Registration failed; trying again" and view.tone is Tone.BUSY
    view = presenter.apply(ConnectionLost(AOR, "127.0.0.1:5061", Transport.TLS, "EOF"))
    assert view.state == "Connection lost; reconnecting"
    assert "127.0.0.1:5061" in view.detail
    view = presenter.apply(ConnectionRestored(AOR, "127.0.0.1:5061", Transport.TLS))
    assert view.state == "Reconnected; registering"
    view = presenter.apply(Unregistered(AOR, "unregistered at your request"))
    assert (view.state, view.detail) == ("Not registered", "Unregistered at your request.")


def test_plain_registration_says_not_encrypted() -> None:
    view = AccountPresenter(AOR).apply(
        registered(transport=Transport.TCP, registrar_fingerprint=None)
    )
    assert view.signalling == "Call setup not encrypted"
    assert view.certificate_tone is Tone.BAD and view.fingerprint is None


def test_describe_event_lines() -> None:
    assert describe_event(registered()) == (
        "Registered sips:alice@example.test with sips:example.test:5061 (TLS)"
    )
    assert describe_event(RegistrationFailed(AOR, "Forbidden", 403, True)) == (
        "Registration of sips:alice@example.test failed: Forbidden (403); trying again"
    )
    assert describe_event(trust_required()).startswith("Certificate question for example.test")
    assert describe_event(Unregistered(AOR, "expired")) == (
        "sips:alice@example.test is no longer registered: expired"
    )
