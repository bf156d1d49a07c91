"""sipsec calls end to end (draft-gurbani-sip-sipsec-01 §6.4-6.6) between real UserAgents
through the scriptable test proxy (tests/ua/sipsec_proxy.py): real TLS on loopback, the nested
TLS inside the CONNECT tunnel, SRTP audio both ways, and the attacks of issue 5."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.media.tone import ToneSource
from softphone.security.identity import IdentityMaterial, new_identity
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.transport.stream import TLSStream
from softphone.transport.tls import TLSConfig, TLSState, TLSVersion
from softphone.ua import sipsec_caller
from softphone.ua.account import Account, ResolveEntry, SipsecAccept
from softphone.ua.call import Call, CallError, CallPhase
from softphone.ua.events import (
    CallState,
    MediaStarted,
    PeerIdentity,
    TrustRequired,
    TunnelState,
)
from softphone.ua.history import CallHistory
from softphone.ua.registration import RegistrationState
from softphone.ua.sipsec import IncomingTunnel
from softphone.ua.trace import TraceEntry
from softphone.ua.useragent import Backoff, UserAgent
from tests.interop.helpers import Recorder, heard
from tests.transport import certs
from tests.ua.sipsec_proxy import PROXY_DOMAIN, SipsecProxy, ca_identity
from tests.ua.test_registration import EventLog

WAIT = 20.0


@dataclass
class Lab:
    ca: certs.Identity
    ca_file: Path
    alice: IdentityMaterial
    bob: IdentityMaterial
    carol: IdentityMaterial
    bob_ca: IdentityMaterial  # bob's identity issued by the test CA
    mallory_ca: IdentityMaterial  # a CA-valid certificate for another AOR
    fake_bob: IdentityMaterial  # self-signed, claims bob's AOR (the MITM's)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    ca = certs.make_ca("sipsec Test CA")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    now = dt.datetime.now(dt.UTC)
    return Lab(
        ca=ca,
        ca_file=ca_file,
        alice=new_identity("sip:alice@atlanta.test", now=now),
        bob=new_identity("sip:bob@biloxi.test", now=now),
        carol=new_identity("sip:carol@biloxi.test", now=now),
        bob_ca=ca_identity(ca, "sip:bob@biloxi.test"),
        mallory_ca=ca_identity(ca, "sip:mallory@biloxi.test"),
        fake_bob=new_identity("sip:bob@biloxi.test", now=now),
    )


class Answers:
    """Trust fixture: each question answered with the next planned decision."""

    def __init__(self, *decisions: TrustDecision) -> None:
        self.planned = list(decisions)
        self.asked: list[TrustDecisionRequired] = []

    async def __call__(self, required: TrustDecisionRequired) -> TrustDecision:
        self.asked.append(required)
        return self.planned.pop(0) if self.planned else TrustDecision.REJECT


@dataclass
class Party:
    ua: UserAgent
    events: EventLog
    answers: Answers
    traces: list[TraceEntry]
    incoming: list[Call]


@pytest.fixture
async def proxy(lab: Lab) -> AsyncIterator[SipsecProxy]:
    async with SipsecProxy(lab.ca) as p:
        yield p


@pytest.fixture
async def party(lab: Lab, proxy: SipsecProxy, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[UserAgent] = []

    async def make(
        aor: str,
        identity: IdentityMaterial,
        *decisions: TrustDecision,
        register: bool = True,
        **options: Any,
    ) -> Party:
        account = Account(
            aor=f"sips:{aor}",
            registrar=f"sips:{PROXY_DOMAIN}:{proxy.port}",
            resolve=(ResolveEntry(PROXY_DOMAIN, proxy.port, "127.0.0.1"),),
            ca_file=lab.ca_file,
            sipsec_handshake_timeout=options.pop("handshake_timeout", 5.0),
            sipsec_accept=SipsecAccept(options.pop("sipsec_accept", "accept")),
        )
        events, answers = EventLog(), Answers(*decisions)
        traces: list[TraceEntry] = []
        incoming: list[Call] = []

        def ring(call: Call) -> None:
            call.source, call.sink = ToneSource(440), Recorder()
            incoming.append(call)

        options.setdefault("auto_answer", True)
        options.setdefault("password", "unused")
        ua = UserAgent(
            account,
            pin_store_path=tmp_path / f"pins-{aor}.json",
            answerer=answers,
            on_event=events,
            anchors=(lab.ca.cert,),
            backoff=Backoff(base=0.05, cap=0.5),
            identity=identity,
            on_trace=traces.append,
            on_incoming_call=ring,
            **options,
        )
        made.append(ua)
        if register:
            await ua.register()
        return Party(ua, events, answers, traces, incoming)

    yield make
    for ua in made:
        await ua.close()


def tunnel_states(events: EventLog) -> list[str]:
    return [e.state for e in events.events if isinstance(e, TunnelState)]


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


def reregistered(party: Party, old: object) -> bool:
    ua = party.ua
    return (
        ua.state is RegistrationState.REGISTERED
        and ua.flow is not None
        and ua.flow is not old
        and not ua.flow.is_closed
    )


async def alice_calls_bob(alice: Party, bob: Party) -> tuple[Call, Call, Recorder]:
    """alice's sipsec call to bob (auto-answered), up on both sides: her call, his, and what
    she hears (she sends a 1000 Hz tone, he a 440 Hz one)."""
    heard_by_alice = Recorder()
    call = await alice.ua.call(
        "sipsec:bob@biloxi.test", source=ToneSource(1000), sink=heard_by_alice
    )
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: bool(bob.incoming), "bob's call")
    bob_call = bob.incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    return call, bob_call, heard_by_alice


# -- the honest path ------------------------------------------------------------------------------


async def test_sipsec_call_audio_both_ways_proxy_sees_no_invite_and_both_reregister(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    # Self-signed identities: each side is asked once and accepts for this call.
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    alice_flow, bob_flow = alice.ua.flow, bob.ua.flow
    call, bob_call, heard_by_alice = await alice_calls_bob(alice, bob)
    assert bob_call.peer == "sipsec:alice@atlanta.test"  # the verified identity, not a From
    # What each person sees is the scheme dialled (call window, CallState, history), not the
    # sips: Request-URI the INVITE inside the tunnel carries.
    assert call.peer == "sipsec:bob@biloxi.test"
    for p, shown in ((alice, "sipsec:bob@biloxi.test"), (bob, "sipsec:alice@atlanta.test")):
        states = [e for e in p.events.events if isinstance(e, CallState)]
        assert states and {e.peer for e in states} == {shown}
        history = CallHistory()
        for event in states:
            history.record(event, dt.datetime.now(dt.UTC))
        assert [entry.peer for entry in history.entries] == [shown]
    invites = [t for t in alice.traces if t.first_line.startswith("INVITE ")]
    assert [t.first_line for t in invites] == ["INVITE sips:bob@biloxi.test SIP/2.0"]

    # Audio both ways through SRTP keyed inside the tunnel.
    bob_heard = bob_call.sink
    assert isinstance(bob_heard, Recorder)
    await wait_until(lambda: heard_by_alice.loud_frames() > 25, "alice hearing bob")
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
    assert abs(heard(heard_by_alice) - 440) <= 20
    assert abs(heard(bob_heard) - 1000) <= 20
    for p in (alice, bob):
        started = await p.events.wait_for("media_started")
        assert isinstance(started, MediaStarted)
        assert started.signalling == "Encrypted end to end; servers only see that a call was set up"
        assert started.audio == "Audio encrypted end to end"
        assert started.keying == "sdes"
        identity = await p.events.wait_for("peer_identity")
        assert isinstance(identity, PeerIdentity)
        assert identity.identity_state == "claimed"  # self-signed, accepted once by a person
        assert identity.safety_number is not None
        assert len(p.answers.asked) == 1
    a_id = alice.events.of("peer_identity")[0]
    b_id = bob.events.of("peer_identity")[0]
    assert isinstance(a_id, PeerIdentity) and isinstance(b_id, PeerIdentity)
    assert a_id.peer_aor == "sip:bob@biloxi.test" and b_id.peer_aor == "sip:alice@atlanta.test"
    assert a_id.safety_number == b_id.safety_number  # both phones show the same number
    assert tunnel_states(alice.events)[:3] == ["connecting", "tunnel-open", "verified"]

    # The proxy saw a CONNECT (anonymous From, sipsec required) and then only opaque bytes.
    (connect,) = proxy.connects
    assert connect.headers.get("Require") == "sipsec"
    assert connect.headers.get("Proxy-Require") == "sipsec"
    assert "anonymous.invalid" in str(connect.from_.uri)
    assert "User-Agent" not in connect.headers and "Contact" not in connect.headers
    assert str(connect.uri) == "sips:bob@biloxi.test"
    relayed = bytes(proxy.tunnel_bytes)
    assert len(relayed) > 1000
    for secret in (b"INVITE", b"m=audio", b"a=crypto", b"alice@atlanta"):
        assert secret not in relayed

    # The trace shows the CONNECT over the TLS hop, the handshake and the INVITE in the tunnel.
    lines = [(t.first_line.split(" ")[0], t.protection) for t in alice.traces]
    assert ("CONNECT", "tls-hop") in lines
    assert ("TLS", "sipsec-tunnel") in lines
    assert ("INVITE", "sipsec-tunnel") in lines

    # Both re-registered on new connections; the proxy dropped the tunnel's bindings.
    await wait_until(lambda: reregistered(alice, alice_flow), "alice re-registering")
    await wait_until(lambda: reregistered(bob, bob_flow), "bob re-registering")
    assert len(proxy.registers) == 4

    # Hang-up: BYE inside, close_notify on the nested TLS, both ends closed.
    (tunnel,) = alice.ua._tunnels
    nested = tunnel.flow._stream
    assert isinstance(nested, TLSStream) and nested.tls.state is TLSState.ESTABLISHED
    await call.hangup()
    assert call.reason == "hung up"
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    assert bob_call.reason == "the other side hung up"
    await wait_until(lambda: "closed" in tunnel_states(alice.events), "alice's tunnel closed")
    await wait_until(lambda: "closed" in tunnel_states(bob.events), "bob's tunnel closed")
    assert nested.tls.state is TLSState.CLOSED  # close_notify sent (TLSConnection.close)
    assert alice.ua._tunnels == set() and bob.ua._tunnels == set()


async def test_ca_issued_certificate_needs_no_question(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", ca_identity(lab.ca, "sip:alice@atlanta.test"))
    bob = await party("bob@biloxi.test", lab.bob_ca)
    call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    identity = await alice.events.wait_for("peer_identity")
    assert isinstance(identity, PeerIdentity) and identity.identity_state == "certificate"
    assert alice.answers.asked == [] and bob.answers.asked == []
    await call.hangup()


# -- proxies that do not do sipsec ----------------------------------------------------------------


@pytest.mark.parametrize("code", [420, 405, 501])
async def test_proxy_without_sipsec_gives_a_clear_reason(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, code: int
) -> None:
    alice = await party("alice@atlanta.test", lab.alice)
    proxy.mode = f"answer:{code}"
    with pytest.raises(CallError) as info:
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert info.value.reason.startswith(
        f"the proxy at {PROXY_DOMAIN} does not support end-to-end (sipsec) calls ({code} "
    )
    assert "sips:bob@biloxi.test" in info.value.reason  # how to retry, with consent
    failed = alice.events.of("tunnel_state")[-1]
    assert isinstance(failed, TunnelState) and failed.state == "failed"
    # The flow is untouched: still registered on it, keep-alives back on.
    assert alice.ua.flow is not None and not alice.ua.flow.is_closed


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("non-transparent", "it answered the end-to-end TLS handshake with SIP (“SIP/2.0 400"),
        ("silent", "no end-to-end TLS answer within 1 s"),
    ],
)
async def test_proxy_that_does_not_go_transparent_is_explained_quickly(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, mode: str, words: str
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, handshake_timeout=1.0)
    await party("bob@biloxi.test", lab.bob)
    proxy.mode = mode
    with pytest.raises(CallError) as info:
        async with asyncio.timeout(WAIT):
            await alice.ua.call("sipsec:bob@biloxi.test")
    assert info.value.reason.startswith(
        "the proxy forwarded the CONNECT but did not go transparent: "
    )
    assert words in info.value.reason
    failed = alice.events.of("tunnel_state")[-1]
    assert isinstance(failed, TunnelState) and failed.proxy_transparent is False


async def test_fallback_to_sips_only_with_consent(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice)
    proxy.mode = "answer:420"
    with pytest.raises(CallError):
        await alice.ua.call("sipsec:bob@biloxi.test")
    # With consent the sips: call is placed (here the proxy cannot route INVITEs: 501).
    call = await alice.ua.call("sipsec:bob@biloxi.test", allow_sips_fallback=True)
    assert call.peer == "sips:bob@biloxi.test"
    await call.wait_for(CallPhase.ENDED, timeout=WAIT)


# -- attacks (issue 5) ----------------------------------------------------------------------------


async def test_a_proxy_terminating_the_tunnel_itself_is_a_question_then_refused(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.REJECT)
    proxy.mode, proxy.mitm_identity = "mitm", lab.fake_bob
    with pytest.raises(CallError) as info:
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert info.value.reason.startswith("not connected: ")
    assert len(alice.answers.asked) == 1
    question = alice.events.of("trust_required")[0]
    assert isinstance(question, TrustRequired)
    assert question.identity == "sip:bob@biloxi.test"
    assert alice.events.of("media_started") == []


@pytest.mark.parametrize("how", ["proxy-mitm", "bob-new-identity"])
async def test_a_changed_certificate_of_a_pinned_contact_is_loud(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, how: str
) -> None:
    # (e): bob's certificate was pinned ("Always trust"); another one now answers, either
    # the proxy's own (a) or bob's phone with a new identity.
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ALWAYS_TRUST)
    bob = await party(
        "bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE, TrustDecision.ACCEPT_ONCE
    )
    call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await call.hangup()
    # Next call: the proxy answers itself with a certificate claiming bob.
    await wait_until(lambda: alice.ua.state is RegistrationState.REGISTERED, "re-registered")
    await wait_until(lambda: alice.ua.flow is not None and not alice.ua.flow.is_closed, "flow")
    if how == "proxy-mitm":
        proxy.mode, proxy.mitm_identity = "mitm", lab.fake_bob
    else:
        bob.ua._identity = lab.fake_bob
        await wait_until(lambda: "bob@biloxi.test" in proxy.bindings, "bob re-registered")
    alice.answers.planned = [TrustDecision.REJECT]
    with pytest.raises(CallError) as info:
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert info.value.reason.startswith("not connected: ")
    loud = [e for e in alice.events.of("trust_required") if isinstance(e, TrustRequired)]
    assert loud[-1].changed and alice.answers.asked[-1].loud
    assert len(alice.answers.asked) == 2  # the first call asked once, then pinned


@pytest.mark.parametrize("who", ["carol", "mallory"])
async def test_b_c_forwarded_to_someone_else_is_a_question(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, who: str
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.REJECT)
    await party(f"{who}@biloxi.test", lab.carol if who == "carol" else lab.mallory_ca)
    proxy.mode = f"redirect:{who}@biloxi.test"
    with pytest.raises(CallError) as info:
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert info.value.reason.startswith("not connected: ")
    question = alice.answers.asked[0]
    assert "name-mismatch" in {p.value for p in question.report.problems}


async def test_d_a_flipped_byte_in_the_tunnel_fails_the_call(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    proxy.mode = "flip"
    ended = False
    try:
        async with asyncio.timeout(WAIT):
            call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
            await call.wait_for(CallPhase.ENDED)
            ended = True
    except CallError:
        ended = True
    assert ended
    assert proxy.flipped  # the byte was flipped inside the tunnel...
    assert alice.events.of("media_started") == []  # ...and no call came of it


async def test_407_on_connect_is_answered_and_the_next_connect_is_preemptive(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    proxy.require_digest("alice", "alice-secret-1")
    alice = await party(
        "alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE, password="alice-secret-1"
    )
    await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert proxy.challenges == 1 and len(proxy.connects) == 2
    assert proxy.connects[1].headers.get("Proxy-Authorization") is not None
    await call.hangup()
    # The challenge is cached: the next CONNECT carries credentials at once (nc+1).
    await wait_until(lambda: alice.ua.state is RegistrationState.REGISTERED, "re-registered")
    await wait_until(lambda: alice.ua.flow is not None and not alice.ua.flow.is_closed, "flow")
    await wait_until(lambda: "bob@biloxi.test" in proxy.bindings, "bob re-registered")
    alice.answers.planned = [TrustDecision.ACCEPT_ONCE]
    second = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    assert proxy.challenges == 1 and len(proxy.connects) == 3
    await second.hangup()
    assert "alice-secret-1" not in "".join(t.first_line for t in alice.traces)


async def test_invite_from_another_aor_than_the_certificate_gets_403(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    # alice's phone holds carol's certificate: bob's check passes for carol, but the INVITE
    # inside says From alice.
    alice = await party("alice@atlanta.test", lab.carol, TrustDecision.ACCEPT_ONCE)
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    call = await alice.ua.call("sipsec:bob@biloxi.test")
    await call.wait_for(CallPhase.ENDED, timeout=WAIT)
    assert call.status_code == 403
    assert bob.incoming == []
    assert bob.answers.asked[0].report.identity.value == "carol@biloxi.test"


async def test_caller_without_certificate_is_refused_by_the_callee(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    bob = await party("bob@biloxi.test", lab.bob)
    no_cert = IdentityMaterial(lab.alice.cert, lab.alice.key)
    alice.ua._identity = no_cert
    # A client that sends no certificate: its TLS config has none.
    original = sipsec_caller.tls_config

    def without_certificate(identity: IdentityMaterial, *, server: bool) -> TLSConfig:
        if server:
            return original(identity, server=True)
        return TLSConfig.client(min_version=TLSVersion.TLSv1_3)

    sipsec_caller.tls_config = without_certificate  # type: ignore[assignment]
    try:
        with pytest.raises(CallError):
            async with asyncio.timeout(WAIT):
                call = await alice.ua.call("sipsec:bob@biloxi.test")
                await call.wait_for(CallPhase.ENDED)
                raise CallError(call.reason)
    finally:
        sipsec_caller.tls_config = original  # type: ignore[assignment]
    await wait_until(lambda: "failed" in tunnel_states(bob.events), "bob refusing")
    failed = [e for e in bob.events.events if isinstance(e, TunnelState) and e.state == "failed"]
    assert failed[0].reason == "refused: the caller presented no certificate"
    assert bob.incoming == []


# -- the callee's policy --------------------------------------------------------------------------


async def test_callee_policy_reject_answers_603(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice)
    bob = await party("bob@biloxi.test", lab.bob, sipsec_accept="reject")
    with pytest.raises(CallError) as info:
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert "declined" in info.value.reason
    assert proxy.connect_responses == [603]
    assert tunnel_states(bob.events) == ["connecting", "failed"]


async def test_callee_policy_ask_uses_the_answerer_and_no_answerer_means_no(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    asked: list[IncomingTunnel] = []

    async def no(offer: IncomingTunnel) -> bool:
        asked.append(offer)
        return False

    await party("bob@biloxi.test", lab.bob, sipsec_accept="ask", tunnel_answerer=no)
    with pytest.raises(CallError):
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert len(asked) == 1 and asked[0].claimed_from == "sip:anonymous@anonymous.invalid"
    assert proxy.connect_responses == [603]


async def test_second_sipsec_call_while_one_runs_is_refused(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice)
    proxy.mode = "silent"
    await party("bob@biloxi.test", lab.bob)
    first = asyncio.ensure_future(alice.ua.call("sipsec:bob@biloxi.test"))
    await wait_until(lambda: bool(proxy.connects), "first CONNECT")
    with pytest.raises(CallError, match="finish the current call first"):
        await alice.ua.call("sipsec:bob@biloxi.test")
    with pytest.raises(CallError):
        await first


async def test_callee_policy_ask_with_nobody_to_ask_declines(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice)
    bob = await party("bob@biloxi.test", lab.bob, sipsec_accept="ask")
    with pytest.raises(CallError, match="declined"):
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert proxy.connect_responses == [603]
    # bob's flow was never taken: still registered on it.
    assert bob.ua.flow is not None and not bob.ua.flow.is_closed and not bob.ua.flow.detached


async def test_no_identity_says_how_to_make_one_and_sends_nothing(
    party: Callable[..., Any],
    proxy: SipsecProxy,
    lab: Lab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: object,
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty"))
    alice = await party("alice@atlanta.test", lab.alice)
    alice.ua._identity = None
    with pytest.raises(CallError, match=r"^create your identity first: softphone cert new"):
        await alice.ua.call("sipsec:bob@biloxi.test")
    assert proxy.connects == []


async def test_a_second_sipsec_call_right_after_the_first_waits_for_the_new_registration(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ALWAYS_TRUST)
    await party("bob@biloxi.test", lab.bob, TrustDecision.ALWAYS_TRUST)
    first = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await first.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await first.hangup()
    second = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await second.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    identity = alice.ua.peer_identity(second)
    assert identity is not None and identity.identity_state == "seen-before"  # pinned
    assert len(alice.answers.asked) == 1
    await second.hangup()


async def test_a_call_placed_while_the_last_one_settles_registers_at_once(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new registration waits TUNNEL_SETTLE after the tunnel's answer (softphone/ua/
    upkeep.py), unless a call needs it: here the settle and its bound are a minute, and the
    second call still connects within the 10 s REREGISTER_WAIT."""
    from softphone.ua import upkeep

    monkeypatch.setattr(upkeep, "TUNNEL_SETTLE", 60.0)
    monkeypatch.setattr(upkeep, "TUNNEL_SETUP_GRACE", 60.0)
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ALWAYS_TRUST)
    await party("bob@biloxi.test", lab.bob, TrustDecision.ALWAYS_TRUST)
    first = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await first.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.sleep(0.3)

    def alices() -> int:
        return sum(1 for r in proxy.registers if "alice@" in str(r.headers.get("To")))

    assert alices() == 1  # settling: alice has not registered again yet
    await first.hangup()
    second = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await second.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert alices() == 2
    await second.hangup()


async def test_dtls_srtp_keyed_inside_the_tunnel_is_end_to_end(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    """Issue 5: SRTP keying inside the tunnel may be SDES or a DTLS-SRTP fingerprint; UX.md:
    a fingerprint that travelled inside the tunnel cannot be swapped by a proxy, so the audio
    is "end to end" (over sips: hops DTLS-SRTP gets the "could intercept" words)."""
    from softphone.ua.account import MediaKeying

    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    alice.ua.account = dataclasses.replace(alice.ua.account, keying=MediaKeying.DTLS_SRTP)
    call, bob_call, heard_by_alice = await alice_calls_bob(alice, bob)
    await wait_until(lambda: heard_by_alice.loud_frames() > 25, "alice hearing bob")
    bob_heard = bob_call.sink
    assert isinstance(bob_heard, Recorder)
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
    assert abs(heard(bob_heard) - 1000) <= 20
    for p in (alice, bob):
        started = await p.events.wait_for("media_started")
        assert isinstance(started, MediaStarted)
        assert started.keying == "dtls-srtp"
        assert started.audio == "Audio encrypted end to end"
    relayed = bytes(proxy.tunnel_bytes)
    assert b"a=fingerprint" not in relayed and b"m=audio" not in relayed
    await call.hangup()


async def test_hold_and_resume_go_inside_the_tunnel_both_ways(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab
) -> None:
    """A re-INVITE inside the tunnel (RFC 3261 §14, RFC 3264 §8.4): the tunnel answered every
    re-INVITE with 488 until stop 20, so Hold in a sipsec call always failed ("the other side
    refused the change") while it worked in every other call."""
    alice = await party("alice@atlanta.test", lab.alice, TrustDecision.ACCEPT_ONCE)
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    call, bob_call, heard_by_alice = await alice_calls_bob(alice, bob)
    bob_heard = bob_call.sink
    assert isinstance(bob_heard, Recorder)
    await wait_until(lambda: bob_heard.loud_frames() > 10, "bob hearing alice")

    # alice holds: bob hears nothing more, both phones say who holds.
    await asyncio.wait_for(call.hold(), WAIT)
    assert call.held_by_us and call.phase is CallPhase.ESTABLISHED
    await wait_until(lambda: bob_call.held_by_peer, "bob seeing alice's hold")
    await asyncio.sleep(0.2)  # packets already on their way
    bob_heard.clear()
    await asyncio.sleep(0.4)
    assert bob_heard.loud_frames() == 0
    # bob holds too (the callee's re-INVITE, the other way through the tunnel), then lets go.
    await asyncio.wait_for(bob_call.hold(), WAIT)
    assert bob_call.held_by_us and bob_call.held_by_peer
    await wait_until(lambda: call.held_by_peer, "alice seeing bob's hold")
    await asyncio.wait_for(bob_call.resume(), WAIT)
    await wait_until(lambda: not call.held_by_peer, "alice seeing bob's resume")
    # alice resumes: audio both ways again.
    await asyncio.wait_for(call.resume(), WAIT)
    assert not call.held and call.phase is CallPhase.ESTABLISHED
    heard_by_alice.clear()
    await wait_until(lambda: bob_heard.loud_frames() > 10, "bob hearing alice again")
    await wait_until(lambda: heard_by_alice.loud_frames() > 10, "alice hearing bob again")
    assert abs(heard(bob_heard) - 1000) <= 20

    # Every re-INVITE went inside the tunnel; the proxy saw one CONNECT and opaque bytes.
    invites = [t for t in alice.traces if t.first_line.startswith("INVITE ")]
    sent = [t for t in invites if t.direction == "sent"]
    assert len(sent) == 3  # the call, alice's hold, alice's resume
    assert len(invites) - len(sent) == 2  # bob's hold and resume
    assert {t.protection for t in invites} == {"sipsec-tunnel"}
    assert len(proxy.connects) == 1
    relayed = bytes(proxy.tunnel_bytes)
    for secret in (b"INVITE", b"a=sendonly", b"a=crypto"):
        assert secret not in relayed
    held = [(e.by, e.held) for e in alice.events.events if type(e).__name__ == "CallHeld"]
    assert held == [("us", True), ("peer", True), ("peer", False), ("us", False)]
    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
