"""sipsec calls: a CONNECT tunnel through the proxies and a nested end-to-end TLS inside it.

draft-gurbani-sip-sipsec-01 §6 (Figure 3), over the registration flow (RFC 5626): the
connection that carries the CONNECT becomes the tunnel (§6.6: the proxies "leave the TCP
connection over which the request and response traversed open"), so a sipsec call costs
CONNECT/200 + nested TLS 1.3 + INVITE/200 = 3 end-to-end round trips and no new connection.
The user agent then registers again on a new connection in the background (the proxy drops the
bindings of a flow that became a tunnel).

Caller (§6.4), :func:`dial`::

    CONNECT sips:bob@biloxi.test        Require/Proxy-Require: sipsec, no body, From anonymous
      407 → Digest (the calls' client), retried on the same flow
      420/405/501/403/404/480/486/603 → CallError with the reason in words
      2xx → Flow.detach() → nested TLS client (our identity certificate, TLS 1.3), bounded by
            account.sipsec_handshake_timeout: a proxy that parses what follows the 200 (Kamailio)
            or swallows it ends with "the proxy forwarded the CONNECT but did not go transparent"
          → the callee's certificate evaluated for the dialled AOR (TrustGate.check_identity):
            a question for the person when not clean; "changed since pinned" is never automatic
          → a Call inside the tunnel (TunnelHost): INVITE/200/ACK with SDES keys, BYE,
            then TLS close_notify and the outer connection closed.

Callee (§6.5), :func:`answer_connect`: ``Require: sipsec`` → the account's ``sipsec_accept``
policy (accept / reject / ask through the ``tunnel_answerer`` hook; nobody to ask: reject with
603) → stop reading the flow, 200, detach → nested TLS server *requesting* a client
certificate → the caller's AOR is the one its certificate names (no certificate: refused) →
trust as above (``Purpose.CLIENT``) → the INVITE inside must come From that AOR (else 403) →
the call rings showing the verified identity (:class:`~softphone.ua.events.PeerIdentity`).

Only one sipsec call at a time may take the registration flow, and not while another call uses
it: "finish the current call first" (caller) / 486 (callee).

What the person sees as the other end (``Call.peer``, the call window, history) is
``sipsec:bob@biloxi.test`` / ``sipsec:alice@atlanta.test`` (:func:`shown_peer`); the INVITE
inside the tunnel carries the ``sips:`` Request-URI (§6.2).

This module is the public face; the code is in :mod:`softphone.ua.sipsec_caller` (§6.4),
:mod:`softphone.ua.sipsec_callee` (§6.5) and :mod:`softphone.ua.tunnel` (the call host inside
the tunnel and the steps both ends share).
"""

from __future__ import annotations

from softphone.ua.sipsec_callee import answer_connect
from softphone.ua.sipsec_caller import dial
from softphone.ua.tunnel import (
    ANONYMOUS_URI,
    IncomingTunnel,
    SipsecCallError,
    TunnelAnswerer,
    TunnelHost,
    identity_state,
    is_sipsec_uri,
    shown_peer,
)

__all__ = [
    "ANONYMOUS_URI",
    "IncomingTunnel",
    "SipsecCallError",
    "TunnelAnswerer",
    "TunnelHost",
    "answer_connect",
    "dial",
    "identity_state",
    "is_sipsec_uri",
    "shown_peer",
]
