"""Configuration of the registrar: a small frozen dataclass and the users file loader.

The users file is TOML (``softphone proxy --users users.toml``)::

    [users]
    alice = "secret"                        # a password (H(A1) is derived per algorithm)

    [users.bob]                             # or precomputed H(A1) = H(user:realm:password)
    ha1-sha-256 = "3c1f..."                 # RFC 7616 §3.4.2; the realm is the domain
    ha1-md5 = "9b2e..."

Passwords never appear in ``repr()``; the Digest server only ever keeps H(A1)
(:class:`softphone.sip.digest_server.InMemoryCredentials`).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from softphone.sip.digest import Algorithm
from softphone.sip.digest_server import InMemoryCredentials
from softphone.transport.tls import PrivateKey

__all__ = [
    "ConfigError",
    "ListenAddress",
    "RegistrarConfig",
    "UserEntry",
    "load_identity",
    "load_users",
]

_TRANSPORTS = ("tls", "tcp", "udp")
# Keys of a [users.NAME] table that carry a precomputed H(A1), per hash function.
_HA1_KEYS = {"ha1-md5": "md5", "ha1-sha-256": "sha256", "ha1-sha-512-256": "sha512_256"}
_HASH_HEX_LENGTH = {"md5": 32, "sha256": 64, "sha512_256": 64}


class ConfigError(ValueError):
    """The configuration or one of its files is unusable; the message says which and why."""


@dataclass(frozen=True)
class UserEntry:
    """One user's secret: a password, or H(A1) per hash function (``"md5"``, ``"sha256"``)."""

    password: str | None = field(default=None, repr=False)
    ha1: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.password is None and not self.ha1:
            raise ConfigError("a user needs a password or an H(A1)")
        for hash_name, value in self.ha1.items():
            length = _HASH_HEX_LENGTH.get(hash_name)
            if length is None:
                raise ConfigError(f"unknown hash {hash_name!r} for H(A1)")
            if len(value) != length or any(c not in "0123456789abcdefABCDEF" for c in value):
                raise ConfigError(f"H(A1) for {hash_name} must be {length} hex digits")


@dataclass(frozen=True)
class ListenAddress:
    """Where to listen: ``host``, ``port`` (0: any free port) and ``transport`` tls|tcp|udp."""

    host: str
    port: int
    transport: str = "tls"

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise ConfigError(f"transport must be one of {_TRANSPORTS}, not {self.transport!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} out of range")

    @classmethod
    def parse(cls, text: str, transport: str = "tls") -> ListenAddress:
        """``127.0.0.1:5061``, ``[::1]:5061``, ``tcp:127.0.0.1:5060`` or ``udp:127.0.0.1:5060``
        (a prefix wins)."""
        scheme, sep, rest = text.partition(":")
        if sep and scheme.lower() in _TRANSPORTS and not rest.isdigit():
            transport, text = scheme.lower(), rest
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ConfigError(f"listen address {text!r} is not host:port")
        return cls(host.strip("[]"), int(port_text), transport)


@dataclass(frozen=True)
class RegistrarConfig:
    """Everything the registrar needs (see the module docstring for the users file).

    The TLS identity comes from ``certificate_chain``/``private_key`` (tests, the demo) or is
    loaded from ``cert_path``/``key_path`` (PEM). ``realm`` defaults to ``domain``.
    Expiry bounds follow RFC 3261 §10.3 step 7: below ``min_expires`` is 423, above
    ``max_expires`` is shortened; no expiry requested means ``default_expires``.
    """

    domain: str
    users: Mapping[str, str | UserEntry] = field(default_factory=dict, repr=False)
    listen: tuple[ListenAddress, ...] = (ListenAddress("127.0.0.1", 0, "tls"),)
    cert_path: Path | None = None
    key_path: Path | None = None
    certificate_chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    private_key: PrivateKey | None = field(default=None, repr=False)
    realm: str | None = None
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    nonce_lifetime: float = 300.0
    algorithms: tuple[Algorithm, ...] = (Algorithm.SHA_256, Algorithm.MD5)
    flow_timer: int | None = None  # RFC 5626 §5.4 Flow-Timer sent in 2xx to outbound REGISTERs
    #: Proxy (RFC 3261 §16): another domain -> "host:port" of its proxy, reached over TLS.
    routes: Mapping[str, str] = field(default_factory=dict)
    #: CAs that verify a next-hop proxy's certificate for the routed domain (RFC 5922 §7).
    peer_anchors: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    #: draft-gurbani-sip-sipsec-01 §6.6: close a tunnel idle this long (minimum default 1800 s).
    tunnel_idle_timeout: float = 1800.0
    #: 407 for out-of-dialog requests from clients towards other domains (RFC 3261 §22.3).
    authenticate_outgoing: bool = True
    #: Record-Route dialog-creating requests (RFC 3261 §16.6 step 4).
    record_route: bool = True
    #: Host (e.g. our IP address) our Record-Route carries instead of ``domain``, with the
    #: port of our TLS listener: ``sips:127.0.0.1:5061;transport=tls;lr``. For peer proxies
    #: that cannot resolve our domain; a Route naming it is ours (RFC 3261 §16.4).
    record_route_host: str | None = None

    def __post_init__(self) -> None:
        if not self.domain or any(c in self.domain for c in " \t\r\n@:;<>"):
            raise ConfigError(f"domain {self.domain!r} is not a host name")
        if not 1 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ConfigError("need 1 <= min_expires <= default_expires <= max_expires")
        if self.min_expires > 3600:
            # RFC 3261 §10.3: 423 only for intervals below one hour.
            raise ConfigError("min_expires above 3600 cannot be enforced with 423")
        if self.nonce_lifetime <= 0:
            raise ConfigError("nonce_lifetime must be positive")
        if not self.algorithms:
            raise ConfigError("offer at least one Digest algorithm")
        if not self.listen:
            raise ConfigError("listen on at least one address")
        if bool(self.certificate_chain) != (self.private_key is not None):
            raise ConfigError("certificate_chain and private_key go together")
        if self.record_route_host is not None and not _is_host(self.record_route_host):
            raise ConfigError(
                f"record_route_host {self.record_route_host!r} is not a host name or address"
            )
        if self.tunnel_idle_timeout <= 0:
            raise ConfigError("tunnel_idle_timeout must be positive")
        for route_domain, target in self.routes.items():
            if not route_domain or any(c in route_domain for c in " \t\r\n@:;<>"):
                raise ConfigError(f"route domain {route_domain!r} is not a host name")
            host, sep, port = target.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"route for {route_domain}: {target!r} is not host:port")
            if route_domain.lower() == self.domain.lower():
                raise ConfigError(f"a route for our own domain {route_domain!r} would loop")

    @property
    def effective_realm(self) -> str:
        return self.realm or self.domain

    @property
    def needs_tls(self) -> bool:
        return any(a.transport == "tls" for a in self.listen)

    def credentials(self) -> InMemoryCredentials:
        """H(A1) for every user and offered algorithm (passwords are not kept)."""
        store = InMemoryCredentials()
        realm = self.effective_realm
        for username, secret in self.users.items():
            entry = UserEntry(password=secret) if isinstance(secret, str) else secret
            if entry.password is not None:
                store.add_password(username, realm, entry.password, self.algorithms)
            for algorithm in self.algorithms:
                ha1 = entry.ha1.get(algorithm.hash_name)
                if ha1 is not None:
                    store.add_ha1(username, realm, algorithm, ha1)
        return store

    def tls_identity(self) -> tuple[tuple[x509.Certificate, ...], PrivateKey]:
        """The server's chain (leaf first) and key, from memory or the PEM files."""
        if self.private_key is not None:
            return self.certificate_chain, self.private_key
        if self.cert_path is None or self.key_path is None:
            raise ConfigError("a TLS listener needs a certificate and a key (--cert, --key)")
        return load_identity(self.cert_path, self.key_path)


def _is_host(text: str) -> bool:
    """A host name or an IP address (IPv6 with or without brackets), with no port."""
    if text.startswith("[") != text.endswith("]"):
        return False
    bare = text[1:-1] if text.startswith("[") else text
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            return False
        return True
    return bool(bare) and not any(c in bare for c in " \t\r\n@;<>,/?[]")


def load_identity(
    cert_path: Path, key_path: Path
) -> tuple[tuple[x509.Certificate, ...], PrivateKey]:
    """Read a PEM chain (leaf first) and an unencrypted PEM private key."""
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_path.read_bytes()))
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load the TLS identity: {exc}") from exc
    if not isinstance(key, PrivateKey):
        raise ConfigError(f"unsupported private key type {type(key).__name__}")
    return chain, key


def load_users(path: Path) -> dict[str, UserEntry]:
    """Parse the ``[users]`` table of a TOML file (see the module docstring)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read users file {path}: {exc}") from exc
    table = data.get("users")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [users] table")
    users: dict[str, UserEntry] = {}
    for name, value in table.items():
        if isinstance(value, str):
            users[name] = UserEntry(password=value)
        elif isinstance(value, dict):
            users[name] = _user_table(path, name, value)
        else:
            raise ConfigError(f"{path}: user {name!r} must be a password string or a table")
    return users


def _user_table(path: Path, name: str, value: dict[str, object]) -> UserEntry:
    password = value.get("password")
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"{path}: password of {name!r} must be a string")
    ha1: dict[str, str] = {}
    for key, item in value.items():
        if key == "password":
            continue
        hash_name = _HA1_KEYS.get(key.lower())
        if hash_name is None or not isinstance(item, str):
            raise ConfigError(f"{path}: user {name!r}: unknown key {key!r}")
        ha1[hash_name] = item.lower()
    try:
        return UserEntry(password=password, ha1=ha1)
    except ConfigError as exc:
        raise ConfigError(f"{path}: user {name!r}: {exc}") from None
