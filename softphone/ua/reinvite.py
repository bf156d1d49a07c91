"""The pieces of a re-INVITE that do not need a call: RFC 3261 §14 timing and the words.

A :class:`~softphone.ua.call.Call` modifies its session (hold, resume, new keys) with a
re-INVITE in the dialog (RFC 3261 §14, offer/answer of RFC 3264 §8). Rules kept here:

* §14.1 glare: a re-INVITE received while ours is pending gets 491; when ours gets 491 we try
  again after a random delay: 2.1-4 s if we own the dialog's Call-ID (we placed the call),
  0-2 s if not, in 10 ms units (:func:`glare_delay`).
* §14.2: a re-INVITE received while an INVITE server transaction of ours is still pending
  (or our offer in a 2xx waits for its answer in the ACK) gets 500 with a Retry-After chosen
  at random between 0 and 10 s (:func:`retry_after`).
* Downgrade (issue 4, UX.md "a silent downgrade"): once the audio is encrypted, an offer or
  answer without SRTP ends the call under the ``mandatory`` policy, with these words
  (:data:`DOWNGRADE_OFFER`, :data:`DOWNGRADE_ANSWER`), and is reported as a
  :class:`~softphone.ua.events.MediaDowngraded` event under ``optional``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from softphone.sdp.offer_answer import Offer
from softphone.sip.message import Request, Response

__all__ = [
    "DOWNGRADED_ANSWER",
    "DOWNGRADED_OFFER",
    "DOWNGRADE_ANSWER",
    "DOWNGRADE_OFFER",
    "GLARE_ATTEMPTS",
    "IncomingReinvite",
    "OutgoingReinvite",
    "glare_delay",
    "retry_after",
]

#: Call-ending reasons under the mandatory policy (shown to the person, sent in Reason).
DOWNGRADE_OFFER = "the other side tried to turn off encryption (re-INVITE without SRTP)"
DOWNGRADE_ANSWER = "the other side tried to turn off encryption (answer without SRTP)"
#: What the MediaDowngraded event says under the optional policy (the call goes on).
DOWNGRADED_OFFER = "the other side turned off encryption (re-INVITE without SRTP)"
DOWNGRADED_ANSWER = "the other side turned off encryption (answer without SRTP)"
#: How many times hold()/resume() send their re-INVITE when each one meets glare (491).
GLARE_ATTEMPTS = 4

_rng = random.SystemRandom()


def glare_delay(owns_call_id: bool, rng: random.Random = _rng) -> float:
    """RFC 3261 §14.1: seconds to wait after a 491 before sending the re-INVITE again."""
    if owns_call_id:
        return rng.randint(210, 400) / 100
    return rng.randint(0, 200) / 100


def retry_after(rng: random.Random = _rng) -> int:
    """RFC 3261 §14.2: the Retry-After of a 500 to a re-INVITE that overlaps another."""
    return rng.randint(0, 10)


@dataclass
class OutgoingReinvite:
    """Our re-INVITE in progress: the request, our offer, and the final response to come."""

    request: Request
    offer: Offer
    final: asyncio.Future[Response] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ack: Request | None = None  # the ACK of its 2xx, sent again for a retransmitted 2xx


@dataclass
class IncomingReinvite:
    """A re-INVITE without SDP that we answered with an offer in the 2xx (RFC 3261 §14.2,
    RFC 3264 §5): its answer comes in the ACK."""

    request: Request
    offer: Offer
    timer: asyncio.TimerHandle | None = None
