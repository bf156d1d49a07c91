"""``softphone proxy``: run the registrar standalone until SIGINT/SIGTERM.

    softphone proxy --domain example.test --listen 127.0.0.1:5061 \\
        --cert cert.pem --key key.pem --users users.toml

``--route biloxi.test=127.0.0.1:5071`` (repeatable) sends requests for another domain to its
proxy over TLS, whose certificate must name that domain and chain to a ``--peer-ca``;
``--tunnel-idle-timeout`` closes idle sipsec tunnels (default 1800 s, draft §6.6);
``--no-authenticate-outgoing`` stops the 407 on calls to other domains.

``--listen`` may be repeated; ``tcp:HOST:PORT`` adds a plain TCP listener (port 0: any free
port). Once listening, one JSON line goes to stdout, for scripts and the demo network::

    {"event": "listening", "domain": "example.test", "tls_port": 5061, "tcp_port": null,
     "listen": [{"transport": "tls", "host": "127.0.0.1", "port": 5061}],
     "fingerprint_sha256": "AB:CD:..."}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from softphone.server.config import ConfigError, ListenAddress, RegistrarConfig, load_users
from softphone.server.registrar import Registrar

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone proxy",
        description=(
            "The softphone's registrar, proxy and sipsec relay: Digest (SHA-256, MD5) over "
            "TLS, RFC 5626 flows, RFC 3261 §16 routing, draft-gurbani-sip-sipsec §6.6 tunnels."
        ),
    )
    parser.add_argument("--domain", required=True, help="the SIP domain served (and realm)")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="[tcp:]HOST:PORT",
        help="listen address (TLS unless prefixed tcp:); repeatable; default 127.0.0.1:5061",
    )
    parser.add_argument("--cert", type=Path, help="PEM certificate chain, leaf first")
    parser.add_argument("--key", type=Path, help="PEM private key (unencrypted)")
    parser.add_argument("--users", type=Path, required=True, help='TOML: [users] alice = "pw"')
    parser.add_argument("--realm", help="Digest realm (default: the domain)")
    parser.add_argument("--min-expires", type=int, default=60)
    parser.add_argument("--max-expires", type=int, default=3600)
    parser.add_argument("--default-expires", type=int, default=None)
    parser.add_argument("--nonce-lifetime", type=float, default=300.0)
    parser.add_argument(
        "--route",
        action="append",
        metavar="DOMAIN=HOST:PORT",
        help="proxy of another domain, reached over TLS; repeatable",
    )
    parser.add_argument(
        "--peer-ca",
        action="append",
        type=Path,
        metavar="FILE",
        help="PEM CA certificate(s) verifying the routed proxies (RFC 5922); repeatable",
    )
    parser.add_argument(
        "--tunnel-idle-timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="close a sipsec tunnel idle this long (draft §6.6 default: 1800 s)",
    )
    parser.add_argument(
        "--no-authenticate-outgoing",
        action="store_true",
        help="do not challenge (407) requests from clients towards other domains",
    )
    parser.add_argument(
        "--no-record-route", action="store_true", help="do not Record-Route dialogs"
    )
    parser.add_argument(
        "--record-route-host",
        metavar="HOST",
        default=None,
        help="host or IP address our Record-Route carries (with our TLS port) instead of the "
        "domain, for peer proxies that cannot resolve it",
    )
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING...")
    return parser


def parse_routes(values: Sequence[str] | None) -> dict[str, str]:
    """``DOMAIN=HOST:PORT`` items → the ``routes`` mapping (ConfigError when malformed)."""
    routes: dict[str, str] = {}
    for text in values or ():
        domain, sep, target = text.partition("=")
        if not sep or not domain.strip() or not target.strip():
            raise ConfigError(f"--route {text!r} is not DOMAIN=HOST:PORT")
        routes[domain.strip().lower()] = target.strip()
    return routes


def load_peer_anchors(paths: Sequence[Path] | None) -> tuple[x509.Certificate, ...]:
    anchors: list[x509.Certificate] = []
    for path in paths or ():
        try:
            anchors += x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load --peer-ca {path}: {exc}") from exc
    return tuple(anchors)


def config_from_args(args: argparse.Namespace) -> RegistrarConfig:
    listen = tuple(ListenAddress.parse(text) for text in (args.listen or ["127.0.0.1:5061"]))
    max_expires: int = args.max_expires
    default = args.default_expires if args.default_expires is not None else max_expires
    return RegistrarConfig(
        domain=args.domain,
        users=load_users(args.users),
        listen=listen,
        cert_path=args.cert,
        key_path=args.key,
        realm=args.realm,
        min_expires=args.min_expires,
        max_expires=max_expires,
        default_expires=default,
        nonce_lifetime=args.nonce_lifetime,
        routes=parse_routes(args.route),
        peer_anchors=load_peer_anchors(args.peer_ca),
        tunnel_idle_timeout=args.tunnel_idle_timeout,
        authenticate_outgoing=not args.no_authenticate_outgoing,
        record_route=not args.no_record_route,
        record_route_host=args.record_route_host,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; 0 on a clean stop, 2 for a bad configuration."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"softphone proxy: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(config))
    except ConfigError as exc:
        print(f"softphone proxy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"softphone proxy: cannot listen: {exc}", file=sys.stderr)
        return 1


async def _run(config: RegistrarConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    registrar = Registrar(config)
    await registrar.start()
    try:
        listen = registrar.listening
        ports = {t: next((p for tt, _, p in listen if tt == t), None) for t in ("tls", "tcp")}
        line = {
            "event": "listening",
            "domain": config.domain,
            "tls_port": ports["tls"],
            "tcp_port": ports["tcp"],
            "listen": [{"transport": t, "host": h, "port": p} for t, h, p in listen],
            "fingerprint_sha256": registrar.fingerprint,
        }
        print(json.dumps(line), flush=True)
        await stop.wait()
    finally:
        await registrar.close()
    return 0
