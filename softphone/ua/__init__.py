"""softphone.ua: the façade the GUI, the headless agent and the demo all drive.

============  ================================================================
``account``   the TOML account file: :class:`Account`, load/parse/save, errors
``secrets``   passwords from the OS keyring or ``password_env``; :class:`Secret`
``events``    typed engine events, printed as JSON lines by the agent
============  ================================================================

The user agent itself and what a trust question carries are re-exported here too: the GUI
(``ui/``) imports ``softphone.ua`` and nothing deeper (ARCHITECTURE.md).

The re-exports are lazy (PEP 562 ``__getattr__``): a name imports its module when it is
first used, so the GUI can show its window before the engine (media, aiortc, S/MIME:
0.7 s here) is loaded; issue 7 asks for a visible window within 1 s. Type checkers see
the plain imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softphone.gil import hand_over_the_gil_promptly
    from softphone.security.certificates import fingerprint_groups, fingerprint_sha256
    from softphone.security.ledger import (
        CertificateRecord,
        Contact,
        ContactState,
        EventKind,
        TrustLedger,
    )
    from softphone.security.ledger import HistoryEntry as LedgerHistoryEntry
    from softphone.security.safety import qr_png, safety_number
    from softphone.security.trust import (
        CertificateSummary,
        TrustDecision,
        TrustDecisionRequired,
        TrustReport,
    )
    from softphone.ua.account import (
        Account,
        AccountError,
        Nameserver,
        ResolveEntry,
        SipsecAccept,
        SmimeMode,
        Transport,
        ensure_instance_id,
        load_account,
        parse_account,
        save_account,
    )
    from softphone.ua.audio import (
        AudioDevice,
        AudioDeviceError,
        DeviceChoices,
        InputMeter,
        play_test_tone,
        scan_devices,
    )
    from softphone.ua.callstate import CallError
    from softphone.ua.events import (
        CallMuted,
        ConnectionLost,
        ConnectionRestored,
        Event,
        Registered,
        RegistrationFailed,
        SmimeStatus,
        TrustProblem,
        TrustRequired,
        Unregistered,
        event_from_json,
    )
    from softphone.ua.history import CallHistory, HistoryEntry, default_history_path
    from softphone.ua.identity import (
        IDENTITY_ERRORS,
        IdentityExistsError,
        IdentityStore,
        IdentitySummary,
        create_identity,
        current_identity,
        default_identity_dir,
        export_identity_certificate,
        import_identity,
    )
    from softphone.ua.registration import RegistrationError, RegistrationState
    from softphone.ua.secrets import (
        KeyringAccessError,
        NoSecureKeyringError,
        PasswordEnvError,
        PasswordNotFoundError,
        Secret,
        SecretsError,
        delete_password,
        get_password,
        get_secret,
        set_password,
    )
    from softphone.ua.trustgate import Answerer, TrustPolicy
    from softphone.ua.trustledger import safety_number_in_slices
    from softphone.ua.turns import TURN, next_turn, running_loop
    from softphone.ua.useragent import Backoff, UserAgent

# name -> (module, name in that module)
_LAZY: dict[str, tuple[str, str]] = {
    "Account": ("softphone.ua.account", "Account"),
    "AccountError": ("softphone.ua.account", "AccountError"),
    "Answerer": ("softphone.ua.trustgate", "Answerer"),
    "AudioDevice": ("softphone.ua.audio", "AudioDevice"),
    "AudioDeviceError": ("softphone.ua.audio", "AudioDeviceError"),
    "Backoff": ("softphone.ua.useragent", "Backoff"),
    "CallError": ("softphone.ua.callstate", "CallError"),
    "CallHistory": ("softphone.ua.history", "CallHistory"),
    "CallMuted": ("softphone.ua.events", "CallMuted"),
    "CertificateRecord": ("softphone.security.ledger", "CertificateRecord"),
    "CertificateSummary": ("softphone.security.trust", "CertificateSummary"),
    "ConnectionLost": ("softphone.ua.events", "ConnectionLost"),
    "ConnectionRestored": ("softphone.ua.events", "ConnectionRestored"),
    "Contact": ("softphone.security.ledger", "Contact"),
    "ContactState": ("softphone.security.ledger", "ContactState"),
    "DeviceChoices": ("softphone.ua.audio", "DeviceChoices"),
    "Event": ("softphone.ua.events", "Event"),
    "EventKind": ("softphone.security.ledger", "EventKind"),
    "HistoryEntry": ("softphone.ua.history", "HistoryEntry"),
    "IDENTITY_ERRORS": ("softphone.ua.identity", "IDENTITY_ERRORS"),
    "IdentityExistsError": ("softphone.ua.identity", "IdentityExistsError"),
    "IdentityStore": ("softphone.ua.identity", "IdentityStore"),
    "IdentitySummary": ("softphone.ua.identity", "IdentitySummary"),
    "InputMeter": ("softphone.ua.audio", "InputMeter"),
    "KeyringAccessError": ("softphone.ua.secrets", "KeyringAccessError"),
    "LedgerHistoryEntry": ("softphone.security.ledger", "HistoryEntry"),
    "Nameserver": ("softphone.ua.account", "Nameserver"),
    "NoSecureKeyringError": ("softphone.ua.secrets", "NoSecureKeyringError"),
    "PasswordEnvError": ("softphone.ua.secrets", "PasswordEnvError"),
    "PasswordNotFoundError": ("softphone.ua.secrets", "PasswordNotFoundError"),
    "Registered": ("softphone.ua.events", "Registered"),
    "RegistrationError": ("softphone.ua.registration", "RegistrationError"),
    "RegistrationFailed": ("softphone.ua.events", "RegistrationFailed"),
    "RegistrationState": ("softphone.ua.registration", "RegistrationState"),
    "ResolveEntry": ("softphone.ua.account", "ResolveEntry"),
    "Secret": ("softphone.ua.secrets", "Secret"),
    "SecretsError": ("softphone.ua.secrets", "SecretsError"),
    "SipsecAccept": ("softphone.ua.account", "SipsecAccept"),
    "SmimeMode": ("softphone.ua.account", "SmimeMode"),
    "SmimeStatus": ("softphone.ua.events", "SmimeStatus"),
    "Transport": ("softphone.ua.account", "Transport"),
    "TrustDecision": ("softphone.security.trust", "TrustDecision"),
    "TrustDecisionRequired": ("softphone.security.trust", "TrustDecisionRequired"),
    "TrustLedger": ("softphone.security.ledger", "TrustLedger"),
    "TrustPolicy": ("softphone.ua.trustgate", "TrustPolicy"),
    "TrustProblem": ("softphone.ua.events", "TrustProblem"),
    "TrustReport": ("softphone.security.trust", "TrustReport"),
    "TrustRequired": ("softphone.ua.events", "TrustRequired"),
    "Unregistered": ("softphone.ua.events", "Unregistered"),
    "UserAgent": ("softphone.ua.useragent", "UserAgent"),
    "create_identity": ("softphone.ua.identity", "create_identity"),
    "current_identity": ("softphone.ua.identity", "current_identity"),
    "default_history_path": ("softphone.ua.history", "default_history_path"),
    "default_identity_dir": ("softphone.ua.identity", "default_identity_dir"),
    "delete_password": ("softphone.ua.secrets", "delete_password"),
    "ensure_instance_id": ("softphone.ua.account", "ensure_instance_id"),
    "event_from_json": ("softphone.ua.events", "event_from_json"),
    "export_identity_certificate": ("softphone.ua.identity", "export_identity_certificate"),
    "fingerprint_groups": ("softphone.security.certificates", "fingerprint_groups"),
    "fingerprint_sha256": ("softphone.security.certificates", "fingerprint_sha256"),
    "get_password": ("softphone.ua.secrets", "get_password"),
    "get_secret": ("softphone.ua.secrets", "get_secret"),
    "import_identity": ("softphone.ua.identity", "import_identity"),
    "load_account": ("softphone.ua.account", "load_account"),
    "next_turn": ("softphone.ua.turns", "next_turn"),
    "running_loop": ("softphone.ua.turns", "running_loop"),
    "hand_over_the_gil_promptly": ("softphone.gil", "hand_over_the_gil_promptly"),
    "TURN": ("softphone.ua.turns", "TURN"),
    "parse_account": ("softphone.ua.account", "parse_account"),
    "play_test_tone": ("softphone.ua.audio", "play_test_tone"),
    "qr_png": ("softphone.security.safety", "qr_png"),
    "safety_number": ("softphone.security.safety", "safety_number"),
    "safety_number_in_slices": ("softphone.ua.trustledger", "safety_number_in_slices"),
    "save_account": ("softphone.ua.account", "save_account"),
    "scan_devices": ("softphone.ua.audio", "scan_devices"),
    "set_password": ("softphone.ua.secrets", "set_password"),
}

__all__ = [
    "IDENTITY_ERRORS",
    "TURN",
    "Account",
    "AccountError",
    "Answerer",
    "AudioDevice",
    "AudioDeviceError",
    "Backoff",
    "CallError",
    "CallHistory",
    "CallMuted",
    "CertificateRecord",
    "CertificateSummary",
    "ConnectionLost",
    "ConnectionRestored",
    "Contact",
    "ContactState",
    "DeviceChoices",
    "Event",
    "EventKind",
    "HistoryEntry",
    "IdentityExistsError",
    "IdentityStore",
    "IdentitySummary",
    "InputMeter",
    "KeyringAccessError",
    "LedgerHistoryEntry",
    "Nameserver",
    "NoSecureKeyringError",
    "PasswordEnvError",
    "PasswordNotFoundError",
    "Registered",
    "RegistrationError",
    "RegistrationFailed",
    "RegistrationState",
    "ResolveEntry",
    "Secret",
    "SecretsError",
    "SipsecAccept",
    "SmimeMode",
    "SmimeStatus",
    "Transport",
    "TrustDecision",
    "TrustDecisionRequired",
    "TrustLedger",
    "TrustPolicy",
    "TrustProblem",
    "TrustReport",
    "TrustRequired",
    "Unregistered",
    "UserAgent",
    "create_identity",
    "current_identity",
    "default_history_path",
    "default_identity_dir",
    "delete_password",
    "ensure_instance_id",
    "event_from_json",
    "export_identity_certificate",
    "fingerprint_groups",
    "fingerprint_sha256",
    "get_password",
    "get_secret",
    "hand_over_the_gil_promptly",
    "import_identity",
    "load_account",
    "next_turn",
    "parse_account",
    "play_test_tone",
    "qr_png",
    "running_loop",
    "safety_number",
    "safety_number_in_slices",
    "save_account",
    "scan_devices",
    "set_password",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562), then keep it here."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
