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
from softphone.ua.events import (
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
    "Account",
    "AccountError",
    "Answerer",
    "Backoff",
    "CallHistory",
    "CertificateRecord",
    "CertificateSummary",
    "ConnectionLost",
    "ConnectionRestored",
    "Contact",
    "ContactState",
    "Event",
    "EventKind",
    "HistoryEntry",
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
    "default_history_path",
    "delete_password",
    "ensure_instance_id",
    "event_from_json",
    "fingerprint_groups",
    "fingerprint_sha256",
    "get_password",
    "get_secret",
    "load_account",
    "parse_account",
    "qr_png",
    "safety_number",
    "save_account",
    "set_password",
]
