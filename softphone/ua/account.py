"""Accounts: the TOML file that says who you are, where you register and how careful to be.

The file never holds a password. The password lives in the OS keyring (service
``softphone``, user name the AOR: see :mod:`softphone.ua.secrets`), or, for automation, in
an environment variable the file names with ``password_env``. A key that looks like a
password (``password``, ``secret``, ``pass``...) is refused, and so is an AOR or registrar
URI with a password in it (``sip:alice:pw@host``, deprecated by RFC 3261 §19.1.1).

Example (``~/.config/softphone/alice.toml``)::

    aor = "sips:alice@example.com"        # required: sip: or sips:, with a user part
    username = "alice"                    # Digest user name; default: the AOR's user part
    password_env = "SOFTPHONE_PASSWORD"   # read the password from this variable, not the keyring
    registrar = "sips:sip.example.com:5061"   # default: the AOR's domain, found by RFC 3263
    resolve = ["sip.example.com:5061:192.0.2.10", "sip.example.com:5061:[2001:db8::10]"]
    nameserver = ["192.0.2.53", "[2001:db8::53]:5353"]
    ca_file = "example-ca.pem"            # relative to this file's folder
    display_name = "Alice"
    send_display_name = true              # put display_name in From (off by default: privacy)
    srtp = "mandatory"                    # "mandatory" | "optional" | "off"
    keying = "sdes"                       # how our offers key SRTP: "sdes" | "dtls-srtp"
    sipsec_accept = "ask"                 # incoming sipsec tunnels: "accept" | "reject" | "ask"
    sipsec_reveal_identity = false        # put your AOR in the CONNECT's From (default: anonymous)
    sipsec_handshake_timeout = 5.0        # seconds the end-to-end TLS handshake may take
    smime = "off"                         # "off" | "sign" | "sign+encrypt"
    expires = 600                         # registration interval, seconds (60 .. 2^32-1)
    transport = ["tls"]                   # preference order of "tls", "tcp", "udp"
    identity = "alice.pem"                # your certificate and private key (PEM)
    outbound = true                       # RFC 5626 outbound (flows and keep-alives)
    instance_id = "urn:uuid:..."          # RFC 5626 §4.1, written once by ensure_instance_id
    input_device = "USB Headset"          # the microphone of calls (a PortAudio device spec)
    output_device = "default"             # the speaker of calls

Sound card (:mod:`softphone.ua.sound`): ``input_device`` and ``output_device`` take the same
spec as the agent's ``--input-device``/``--output-device``: a device name (exact, or a part
that matches one device), an index, or ``"default"`` (the system's default device). When the
account names either, a :class:`~softphone.ua.useragent.UserAgent` built without its own
``audio_devices`` opens them for every call (the one left out is the system default); with
neither, calls use no sound card unless the UserAgent is given one. A spec is checked when a
call opens the device (a headset may be plugged in later), not when the file is read.

sipsec (draft-gurbani-sip-sipsec-01 §6.3-6.4): a CONNECT reveals no more than routing needs.
By default its From is ``<sip:anonymous@anonymous.invalid>`` (RFC 3323 style) with no display
name, User-Agent, Subject or Contact; ``sipsec_reveal_identity = true`` puts your AOR there
instead (every proxy on the way then sees who is calling whom). ``sipsec_handshake_timeout``
bounds the wait for the nested TLS handshake after the CONNECT's 2xx: a proxy that forwards the
CONNECT but does not go transparent ends the call with that explanation within this time.

Every key but ``aor`` is optional. Unknown keys are errors, with a "did you mean" suggestion,
because a misspelt ``srtp`` must not silently leave calls unencrypted. Each error names the
file, the key and what is wrong: :class:`AccountError`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from softphone.sdp.policy import SrtpPolicy
from softphone.sip.errors import ParseError
from softphone.sip.uri import SipURI, parse_uri, validate_host
from softphone.storage import atomic_write

__all__ = [
    "DEFAULT_EXPIRES",
    "MAX_EXPIRES",
    "MIN_EXPIRES",
    "Account",
    "AccountError",
    "MediaKeying",
    "Nameserver",
    "ResolveEntry",
    "SipsecAccept",
    "SmimeMode",
    "SrtpPolicy",
    "Transport",
    "ensure_instance_id",
    "load_account",
    "new_instance_id",
    "parse_account",
    "save_account",
]

DEFAULT_EXPIRES = 600
#: Shorter intervals mostly earn a 423 Interval Too Brief (RFC 3261 §10.3) and drain batteries.
MIN_EXPIRES = 60
#: RFC 3261 §20.19: delta-seconds up to 2**32-1.
MAX_EXPIRES = 2**32 - 1


class AccountError(ValueError):
    """An account file (or an :class:`Account` built in code) that cannot be used.

    ``source`` is the file (or ``None`` for an ``Account`` built in code), ``key`` the key at
    fault (``None`` for the file as a whole), ``problem`` what is wrong, in words. The message
    never repeats anything that may be a password.
    """

    def __init__(self, problem: str, *, source: str | None = None, key: str | None = None):
        self.problem = problem
        self.source = source
        self.key = key
        parts = [p for p in (source, key) if p is not None]
        super().__init__(": ".join([*parts, problem]))


class SipsecAccept(StrEnum):
    """What to do with an incoming sipsec tunnel (draft-gurbani-sip-sipsec-01 CONNECT)."""

    ACCEPT = "accept"
    REJECT = "reject"
    ASK = "ask"


class MediaKeying(StrEnum):
    """How our offers key SRTP (softphone.media.dtls: one keying per offer; as answerer we
    accept either): SDES ``a=crypto`` (RFC 4568) or DTLS-SRTP (RFC 5763/5764)."""

    SDES = "sdes"
    DTLS_SRTP = "dtls-srtp"


class SmimeMode(StrEnum):
    """S/MIME on our SIP bodies (RFC 3261 §23, RFC 8551)."""

    OFF = "off"
    SIGN = "sign"
    SIGN_ENCRYPT = "sign+encrypt"


class Transport(StrEnum):
    """A transport the account may register and call over (RFC 3263 §4.1 preference)."""

    TLS = "tls"
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True)
class ResolveEntry:
    """``host:port:address``: connect to ``address`` for ``host``:``port``, skipping DNS (as
    curl's ``--resolve``). ``address`` is stored without brackets; ``str()`` adds them for
    IPv6. The TLS server is still checked against ``host``."""

    host: str
    port: int
    address: str

    def __post_init__(self) -> None:
        _check_host(self.host)
        _check_port(self.port)
        ipaddress.ip_address(self.address)  # ValueError: built wrong in code

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{_bracketed(self.address)}"

    @classmethod
    def parse(cls, text: str) -> ResolveEntry:
        """From ``example.com:5061:192.0.2.1`` or ``example.com:5061:[2001:db8::1]``."""
        host, sep1, rest = text.partition(":")
        port_text, sep2, address = rest.partition(":")
        if not (sep1 and sep2 and host and port_text and address):
            raise _InvalidValueError(f'{text!r} is not "host:port:address"')
        _check_host(host)
        port = _parse_port(port_text)
        if address.startswith("["):
            if not address.endswith("]"):
                raise _InvalidValueError(f"{text!r}: missing ']' after the IPv6 address")
            ip = _parse_ip(address[1:-1])
            if ip.version != 6:
                raise _InvalidValueError(f"{text!r}: only IPv6 addresses go in brackets")
        else:
            if ":" in address:
                raise _InvalidValueError(
                    f"{text!r}: an IPv6 address must be in brackets, as in "
                    f'"{host}:{port}:[{address}]"'
                )
            ip = _parse_ip(address)
        return cls(host.lower(), port, ip.compressed)


@dataclass(frozen=True)
class Nameserver:
    """A DNS server for RFC 3263 look-ups instead of the system's."""

    address: str
    port: int = 53

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.address)
        _check_port(self.port)

    def __str__(self) -> str:
        if self.port == 53:
            return self.address
        return f"{_bracketed(self.address)}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Nameserver:
        """``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::53`` or ``[2001:db8::53]:5353``."""
        if text.startswith("["):
            inner, close, after = text[1:].partition("]")
            if not close:
                raise _InvalidValueError(f"{text!r}: missing ']' after the IPv6 address")
            ip = _parse_ip(inner)
            if after and not after.startswith(":"):
                raise _InvalidValueError(f"{text!r}: expected ':port' after ']'")
            return cls(ip.compressed, _parse_port(after[1:]) if after else 53)
        if text.count(":") == 1:
            address, _, port_text = text.partition(":")
            return cls(_parse_ip(address).compressed, _parse_port(port_text))
        return cls(_parse_ip(text).compressed)


@dataclass(frozen=True)
class Account:
    """One SIP account, validated when built (each field as described in the module docstring).

    ``aor`` and ``registrar`` are kept as canonical URI strings (the URI classes are mutable
    and unhashable); :attr:`aor_uri` and :attr:`registrar_uri` parse them afresh.
    """

    aor: str
    username: str | None = None
    password_env: str | None = None
    registrar: str | None = None
    resolve: tuple[ResolveEntry, ...] = ()
    nameserver: tuple[Nameserver, ...] = ()
    ca_file: Path | None = None
    display_name: str | None = None
    send_display_name: bool = False
    srtp: SrtpPolicy = SrtpPolicy.MANDATORY
    keying: MediaKeying = MediaKeying.SDES
    sipsec_accept: SipsecAccept = SipsecAccept.ASK
    sipsec_reveal_identity: bool = False
    sipsec_handshake_timeout: float = 5.0
    smime: SmimeMode = SmimeMode.OFF
    expires: int = DEFAULT_EXPIRES
    transport: tuple[Transport, ...] = ()
    identity: Path | None = None
    outbound: bool = True
    instance_id: str | None = None
    input_device: str | None = None
    output_device: str | None = None

    def __post_init__(self) -> None:
        for key, problem in _normalise(self):
            raise AccountError(problem, key=key)

    @property
    def aor_uri(self) -> SipURI:
        uri = parse_uri(self.aor)
        assert isinstance(uri, SipURI)
        return uri

    @property
    def domain(self) -> str:
        """The AOR's host: what RFC 3263 resolves when no registrar is set, and the name the
        registrar's certificate must carry (RFC 5922 §7.3)."""
        return self.aor_uri.host

    @property
    def secure(self) -> bool:
        """A ``sips:`` AOR: TLS on every hop (RFC 3261 §26.2.2)."""
        return self.aor.startswith("sips:")

    @property
    def registrar_uri(self) -> SipURI:
        """The REGISTER Request-URI (RFC 3261 §10.2): ``registrar``, else the AOR's domain."""
        if self.registrar is not None:
            uri = parse_uri(self.registrar)
            assert isinstance(uri, SipURI)
            return uri
        aor = self.aor_uri
        return SipURI(aor.scheme, host=aor.host)

    @property
    def auth_username(self) -> str:
        """The Digest user name (RFC 3261 §22.4): ``username``, else the AOR's user part."""
        if self.username is not None:
            return self.username
        user = self.aor_uri.user
        assert user is not None
        return user

    @property
    def audio_devices(self) -> tuple[str, str] | None:
        """(input spec, output spec) for ``UserAgent(audio_devices=...)``: ``None`` when the
        account names no device, else both, the one left out being ``"default"``."""
        if self.input_device is None and self.output_device is None:
            return None
        return (self.input_device or "default", self.output_device or "default")

    def with_new_instance_id(self) -> Account:
        """A copy with a fresh random ``urn:uuid:`` (RFC 5626 §4.1, RFC 4122 version 4)."""
        return replace(self, instance_id=new_instance_id())

    def to_toml(self) -> str:
        """The account as TOML, with only the keys that differ from their defaults."""
        lines = ["# Softphone account. No password here: see the keyring or password_env."]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "aor" and value == f.default:
                continue
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


KEYS: tuple[str, ...] = tuple(f.name for f in fields(Account))

# Keys refused outright, whatever the value: a password never belongs in the file.
_PASSWORD_WORDS = ("password", "passwd", "secret")
_PASSWORD_KEYS = frozenset({"pass", "pw", "pwd", "passphrase"})
_ALLOWED_DESPITE_NAME = frozenset({"password_env"})
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+")
_URN_UUID_PREFIX = "urn:uuid:"
_KEYRING_HINT = (
    'store it in the keyring (service "softphone", user name the AOR) or, for automation, '
    "name an environment variable with password_env"
)


class _InvalidValueError(Exception):
    """What is wrong with one value; the caller adds the file and the key."""


def new_instance_id() -> str:
    """A fresh ``urn:uuid:`` for RFC 5626 §4.1 (random: RFC 4122 version 4)."""
    return f"{_URN_UUID_PREFIX}{uuid.uuid4()}"


# --- loading ---------------------------------------------------------------------------------


def load_account(path: str | os.PathLike[str]) -> Account:
    """Read and validate the account file at ``path``; relative paths in it (``ca_file``,
    ``identity``) are taken from the file's folder. Raises :class:`AccountError`."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AccountError("no such file", source=source) from None
    except OSError as exc:
        raise AccountError(f"cannot read it ({exc.strerror})", source=source) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AccountError("not UTF-8 text", source=source) from None
    return parse_account(text, source=source, base_dir=path.parent)


def parse_account(text: str, *, source: str, base_dir: Path | None = None) -> Account:
    """Validate the TOML ``text``; ``source`` names it in errors. Relative paths are taken
    from ``base_dir`` (default: the folder of ``source``)."""
    base = Path(source).parent if base_dir is None else base_dir
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib reports a position, never the text, so a password cannot leak from here.
        raise AccountError(f"not valid TOML: {exc}", source=source) from None
    for key in _keys(table):
        if _looks_like_password(key.rpartition(".")[2]):
            raise AccountError(
                "the account file never holds a password; " + _KEYRING_HINT, source=source, key=key
            )
    for key in table:
        if key not in _CONVERTERS:
            raise AccountError(_unknown_key(key), source=source, key=key)
    if "aor" not in table:
        raise AccountError(
            'missing key "aor" (your address of record, such as "sips:alice@example.com")',
            source=source,
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        try:
            values[key] = _CONVERTERS[key](value, base)
        except _InvalidValueError as exc:
            raise AccountError(str(exc), source=source, key=key) from None
    try:
        return Account(**values)
    except AccountError as exc:
        raise AccountError(exc.problem, source=source, key=exc.key) from None


def _keys(table: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key, dotted, including those of nested tables and of tables in arrays."""
    for key, value in table.items():
        yield prefix + key
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                yield from _keys(item, f"{prefix}{key}.")


def _looks_like_password(key: str) -> bool:
    lower = key.lower()
    if lower in _ALLOWED_DESPITE_NAME:
        return False
    return lower in _PASSWORD_KEYS or any(word in lower for word in _PASSWORD_WORDS)


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key.lower(), KEYS, n=1, cutoff=0.6)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return "unknown key; the keys are " + ", ".join(KEYS)


# --- saving ----------------------------------------------------------------------------------


def save_account(path: str | os.PathLike[str], account: Account) -> None:
    """Write ``account`` to ``path`` as TOML, atomically, readable by the user only (0600)."""
    atomic_write(path, account.to_toml().encode("utf-8"), mode=0o600)


def ensure_instance_id(path: str | os.PathLike[str]) -> Account:
    """Load the account at ``path``, giving it an ``instance_id`` if it has none.

    RFC 5626 §4.1: the instance ID must stay the same for the life of the device, so it is
    generated once and written to the file. The line is appended to the text as it is, so
    the person's comments and layout survive (an account file has no tables, so a key at the
    end is still a top-level key).
    """
    account = load_account(path)
    if account.instance_id is not None:
        return account
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"instance_id = {_toml_string(new_instance_id())}\n"
    updated = parse_account(text, source=str(path), base_dir=Path(path).parent)
    atomic_write(path, text.encode("utf-8"), mode=0o600)
    return updated


# --- TOML output (only the types an Account holds) -------------------------------------------

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(text: str) -> str:
    """A TOML basic string (TOML 1.0 §String): escapes for '"', '\\' and control characters."""
    out = ['"']
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Enum):
        return _toml_string(str(value.value))
    if isinstance(value, str | Path | ResolveEntry | Nameserver):
        return _toml_string(str(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# --- one converter per key: the TOML value in, the field value out ------------------------


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _InvalidValueError(f"must be a string, not {_kind(value)}")
    return value


def _strings(value: object) -> list[str]:
    """A string or an array of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _InvalidValueError(f"must be a string or an array of strings, not {_kind(value)}")
    return value


def _boolean(value: object, _base: Path) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValueError(f"must be true or false, not {_kind(value)}")
    return value


def _choice(enum: type[Enum]) -> Callable[[object, Path], Any]:
    choices = ", ".join(f'"{member.value}"' for member in enum)

    def convert(value: object, _base: Path) -> Any:
        text = _string(value)
        for member in enum:
            if member.value == text:
                return member
        raise _InvalidValueError(f"must be one of {choices}, not {text!r}")

    return convert


def _aor_value(value: object, _base: Path) -> str:
    return _canonical_aor(_string(value))


def _registrar_value(value: object, _base: Path) -> str:
    return _canonical_registrar(_string(value))


def _text_value(value: object, _base: Path) -> str:
    text = _string(value)
    _check_text(text)
    return text


def _env_value(value: object, _base: Path) -> str:
    text = _string(value)
    _check_env_name(text)
    return text


def _resolve_value(value: object, _base: Path) -> tuple[ResolveEntry, ...]:
    return tuple(ResolveEntry.parse(text) for text in _strings(value))


def _nameserver_value(value: object, _base: Path) -> tuple[Nameserver, ...]:
    return tuple(Nameserver.parse(text) for text in _strings(value))


def _path_value(value: object, base: Path) -> Path:
    text = _string(value)
    if not text:
        raise _InvalidValueError("must name a file, not be empty")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base / path
    path = path.absolute()
    if not path.exists():
        raise _InvalidValueError(f"{text!r} does not exist (looked for {path})")
    if not path.is_file():
        raise _InvalidValueError(f"{text!r} is not a file ({path})")
    return path


def _expires_value(value: object, _base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidValueError(f"must be a whole number of seconds, not {_kind(value)}")
    return value


def _seconds_value(value: object, _base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidValueError(f"must be a number of seconds, not {_kind(value)}")
    return float(value)


def _transport_value(value: object, _base: Path) -> tuple[Transport, ...]:
    choices = ", ".join(f'"{t.value}"' for t in Transport)
    result: list[Transport] = []
    for text in _strings(value):
        try:
            transport = Transport(text.lower())
        except ValueError:
            raise _InvalidValueError(f"must be among {choices}, not {text!r}") from None
        if transport in result:
            raise _InvalidValueError(f'names "{transport.value}" twice')
        result.append(transport)
    if not result:
        raise _InvalidValueError("must name at least one transport (leave it out for automatic)")
    return tuple(result)


def _instance_id_value(value: object, _base: Path) -> str:
    return _canonical_instance_id(_string(value))


def _device_value(value: object, _base: Path) -> str:
    text = _string(value)
    _check_device(text)
    return text


_CONVERTERS: dict[str, Callable[[object, Path], Any]] = {
    "aor": _aor_value,
    "username": _text_value,
    "password_env": _env_value,
    "registrar": _registrar_value,
    "resolve": _resolve_value,
    "nameserver": _nameserver_value,
    "ca_file": _path_value,
    "display_name": _text_value,
    "send_display_name": _boolean,
    "srtp": _choice(SrtpPolicy),
    "keying": _choice(MediaKeying),
    "sipsec_accept": _choice(SipsecAccept),
    "sipsec_reveal_identity": _boolean,
    "sipsec_handshake_timeout": _seconds_value,
    "smime": _choice(SmimeMode),
    "expires": _expires_value,
    "transport": _transport_value,
    "identity": _path_value,
    "outbound": _boolean,
    "instance_id": _instance_id_value,
    "input_device": _device_value,
    "output_device": _device_value,
}
assert set(_CONVERTERS) == set(KEYS), "every Account field needs a converter"


# --- checks shared by the file converters and Account.__post_init__ ------------------------


def _redacted(text: str) -> str:
    """``text`` with the password of a ``scheme:user:password@`` userinfo blanked out."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*:[^:@]*):[^@]*@", r"\1:***@", text)


def _sip_uri(text: str) -> SipURI:
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        if _redacted(text) != text:
            raise _InvalidValueError(f"{_redacted(text)!r} is not a valid SIP URI") from None
        raise _InvalidValueError(f"{text!r} is not a valid SIP URI ({exc})") from None
    if not isinstance(uri, SipURI):
        raise _InvalidValueError(f"must be a sip: or sips: URI, not {_redacted(text)!r}")
    if uri.password is not None:
        raise _InvalidValueError(
            "must not contain a password (user:password@ is deprecated, RFC 3261 §19.1.1): "
            + _KEYRING_HINT
        )
    return uri


def _canonical_aor(text: str) -> str:
    uri = _sip_uri(text)
    if uri.user is None or uri.user == "":
        raise _InvalidValueError(f'needs a user part, as in "{uri.scheme}:alice@{uri.host}"')
    if uri.port is not None or uri.params or uri.headers:
        raise _InvalidValueError(
            f"must be just {uri.scheme}:user@domain, without port, parameters or headers (an "
            f'address of record names a user, not a server); put the server in "registrar"'
        )
    return uri.copy(host=uri.host.lower()).aor


def _canonical_registrar(text: str) -> str:
    uri = _sip_uri(text)
    if uri.user is not None:
        raise _InvalidValueError(
            "must not have a user part: the REGISTER Request-URI names only the domain or "
            "server (RFC 3261 §10.2)"
        )
    if uri.headers:
        raise _InvalidValueError("must not have headers (?...)")
    return str(uri.copy(host=uri.host.lower()))


def _canonical_instance_id(text: str) -> str:
    example = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    if not text.lower().startswith(_URN_UUID_PREFIX):
        raise _InvalidValueError(f'must be a "urn:uuid:" URN (RFC 5626 §4.1), such as {example!r}')
    try:
        value = uuid.UUID(text[len(_URN_UUID_PREFIX) :])
    except ValueError:
        raise _InvalidValueError(
            f"{text!r} is not a urn:uuid: with a valid UUID (RFC 4122)"
        ) from None
    return _URN_UUID_PREFIX + str(value)


def _check_text(text: str) -> None:
    if not text.strip():
        raise _InvalidValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _InvalidValueError("must not contain control characters (such as a line break)")


def _check_device(text: str) -> None:
    if not text.strip():
        raise _InvalidValueError(
            'must name a sound device (a name, part of one, an index or "default"), not be '
            "empty (leave the key out for no sound card)"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _InvalidValueError("must not contain control characters (such as a line break)")


def _check_env_name(text: str) -> None:
    # Never echo the value: people put the password itself here by mistake.
    if _ENV_NAME_RE.fullmatch(text) is None:
        raise _InvalidValueError(
            "must be the name of an environment variable (letters, digits and _, not "
            "starting with a digit), such as SOFTPHONE_PASSWORD; it holds the variable's "
            "name, never the password itself"
        )


def _check_host(host: str) -> None:
    try:
        validate_host(host)
    except ParseError:
        raise _InvalidValueError(f"{host!r} is not a host name") from None


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _InvalidValueError(f"port {port!r} is not from 1 to 65535")


def _parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or not 1 <= int(text) <= 65535:
        raise _InvalidValueError(f"port {text!r} is not from 1 to 65535")
    return int(text)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _InvalidValueError(f"{text!r} is not an IP address") from None


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _normalise(account: Account) -> Iterator[tuple[str, str]]:
    """Canonicalise the URI fields in place and yield (key, problem) for every rule broken."""
    canonical: tuple[tuple[str, Callable[[str], str]], ...] = (
        ("aor", _canonical_aor),
        ("registrar", _canonical_registrar),
        ("instance_id", _canonical_instance_id),
    )
    checked: tuple[tuple[str, Callable[[str], None]], ...] = (
        ("username", _check_text),
        ("display_name", _check_text),
        ("password_env", _check_env_name),
        ("input_device", _check_device),
        ("output_device", _check_device),
    )
    try:
        for key, canon in canonical:
            value = getattr(account, key)
            if value is not None or key == "aor":
                object.__setattr__(account, key, canon(_string(value)))
        for key, check in checked:
            value = getattr(account, key)
            if value is not None:
                check(_string(value))
    except _InvalidValueError as exc:
        yield key, str(exc)
        return
    yield from _field_problems(account)


_FIELD_TYPES: tuple[tuple[str, type, bool], ...] = (
    # (key, type, None allowed)
    ("srtp", SrtpPolicy, False),
    ("keying", MediaKeying, False),
    ("sipsec_accept", SipsecAccept, False),
    ("smime", SmimeMode, False),
    ("send_display_name", bool, False),
    ("sipsec_reveal_identity", bool, False),
    ("outbound", bool, False),
    ("ca_file", Path, True),
    ("identity", Path, True),
)
_TUPLE_TYPES: tuple[tuple[str, type], ...] = (
    ("resolve", ResolveEntry),
    ("nameserver", Nameserver),
    ("transport", Transport),
)


def _field_problems(account: Account) -> Iterator[tuple[str, str]]:
    for key, kind, optional in _FIELD_TYPES:
        value = getattr(account, key)
        if not (isinstance(value, kind) or (optional and value is None)):
            yield key, f"must be a {kind.__name__}, not {type(value).__name__}"
    for key, kind in _TUPLE_TYPES:
        value = getattr(account, key)
        if not isinstance(value, tuple) or not all(isinstance(v, kind) for v in value):
            yield key, f"must be a tuple of {kind.__name__}"
    timeout = account.sipsec_handshake_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        yield "sipsec_handshake_timeout", "must be a number of seconds"
    elif not 0.1 <= timeout <= 120:
        yield "sipsec_handshake_timeout", f"must be from 0.1 to 120 seconds, not {timeout}"
    if isinstance(account.expires, bool) or not isinstance(account.expires, int):
        yield "expires", "must be a whole number of seconds"
    elif not MIN_EXPIRES <= account.expires <= MAX_EXPIRES:
        yield (
            "expires",
            f"must be from {MIN_EXPIRES} to {MAX_EXPIRES} seconds, not {account.expires}",
        )
    if account.send_display_name and account.display_name is None:
        yield "send_display_name", "is true but display_name is not set"
    registrar_scheme = (account.registrar or "").partition(":")[0]
    if account.secure and registrar_scheme == "sip":
        yield (
            "registrar",
            "must be a sips: URI because the AOR is sips: (a sip: registrar may be reached "
            "without TLS)",
        )
    if account.secure or registrar_scheme == "sips":
        insecure = [t.value for t in account.transport if t is not Transport.TLS]
        if insecure:
            yield (
                "transport",
                f'sips: allows only "tls" (RFC 3261 §26.2.2: TLS on every hop), not '
                f'"{insecure[0]}"',
            )
