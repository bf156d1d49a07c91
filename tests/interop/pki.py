"""Test PKI for the interop peers: one CA and the server certificates a TLS test needs.

Generated with ``cryptography`` into a directory (PEM files a real server such as Kamailio can
read). ECDSA P-256 by default because it is fast; ``key_type="rsa"`` gives RSA-2048.

Profiles of the server certificate (``LabPKI.server(name)``):

* ``good``        signed by the test CA, CN + SAN ``DNS:example.test``, ``URI:sip:example.test``
* ``selfsigned``  same names, but its own issuer (nobody trusts it)
* ``unknownca``   same names, signed by a second CA nobody trusts (``otherca``)
* ``wrongname``   signed by the test CA, but for ``wrong.test`` (name-mismatch tests)
* ``expired``     signed by the test CA, right names, validity ended yesterday
* ``good-ip``     like ``good``, plus SAN ``IP:127.0.0.1`` and ``DNS:127.0.0.1`` (made on demand,
  not in ``CERT_PROFILES``): for peers such as linphonec that reach the proxy by its IP and
  check the name against it (mbedtls 2.28 compares only string SANs, hence the DNS entry)

Client certificates for mutual-TLS experiments: ``LabPKI.client("alice")`` (signed by the test
CA, SAN ``URI:sip:alice@example.test``).

    pki = LabPKI.create(tmp_dir)
    good = pki.server("good")
    good.cert_path, good.key_path, good.fingerprint     # 32-byte SHA-256 over the DER
    pki.ca_cert_path                                    # the trust anchor clients load
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CERT_PROFILES", "DOMAIN", "CertFiles", "CertProfile", "LabPKI"]

DOMAIN = "example.test"
LOOPBACK = "127.0.0.1"
CertProfile = Literal["good", "selfsigned", "unknownca", "wrongname", "expired"]
CERT_PROFILES: tuple[CertProfile, ...] = ("good", "selfsigned", "unknownca", "wrongname", "expired")
KeyType = Literal["ec", "rsa"]
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertFiles:
    """A certificate (PEM file), its private key (PEM file) and what identifies it."""

    name: str
    cert_path: Path
    key_path: Path
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 over the DER encoding (the form :mod:`softphone.security.pins` stores)."""
        return hashlib.sha256(self.der).digest()

    @property
    def fingerprint_hex(self) -> str:
        """``AB:12:...``: upper-case, colon separated (the form OpenSSL prints)."""
        return ":".join(f"{b:02X}" for b in self.fingerprint)


def _new_key(key_type: KeyType) -> _PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "SIP Lab") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: _PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class _Authority:
    cert: x509.Certificate
    key: _PrivateKey


@dataclass
class LabPKI:
    """A test CA, an untrusted second CA and the server/client certificates, in ``directory``."""

    directory: Path
    key_type: KeyType = "ec"
    _ca: _Authority | None = None
    _otherca: _Authority | None = None
    _issued: dict[str, CertFiles] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path, key_type: KeyType = "ec") -> LabPKI:
        """Generate the CAs and every server profile now (about 10 ms with EC keys)."""
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory=directory, key_type=key_type)
        pki._ca = pki._make_ca("ca", "Lab Test CA", "SIP Lab")
        pki._otherca = pki._make_ca("otherca", "Other Untrusted CA", "Evil Lab")
        for profile in CERT_PROFILES:
            pki.server(profile)
        return pki

    # --- paths ----------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        """The test CA certificate: the only trust anchor a client should load."""
        return self.directory / "ca.crt"

    @property
    def ca_cert(self) -> x509.Certificate:
        assert self._ca is not None
        return self._ca.cert

    @property
    def otherca_cert_path(self) -> Path:
        return self.directory / "otherca.crt"

    # --- issuing --------------------------------------------------------------------------

    def _make_ca(self, stem: str, cn: str, org: str) -> _Authority:
        key = _new_key(self.key_type)
        now = dt.datetime.now(dt.UTC)
        name = _name(cn, org)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_cert(self.directory / f"{stem}.crt", cert)
        _write_key(self.directory / f"{stem}.key", key)
        return _Authority(cert, key)

    def _issue(
        self,
        stem: str,
        *,
        cn: str,
        sans: list[x509.GeneralName],
        issuer: _Authority | None,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> CertFiles:
        key = _new_key(self.key_type)
        subject = _name(cn)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=self.key_type == "rsa",
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
        files = CertFiles(
            name=stem,
            cert_path=self.directory / f"{stem}.crt",
            key_path=self.directory / f"{stem}.key",
            cert=cert,
        )
        _write_cert(files.cert_path, cert)
        _write_key(files.key_path, key)
        self._issued[stem] = files
        return files

    def server(self, profile: str = "good") -> CertFiles:
        """The server certificate of ``profile`` (see the module docstring); made once."""
        if profile in self._issued:
            return self._issued[profile]
        now = dt.datetime.now(dt.UTC)
        valid = {
            "not_before": now - dt.timedelta(days=1),
            "not_after": now + dt.timedelta(days=3650),
        }
        right = [x509.DNSName(DOMAIN), x509.UniformResourceIdentifier(f"sip:{DOMAIN}")]
        if profile == "good":
            return self._issue("good", cn=DOMAIN, sans=right, issuer=self._ca, **valid)
        if profile == "good-ip":
            by_ip = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName(LOOPBACK)]
            return self._issue("good-ip", cn=DOMAIN, sans=right + by_ip, issuer=self._ca, **valid)
        if profile == "selfsigned":
            return self._issue("selfsigned", cn=DOMAIN, sans=right, issuer=None, **valid)
        if profile == "unknownca":
            return self._issue("unknownca", cn=DOMAIN, sans=right, issuer=self._otherca, **valid)
        if profile == "wrongname":
            wrong = [x509.DNSName("wrong.test"), x509.UniformResourceIdentifier("sip:wrong.test")]
            return self._issue("wrongname", cn="wrong.test", sans=wrong, issuer=self._ca, **valid)
        if profile == "expired":
            return self._issue(
                "expired",
                cn=DOMAIN,
                sans=right,
                issuer=self._ca,
                not_before=now - dt.timedelta(days=60),
                not_after=now - dt.timedelta(days=1),
            )
        raise ValueError(f"unknown certificate profile {profile!r}; one of {CERT_PROFILES}")

    def client(self, user: str) -> CertFiles:
        """A client certificate for ``sip:<user>@example.test`` signed by the test CA."""
        stem = f"client-{user}"
        if stem in self._issued:
            return self._issued[stem]
        now = dt.datetime.now(dt.UTC)
        return self._issue(
            stem,
            cn=user,
            sans=[x509.UniformResourceIdentifier(f"sip:{user}@{DOMAIN}")],
            issuer=self._ca,
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=3650),
        )
