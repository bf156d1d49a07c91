"""Media direction attributes: ``a=sendrecv`` / ``sendonly`` / ``recvonly`` / ``inactive``
(RFC 8866 §6.7, RFC 3264 §5.1 and §6.1, hold in RFC 3264 §8.4 and RFC 6337 §5).

A direction is always read from the point of view of the endpoint that wrote the SDP: an offer
with ``a=sendonly`` means "I will send, do not send to me".
"""

from __future__ import annotations

from enum import Enum

__all__ = ["DIRECTION_ATTRIBUTES", "Direction"]


class Direction(Enum):
    """One of the four direction attributes; ``sendrecv`` is the default (RFC 8866 §6.7)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other end: sendonly <-> recvonly."""
        return Direction.from_flags(send=self.receives, recv=self.sends)

    def answer(self, local: Direction | None = None) -> Direction:
        """RFC 3264 §6.1 answer table for an offered direction ``self`` given what we want.

        sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive, sendrecv -> sendrecv;
        then narrowed by ``local`` (we put the call on hold by passing ``SENDONLY``)."""
        if local is None:
            local = Direction.SENDRECV
        return Direction.from_flags(
            send=self.receives and local.sends, recv=self.sends and local.receives
        )

    def without_send(self) -> Direction:
        """The same stream with our sending stopped (we hold and play no music, RFC 6337 §5.3:
        ``a=sendonly`` allows sending, it does not require it)."""
        return Direction.from_flags(send=False, recv=self.receives)

    def without_receive(self) -> Direction:
        """What an old-style hold (``c=0.0.0.0``, RFC 3264 §8.4) means: do not send to me."""
        return Direction.from_flags(send=self.sends, recv=False)


#: The attribute names, for scanning ``a=`` lines.
DIRECTION_ATTRIBUTES = frozenset(d.value for d in Direction)
