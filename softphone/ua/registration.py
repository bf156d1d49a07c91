"""REGISTER for one address of record: building the requests and judging the responses.

No I/O here (the :class:`~softphone.ua.useragent.UserAgent` sends and waits): this module says
what to send and what a response means, so each rule is tested on its own.

- RFC 3261 §10.2: Request-URI the registrar's domain, To and From the AOR, one Call-ID for every
  REGISTER of this boot cycle with the CSeq going up by one each time, ``Expires`` the interval
  asked for. §10.2.4: the interval granted is our Contact's ``expires`` in the 2xx (else the
  Expires header, else what we asked).
- RFC 5626 §4.2: with ``outbound`` on, the Contact carries ``+sip.instance="<urn:uuid:…>"`` and
  ``reg-id=1`` and the request says ``Supported: outbound, path``; a 2xx with ``outbound`` in
  Require/Supported says the registrar keeps the flow, and ``Flow-Timer`` (§4.4.1) how often to
  ping it.
- RFC 3261 §22 / RFC 8760: 401/407 are answered with :class:`~softphone.sip.digest.DigestClient`
  (SHA-256 preferred, MD5 accepted but reported as weak); a realm re-challenged without
  ``stale=true`` means the password is wrong: :class:`RegistrationError` with no retry, never a
  loop. A refresh re-uses the cached nonce (nc+1), so it costs one round trip.
- RFC 3261 §10.3 step 7 / §21.4.17: 423 Interval Too Brief is retried once with Min-Expires.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.digest import (
    Algorithm,
    AuthenticationFailedError,
    AuthHeader,
    DigestClient,
    NoUsableChallengeError,
    parse_credentials,
)
from softphone.sip.errors import ParseError
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import SipURI
from softphone.transport.flow import FlowTransport
from softphone.ua.account import Account

__all__ = [
    "MAX_ATTEMPTS",
    "REG_ID",
    "USER_AGENT",
    "Binding",
    "Failed",
    "Registration",
    "RegistrationError",
    "RegistrationState",
    "Retry",
    "refresh_delay",
]

USER_AGENT = "softphone/0.1"
#: RFC 5626 §4.2: one flow to one registrar, so one reg-id.
REG_ID = "1"
#: REGISTERs one registration attempt may send: the request, a 401/407 answer, a stale retry
#: or two, a 423 retry. More than that is a loop we refuse to run.
MAX_ATTEMPTS = 5
#: Status codes worth trying again later by themselves (RFC 3261 §21.5: server trouble; 408
#: and 480: nobody answered). Everything else (403, 404, a wrong password) needs a person.
_TRANSIENT = frozenset({408, 480, 500, 502, 503, 504})


class RegistrationState(enum.Enum):
    """Where the registration of the AOR stands."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    CLOSED = "closed"


class RegistrationError(Exception):
    """A REGISTER failed: ``reason`` in words for the person, ``status_code`` of the final
    response (None: no response, a refused certificate...), ``retryable``: whether trying
    again later may help without anyone changing anything."""

    def __init__(self, reason: str, *, status_code: int | None = None, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.retryable = retryable


@dataclass(frozen=True)
class Binding:
    """What a 2xx to REGISTER granted (RFC 3261 §10.2.4, RFC 5626 §4.2).

    ``algorithm`` is the Digest algorithm of the credentials that were accepted (None: the
    registrar asked for none) and ``weak`` says it is MD5 (RFC 8760 prefers SHA-256).
    """

    expires: int
    contact: str
    outbound: bool
    flow_timer: int | None
    algorithm: str | None
    weak: bool
    round_trips: int


@dataclass(frozen=True)
class Retry:
    """Send ``request`` (same transaction semantics: a new CSeq, a new branch)."""

    request: Request


@dataclass(frozen=True)
class Failed:
    error: RegistrationError


def refresh_delay(expires: int) -> float:
    """Seconds until the refresh of a binding granted for ``expires`` seconds: half of it.

    RFC 3261 §10.2.4 only says "before it expires"; half leaves a flow failure found at the
    refresh time enough of the interval to reconnect (with backoff) before the binding lapses.
    """
    return max(0.0, expires / 2)


@dataclass
class Registration:
    """The REGISTER dialogue of one account with its registrar (no I/O).

    Keeps the Call-ID, From tag and CSeq of RFC 3261 §10.2 and the Digest state, so a refresh
    carries credentials straight away (nc+1). :meth:`build` makes a request,
    :meth:`judge` says what a final response means for it.
    """

    account: Account
    digest: DigestClient
    instance_id: str | None = None
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    #: Expiry we ask for; raised by a 423's Min-Expires.
    expires: int = 0
    _attempts: int = field(default=0, init=False, repr=False)
    _raised_for_423: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.expires == 0:
            self.expires = self.account.expires

    # -- requests -----------------------------------------------------------------------------

    @property
    def request_uri(self) -> SipURI:
        return self.account.registrar_uri

    def contact_uri(self, local: tuple[str, int], transport: FlowTransport) -> SipURI:
        """Our Contact: the AOR's user at our end of the flow (RFC 3261 §10.2.1)."""
        aor = self.account.aor_uri
        params: dict[str, str | None] = {}
        if aor.scheme == "sip":
            params["transport"] = transport.lower()  # sips: implies TLS, and says it
        host, port = local
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return SipURI(aor.scheme, user=aor.user, host=host, port=port, params=params)

    def contact(self, local: tuple[str, int], transport: FlowTransport, expires: int) -> NameAddr:
        params: dict[str, str | None] = {}
        if self.account.outbound and self.instance_id:
            params["+sip.instance"] = f"<{self.instance_id}>"  # RFC 5626 §4.1
            params["reg-id"] = REG_ID
        if expires == 0:
            params["expires"] = "0"
        return NameAddr(self.contact_uri(local, transport), params=params)

    def build(
        self,
        local: tuple[str, int],
        transport: FlowTransport,
        *,
        expires: int | None = None,
        auth: list[AuthHeader] | None = None,
    ) -> Request:
        """A REGISTER asking for ``expires`` (default: :attr:`expires`; 0 removes our
        binding, RFC 3261 §10.2.2). ``auth`` defaults to pre-emptive credentials from the
        cached challenge (RFC 3261 §22.3: nc+1, no extra round trip)."""
        if expires is None:
            expires = self.expires
        uri = self.request_uri
        if auth is None:
            auth = self.digest.authorize("REGISTER", str(uri))
        self.cseq += 1
        aor = self.account.aor_uri
        host, port = local
        headers = Headers()
        via_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        # RFC 3581 rport: the registrar answers over the flow we opened, whatever our address.
        via = Via(transport, via_host, port, {"branch": new_branch(), "rport": None})
        headers.add("Via", str(via))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(aor, params={"tag": self.from_tag})))
        headers.add("To", str(NameAddr(aor)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", str(self.contact(local, transport, expires)))
        headers.add("Expires", str(expires))
        if self.account.outbound:
            headers.add("Supported", "outbound, path")
        headers.add("User-Agent", USER_AGENT)
        for header in auth:
            headers.add(header.name, header.value)
        return Request("REGISTER", uri, headers)

    # -- responses ----------------------------------------------------------------------------

    def judge(
        self,
        request: Request,
        response: Response,
        local: tuple[str, int],
        transport: FlowTransport,
    ) -> Binding | Retry | Failed:
        """What the final ``response`` to ``request`` means (module docstring)."""
        code = response.status_code
        if 200 <= code < 300:
            self._attempts = 0
            return self._binding(request, response)
        self._attempts += 1
        if self._attempts >= MAX_ATTEMPTS:
            self._attempts = 0
            return Failed(
                RegistrationError(
                    f"The registrar kept answering {code} {response.reason}; giving up",
                    status_code=code,
                    retryable=False,
                )
            )
        requested = _requested_expires(request)
        if code in (401, 407):
            return self._answer_challenge(request, response, local, transport, requested)
        if code == 423 and requested != 0:
            return self._interval_too_brief(response, local, transport)
        self._attempts = 0
        return Failed(_failure(response))

    def _answer_challenge(
        self,
        request: Request,
        response: Response,
        local: tuple[str, int],
        transport: FlowTransport,
        requested: int,
    ) -> Retry | Failed:
        code = response.status_code
        challenge_name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        sent_name = "Authorization" if code == 401 else "Proxy-Authorization"
        try:
            auth = self.digest.handle_challenge(
                code,
                response.headers.get_all(challenge_name),
                "REGISTER",
                str(request.uri),
                sent=request.headers.get_all(sent_name),
            )
        except AuthenticationFailedError as exc:
            self._attempts = 0
            return Failed(
                RegistrationError(
                    f"The registrar did not accept the password for {self.account.auth_username} "
                    f"(realm {exc.realm}): {exc.reason}. Check the user name and password; not "
                    "trying again by itself.",
                    status_code=code,
                    retryable=False,
                )
            )
        except (NoUsableChallengeError, ParseError) as exc:
            self._attempts = 0
            return Failed(
                RegistrationError(
                    f"The registrar asked for a login we cannot answer ({exc})",
                    status_code=code,
                    retryable=False,
                )
            )
        # Keep every other credential the request carried (another realm's answer).
        keep = [h for h in _carried_auth(request) if h.realm not in {a.realm for a in auth}]
        return Retry(self.build(local, transport, expires=requested, auth=[*keep, *auth]))

    def _interval_too_brief(
        self, response: Response, local: tuple[str, int], transport: FlowTransport
    ) -> Retry | Failed:
        text = response.headers.get("Min-Expires")
        minimum = int(text) if text is not None and text.strip().isdigit() else None
        if minimum is None or minimum <= self.expires or self._raised_for_423:
            self._attempts = 0
            return Failed(_failure(response))
        self._raised_for_423 = True
        self.expires = minimum  # RFC 3261 §10.2.8: retry with at least Min-Expires
        return Retry(self.build(local, transport))

    def _binding(self, request: Request, response: Response) -> Binding:
        mine = _find_contact(request, response, self.instance_id)
        expires = _granted_expires(request, response, mine)
        options = {
            o.strip().lower()
            for name in ("Require", "Supported")
            for o in response.headers.get_all(name)
        }
        flow_timer_text = response.headers.get("Flow-Timer")
        flow_timer = (
            int(flow_timer_text)
            if flow_timer_text and flow_timer_text.strip().isdigit() and int(flow_timer_text) > 0
            else None
        )
        auth = _carried_auth(request)
        self._raised_for_423 = False
        return Binding(
            expires=expires,
            contact=str(mine.uri) if mine is not None else request.headers.get("Contact") or "",
            outbound="outbound" in options,
            flow_timer=flow_timer,
            algorithm=auth[0].algorithm.value if auth else None,
            weak=any(a.weak for a in auth),
            round_trips=0,
        )


# -- helpers -----------------------------------------------------------------------------------


def _carried_auth(request: Request) -> list[AuthHeader]:
    """The credentials ``request`` carries, as AuthHeaders (realm, algorithm, weak)."""
    headers: list[AuthHeader] = []
    for name in ("Authorization", "Proxy-Authorization"):
        for value in request.headers.get_all(name):
            try:
                creds = parse_credentials(value)
            except ParseError:
                continue
            algorithm = Algorithm.from_token(creds.algorithm_name) or Algorithm.MD5
            headers.append(AuthHeader(name, value, creds.realm, algorithm, algorithm.weak))
    return headers


def _requested_expires(request: Request) -> int:
    text = request.headers.get("Expires")
    return int(text) if text is not None and text.isdigit() else 0


def _find_contact(request: Request, response: Response, instance_id: str | None) -> NameAddr | None:
    """Our binding among the 2xx's Contacts (RFC 3261 §10.2.4: the registrar lists them all;
    RFC 5626 §4.2: by +sip.instance and reg-id when outbound, else by URI)."""
    try:
        ours = request.contacts[0]
        theirs = response.contacts
    except (ParseError, IndexError):
        return None
    for contact in theirs:
        instance = (contact.params.get("+sip.instance") or "").strip('"')
        if (
            instance_id
            and instance == f"<{instance_id}>"
            and contact.params.get("reg-id")
            in (
                REG_ID,
                None,
            )
        ):
            return contact
    for contact in theirs:
        if contact.uri == ours.uri:
            return contact
    return None


def _granted_expires(request: Request, response: Response, mine: NameAddr | None) -> int:
    if mine is not None:
        text = mine.params.get("expires")
        if text is not None and text.isdigit():
            return int(text)
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return _requested_expires(request)


def _failure(response: Response) -> RegistrationError:
    code = response.status_code
    what = f"{code} {response.reason}"
    if code == 403:
        reason = f"The registrar refused the registration ({what}); not trying again by itself."
    elif code == 404:
        reason = f"The registrar does not know this address ({what})."
    elif code == 423:
        reason = f"The registrar wants a longer registration interval than allowed ({what})."
    elif code in _TRANSIENT:
        reason = f"The registrar could not register us right now ({what})."
    else:
        reason = f"The registrar refused the registration ({what})."
    return RegistrationError(reason, status_code=code, retryable=code in _TRANSIENT)
