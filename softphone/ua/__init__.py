"""softphone.ua: the façade the GUI, the headless agent and the demo all drive.

============  ================================================================
``account``   the TOML account file: :class:`Account`, load/parse/save, errors
``secrets``   passwords from the OS keyring or ``password_env``; :class:`Secret`
``events``    typed engine events, printed as JSON lines by the agent
============  ================================================================

The user agent itself and what a trust question carries are re-exported here too: the GUI
(``ui/``) imports ``softphone.ua`` and nothing deeper (ARCHITECTURE.md).
"""

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
from softphone.ua.useragent import Backoff, UserAgent

__all__ = [
    "IDENTITY_ERRORS",
    "Account",
    "AccountError",
    "Answerer",
    "AudioDevice",
    "AudioDeviceError",
    "Backoff",
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
    "import_identity",
    "load_account",
    "parse_account",
    "play_test_tone",
    "qr_png",
    "safety_number",
    "save_account",
    "scan_devices",
    "set_password",
]
