"""softphone.ua: the façade the GUI, the headless agent and the demo all drive.

============  ================================================================
``account``   the TOML account file: :class:`Account`, load/parse/save, errors
``secrets``   passwords from the OS keyring or ``password_env``; :class:`Secret`
``events``    typed engine events, printed as JSON lines by the agent
============  ================================================================
"""

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
    TrustProblem,
    TrustRequired,
    Unregistered,
    event_from_json,
)
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

__all__ = [
    "Account",
    "AccountError",
    "ConnectionLost",
    "ConnectionRestored",
    "Event",
    "KeyringAccessError",
    "Nameserver",
    "NoSecureKeyringError",
    "PasswordEnvError",
    "PasswordNotFoundError",
    "Registered",
    "RegistrationFailed",
    "ResolveEntry",
    "Secret",
    "SecretsError",
    "SipsecAccept",
    "SmimeMode",
    "Transport",
    "TrustProblem",
    "TrustRequired",
    "Unregistered",
    "delete_password",
    "ensure_instance_id",
    "event_from_json",
    "get_password",
    "get_secret",
    "load_account",
    "parse_account",
    "save_account",
    "set_password",
]
