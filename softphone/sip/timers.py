"""SIP transaction timers (RFC 3261 §17 and Table 4 of §A, RFC 6026 §8.4), driven by ``now``.

Nothing here reads a clock: a timer is a deadline computed from the ``now`` the caller passed
in, and the transaction machines ask :class:`TimerSet` which deadlines have passed when the
caller hands them a later ``now`` (the aioquic ``get_timer()`` / ``handle_timer(now)`` model).

Durations (RFC 3261 Table 4, with RFC 6026's L and M)::

    A  T1, doubling (INVITE request retransmit, unreliable only)      §17.1.1.2
    B  64*T1  INVITE transaction timeout                               §17.1.1.2
    D  >32 s unreliable, 0 reliable (wait for response retransmits)    §17.1.1.2
    E  T1, doubling up to T2 (non-INVITE retransmit, unreliable only)  §17.1.2.2
    F  64*T1  non-INVITE transaction timeout                           §17.1.2.2
    G  T1, doubling up to T2 (INVITE response retransmit, unreliable)  §17.2.1
    H  64*T1  wait for ACK receipt                                     §17.2.1
    I  T4 unreliable, 0 reliable (wait for ACK retransmits)            §17.2.1
    J  64*T1 unreliable, 0 reliable (wait for request retransmits)     §17.2.2
    K  T4 unreliable, 0 reliable (wait for response retransmits)       §17.1.2.2
    L  64*T1  wait for 2xx/INVITE retransmissions (server, Accepted)   RFC 6026 §8.4
    M  64*T1  wait for 2xx retransmissions and forks (client, Accepted) RFC 6026 §8.4
    TRYING  200 ms: send 100 Trying if the TU has not answered         §17.2.1
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Arm", "Timer", "TimerConfig", "TimerSet"]


class Timer(enum.Enum):
    """The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026 §8.4."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "TRYING"  # §17.2.1: the 200 ms after which the transaction sends 100 Trying itself


class Arm(enum.Enum):
    """How a transition (re)arms a timer.

    ``START`` uses the initial duration, ``DOUBLE`` doubles the last interval (Timer A,
    §17.1.1.2: not capped), ``DOUBLE_CAPPED`` doubles it up to T2 (Timers E and G,
    §17.1.2.2, §17.2.1), ``T2`` re-arms with T2 (Timer E in Proceeding, §17.1.2.2) and
    ``STOP`` cancels it.
    """

    START = "start"
    DOUBLE = "double"
    DOUBLE_CAPPED = "double-capped"
    T2 = "t2"
    STOP = "stop"


_RETRANSMIT = frozenset({Timer.A, Timer.E, Timer.G})


@dataclass(frozen=True)
class TimerConfig:
    """T1, T2, T4 and Timer D (RFC 3261 §17.1.1.1, Table 4); every other value derives.

    ``t1`` is the RTT estimate (500 ms default), ``t2`` the cap on non-INVITE request and
    INVITE response retransmit intervals (4 s), ``t4`` the time a message may stay in the
    network (5 s); ``d`` is Timer D on unreliable transports ("at least 32 seconds").
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0
    trying: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError("need 0 < T1 <= T2")
        if self.t4 < 0 or self.d < 0 or self.trying < 0:
            raise ValueError("timer durations must not be negative")

    def initial(self, timer: Timer, *, reliable: bool) -> float | None:
        """The first duration of ``timer``, or None when it is not used on this transport.

        §17.1.1.2, §17.1.2.2, §17.2.1: retransmission timers A, E and G are not set on a
        reliable transport; D, I, J and K are zero there.
        """
        if reliable and timer in _RETRANSMIT:
            return None
        t1_64 = 64 * self.t1
        durations: dict[Timer, float] = {
            Timer.A: self.t1,
            Timer.B: t1_64,
            Timer.D: 0.0 if reliable else self.d,
            Timer.E: self.t1,
            Timer.F: t1_64,
            Timer.G: self.t1,
            Timer.H: t1_64,
            Timer.I: 0.0 if reliable else self.t4,
            Timer.J: 0.0 if reliable else t1_64,
            Timer.K: 0.0 if reliable else self.t4,
            Timer.L: t1_64,
            Timer.M: t1_64,
            Timer.TRYING: self.trying,
        }
        return durations[timer]

    def next_interval(self, arm: Arm, last: float) -> float:
        """The interval after ``last`` for a backing-off retransmission timer."""
        if arm is Arm.DOUBLE:
            return 2 * last
        if arm is Arm.DOUBLE_CAPPED:
            return min(2 * last, self.t2)
        if arm is Arm.T2:
            return self.t2
        raise ValueError(f"{arm} is not a back-off rule")


@dataclass
class TimerSet:
    """The running timers of one transaction: deadline and last interval of each."""

    config: TimerConfig
    reliable: bool
    deadlines: dict[Timer, float] = field(default_factory=dict)
    intervals: dict[Timer, float] = field(default_factory=dict)

    def arm(self, timer: Timer, arm: Arm, now: float) -> bool:
        """Apply ``arm`` to ``timer`` at ``now``; True if it was set to fire immediately.

        A zero duration (Timers D, I, J, K on reliable transports) is reported so the
        machine fires it at once instead of waiting for the caller's next ``handle_timer``.
        """
        if arm is Arm.STOP:
            self.cancel(timer)
            return False
        if arm is Arm.START or timer not in self.intervals:
            duration = self.config.initial(timer, reliable=self.reliable)
        else:
            duration = self.config.next_interval(arm, self.intervals[timer])
        if duration is None:
            return False
        self.intervals[timer] = duration
        self.deadlines[timer] = now + duration
        return duration == 0

    def cancel(self, timer: Timer) -> None:
        self.deadlines.pop(timer, None)
        self.intervals.pop(timer, None)

    def keep_only(self, allowed: frozenset[Timer]) -> None:
        """Cancel every timer that does not run in the state just entered."""
        for timer in (set(self.deadlines) | set(self.intervals)) - allowed:
            self.cancel(timer)

    def clear(self) -> None:
        self.deadlines.clear()
        self.intervals.clear()

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values(), default=None)

    def pop_expired(self, now: float) -> Timer | None:
        """The earliest timer whose deadline is ``<= now`` (removed from the set), if any."""
        due = [(deadline, t.value, t) for t, deadline in self.deadlines.items() if deadline <= now]
        if not due:
            return None
        _, _, timer = min(due)
        del self.deadlines[timer]
        return timer
