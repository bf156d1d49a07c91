"""The location service: bindings per address-of-record, by the rules of RFC 3261 §10.3.

Pure: requests and ``now`` (seconds, monotonic, the caller's clock) in, results out; no I/O.

:meth:`LocationService.register` applies one authenticated REGISTER to the bindings of its
AOR (the registrar has already checked the domain, authenticated the user and authorised them
for the AOR, §10.3 steps 1-4) and returns a :class:`RegisterResult`: the status to answer and,
for a 2xx, every current binding with the expiry the registrar chose (§10.3 step 8).

The rules, step by step:

* expiry of each contact (§10.3 step 6): its ``expires`` parameter, else the ``Expires``
  header, else ``default_expires``; a requested interval above 0 and below ``min_expires`` is
  refused with 423 and ``Min-Expires`` (§10.3 step 7, §20.23); above ``max_expires`` it is
  shortened (§10.2.1.1: the registrar chooses);
* ``Contact: *`` with ``Expires: 0`` removes every binding of the AOR, ``*`` with anything
  else is 400 (§10.2.2, §10.3 step 6);
* ordering (§10.3 step 7): a binding with the request's Call-ID and a CSeq lower than or
  equal to the stored one makes the whole request fail (500): nothing is committed unless
  every update succeeds;
* RFC 5626 §6 outbound: a contact with ``+sip.instance`` and ``reg-id`` binds the AOR to the
  pair (instance, reg-id) and to the *flow* the REGISTER arrived on; a new registration of the
  same pair replaces the flow; :meth:`flow_lost` removes the bindings of a flow that died.
  Only one contact with a non-zero expiry may then be registered (400 otherwise); a REGISTER
  that did not reach us first hop without an ``ob`` Path is not outbound (439 if the client
  asked for it, else the reg-id is ignored).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from softphone.sip.errors import ParseError
from softphone.sip.headers import NameAddr, parse_int_header, parse_name_addr, parse_option_tags
from softphone.sip.message import Request
from softphone.sip.uri import URI, SipURI

__all__ = [
    "MAX_DELTA_SECONDS",
    "Binding",
    "LocationService",
    "RegisterResult",
    "canonical_aor",
]

#: delta-seconds larger than this are taken as this (RFC 3261 §10.2.1.1, §20.19).
MAX_DELTA_SECONDS = 2**32 - 1
_MAX_REG_ID = 2**31 - 1


def canonical_aor(uri: URI) -> str:
    """The AOR of a To URI (§10.3 step 5): ``sip:user@host``, parameters and port dropped,
    escapes decoded, host lower-cased; ``sips:`` and ``sip:`` name the same AOR (RFC 5630 §3.1.2).

    Raises ``ParseError`` (404 Not Found) for a URI that is not a SIP URI with a user.
    """
    if not isinstance(uri, SipURI) or not uri.user:
        raise ParseError("the To URI is not a SIP address-of-record", 404)
    return f"sip:{uri.user}@{uri.host.lower()}"


@dataclass(frozen=True, eq=False)
class Binding:
    """One contact bound to an AOR (RFC 3261 §10.3, RFC 5626 §6).

    ``contact`` keeps the URI and every contact parameter as received, without ``expires``.
    ``instance``/``reg_id`` are set for an outbound binding, which then also records the
    ``flow`` (an opaque token from the transport layer) it must be reached over.
    """

    aor: str
    contact: NameAddr
    call_id: str
    cseq: int
    registered_at: float
    expires: int  # seconds from registered_at, as granted
    instance: str | None = None
    reg_id: int | None = None
    flow: str | None = None
    path: tuple[str, ...] = ()

    @property
    def uri(self) -> URI:
        return self.contact.uri

    @property
    def outbound(self) -> bool:
        return self.reg_id is not None

    @property
    def expires_at(self) -> float:
        return self.registered_at + self.expires

    def remaining(self, now: float) -> int:
        """Whole seconds left (rounded up, so a live binding never shows 0)."""
        return max(0, math.ceil(self.expires - (now - self.registered_at)))

    def alive(self, now: float) -> bool:
        return now - self.registered_at < self.expires

    def contact_value(self, now: float) -> str:
        """The Contact value for a 200: the contact with ``expires`` = time left (§10.3 step 8)."""
        params = {k: v for k, v in self.contact.params.items() if k != "expires"}
        params["expires"] = str(self.remaining(now))
        return str(self.contact.copy(params=params))

    def same_key(self, other: Binding) -> bool:
        """Whether ``other`` is the same binding (RFC 5626 pair, else §19.1.4 URI equality)."""
        if self.outbound or other.outbound:
            return (self.instance, self.reg_id) == (other.instance, other.reg_id)
        return self.uri == other.uri


@dataclass(frozen=True)
class RegisterResult:
    """What to answer a REGISTER: ``status_code`` and ``reason``; for a 2xx, ``bindings``
    (all current bindings of the AOR) and ``contacts`` (their Contact values with expires);
    ``min_expires`` for a 423; ``outbound`` when the response needs ``Require: outbound``
    (RFC 5626 §6); ``path`` the Path values to echo (RFC 3327 §5.3)."""

    status_code: int
    reason: str
    bindings: tuple[Binding, ...] = ()
    contacts: tuple[str, ...] = ()
    min_expires: int | None = None
    outbound: bool = False
    path: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass
class _Requested:
    """One contact of the request with its requested interval."""

    contact: NameAddr
    expires: int
    instance: str | None
    reg_id: int | None


class LocationService:
    """Bindings per AOR (see the module docstring for the rules it applies)."""

    def __init__(
        self, *, min_expires: int = 60, max_expires: int = 3600, default_expires: int = 3600
    ) -> None:
        if not 1 <= min_expires <= default_expires <= max_expires:
            raise ValueError("need 1 <= min_expires <= default_expires <= max_expires")
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self._table: dict[str, list[Binding]] = {}

    def __repr__(self) -> str:
        count = sum(len(b) for b in self._table.values())
        return f"LocationService({len(self._table)} AORs, {count} bindings)"

    # -- queries ------------------------------------------------------------------------------

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor`` (canonical form, see :func:`canonical_aor`)."""
        return [b for b in self._table.get(aor, ()) if b.alive(now)]

    def aors(self, now: float) -> list[str]:
        return [aor for aor in self._table if self.bindings(aor, now)]

    def __iter__(self) -> Iterator[Binding]:
        for bindings in self._table.values():
            yield from bindings

    # -- changes ------------------------------------------------------------------------------

    def expire(self, now: float) -> list[Binding]:
        """Forget the bindings whose time ran out; returns them."""
        gone: list[Binding] = []
        for aor in list(self._table):
            keep = [b for b in self._table[aor] if b.alive(now)]
            gone += [b for b in self._table[aor] if not b.alive(now)]
            self._store(aor, keep)
        return gone

    def flow_lost(self, flow: str) -> list[Binding]:
        """The connection ``flow`` is gone: its outbound bindings go with it (RFC 5626 §6)."""
        gone: list[Binding] = []
        for aor in list(self._table):
            keep = [b for b in self._table[aor] if b.flow != flow]
            gone += [b for b in self._table[aor] if b.flow == flow]
            self._store(aor, keep)
        return gone

    def register(
        self, request: Request, aor: str, now: float, *, flow: str | None = None
    ) -> RegisterResult:
        """Apply a REGISTER for ``aor`` that arrived on ``flow`` (§10.3 steps 6-8).

        Raises ``ParseError`` (answer with its status, 400) for a malformed Contact, Expires
        or Supported header field.
        """
        call_id, cseq = request.call_id, request.cseq.seq
        current = self.bindings(aor, now)
        header_expires = _header_expires(request)
        if request.contact_wildcard:
            return self._remove_all(aor, current, header_expires, now, call_id=call_id, cseq=cseq)
        outbound_ok, failure = _outbound_allowed(request)
        if failure is not None:
            return failure
        requested = [
            self._requested(contact, header_expires, outbound_ok) for contact in request.contacts
        ]
        if sum(1 for r in requested if r.expires > 0 and r.reg_id is not None) and (
            sum(1 for r in requested if r.expires > 0) > 1
        ):
            return RegisterResult(400, "Only one contact may be registered with reg-id")
        too_brief = [r for r in requested if 0 < r.expires < self.min_expires]
        if too_brief:
            return RegisterResult(423, "Interval Too Brief", min_expires=self.min_expires)
        path = tuple(request.headers.get_all("Path"))
        updated = list(current)
        for item in requested:
            granted = min(item.expires, self.max_expires)
            binding = Binding(
                aor=aor,
                contact=item.contact.copy(
                    params={k: v for k, v in item.contact.params.items() if k != "expires"}
                ),
                call_id=call_id,
                cseq=cseq,
                registered_at=now,
                expires=granted,
                instance=item.instance,
                reg_id=item.reg_id,
                flow=flow if item.reg_id is not None else None,
                path=path,
            )
            problem = _apply(updated, binding, removal_by_uri=granted == 0)
            if problem is not None:
                return problem  # nothing committed (§10.3 step 7: all or nothing)
        self._store(aor, updated)
        outbound = any(r.reg_id is not None for r in requested)
        return self._ok(updated, now, outbound=outbound, path=path)

    # -- internals ----------------------------------------------------------------------------

    def _requested(
        self, contact: NameAddr, header_expires: int | None, outbound_ok: bool
    ) -> _Requested:
        raw = contact.params.get("expires")
        if raw is not None:
            expires = _delta_seconds(raw, "Contact expires parameter")
        elif header_expires is not None:
            expires = header_expires
        else:
            expires = self.default_expires
        instance = contact.params.get("+sip.instance")
        reg_id: int | None = None
        raw_reg_id = contact.params.get("reg-id")
        if outbound_ok and instance and raw_reg_id is not None:
            # RFC 5626 §6: a reg-id without an instance is ignored, not an error.
            reg_id = parse_int_header(raw_reg_id, "reg-id", maximum=_MAX_REG_ID)
            if reg_id < 1:
                raise ParseError("reg-id must be at least 1")
        return _Requested(contact, expires, instance or None, reg_id)

    def _remove_all(
        self,
        aor: str,
        current: list[Binding],
        header_expires: int | None,
        now: float,
        *,
        call_id: str,
        cseq: int,
    ) -> RegisterResult:
        if header_expires != 0:
            return RegisterResult(400, "Contact: * needs Expires: 0")
        for binding in current:
            if binding.call_id == call_id and cseq <= binding.cseq:
                return RegisterResult(500, "Out of order CSeq for this Call-ID")
        self._store(aor, [])
        return self._ok([], now, outbound=False, path=())

    def _ok(
        self, bindings: Sequence[Binding], now: float, *, outbound: bool, path: tuple[str, ...]
    ) -> RegisterResult:
        live = tuple(b for b in bindings if b.alive(now))
        return RegisterResult(
            200,
            "OK",
            bindings=live,
            contacts=tuple(b.contact_value(now) for b in live),
            outbound=outbound,
            path=path,
        )

    def _store(self, aor: str, bindings: list[Binding]) -> None:
        if bindings:
            self._table[aor] = bindings
        else:
            self._table.pop(aor, None)


def _apply(bindings: list[Binding], new: Binding, *, removal_by_uri: bool) -> RegisterResult | None:
    """Update ``bindings`` in place with ``new`` (§10.3 step 7); a RegisterResult on failure.

    An expiry of 0 for a contact without reg-id also removes outbound bindings of the same
    URI: a client unregistering by its Contact alone means all of them.
    """
    matches = [
        i
        for i, old in enumerate(bindings)
        if old.same_key(new) or (removal_by_uri and not new.outbound and old.uri == new.uri)
    ]
    for i in matches:
        old = bindings[i]
        if old.call_id == new.call_id and new.cseq <= old.cseq:
            return RegisterResult(500, "Out of order CSeq for this Call-ID")
    for i in reversed(matches):
        del bindings[i]
    if new.expires > 0:
        # An update keeps the binding's place; for an outbound pair it now names the new flow
        # (RFC 5626 §6: the registrar MUST update the flow of a re-registration).
        bindings.insert(matches[0] if matches else len(bindings), new)
    return None


def _header_expires(request: Request) -> int | None:
    raw = request.headers.get("Expires")
    return None if raw is None else _delta_seconds(raw, "Expires header")


def _delta_seconds(raw: str, what: str) -> int:
    """delta-seconds (§25.1); values beyond 2**32-1 are taken as 2**32-1 (§10.2.1.1)."""
    text = raw.strip(" \t")
    if not text.isascii() or not text.isdigit():
        raise ParseError(f"malformed {what} {raw[:20]!r}")
    return min(int(text[:12]) if len(text) <= 12 else MAX_DELTA_SECONDS, MAX_DELTA_SECONDS)


def _outbound_allowed(request: Request) -> tuple[bool, RegisterResult | None]:
    """Whether outbound processing applies (RFC 5626 §6), or the 439 to answer."""
    if len(request.vias) == 1:
        return True, None  # we are the first hop: the flow is the client's own connection
    paths = request.headers.get_all("Path")
    if paths and "ob" in _first_path_params(paths[0]):
        return True, None
    supported = parse_option_tags(request.headers.get_all("Supported"))
    wants = any("reg-id" in c.params for c in request.contacts)
    if wants and "outbound" in supported:
        return False, RegisterResult(439, "First Hop Lacks Outbound Support")
    return False, None


def _first_path_params(value: str) -> set[str]:
    uri = parse_name_addr(value).uri
    return set(uri.params) if isinstance(uri, SipURI) else set()
