"""The call history: one entry per call, kept in a JSON file that survives a crash.

The GUI (and anything else driving a :class:`~softphone.ua.UserAgent`) feeds every engine
event to :meth:`CallHistory.record` with the wall-clock time; the history follows the calls'
:class:`~softphone.ua.events.CallState` phases (RFC 3261 §13: calling, ringing, established,
ended) and what :class:`~softphone.ua.events.MediaStarted` and a peer-identity event said about
the call's protection (UX.md's three questions), and writes the file after each change with
:func:`softphone.storage.atomic_write`. So:

- a call is in the file from its first event (``ended`` false) and is finished in place;
- a crash leaves either the previous file or the new one, never half of one; an entry still
  unfinished when the file is loaded again is shown as *interrupted*;
- a corrupt or unreadable file is moved aside (``history.json.corrupt``), the history starts
  empty and :attr:`CallHistory.problem` says so in words: the phone keeps working.

No secret is ever stored: peers, times, reasons and UX.md's words only.

The file: ``{"version": 1, "entries": [{...}, ...]}``, an entry a line, newest first, at most
:data:`MAX_ENTRIES` entries, in ``<user data dir>/history.json`` (platformdirs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import platformdirs

from softphone.storage import APP_NAME, atomic_write
from softphone.ua.events import CallState, Event, MediaStarted

__all__ = [
    "MAX_ENTRIES",
    "CallHistory",
    "HistoryEntry",
    "default_history_path",
]

log = logging.getLogger(__name__)

VERSION = 1
MAX_ENTRIES = 500
#: The outcome of a call the phone stopped in the middle of (found unfinished when loading).
INTERRUPTED = "interrupted (the phone stopped during the call)"


def default_history_path() -> Path:
    """``<user data dir>/history.json`` (platformdirs: ~/.local/share/softphone on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "history.json"


@dataclass(frozen=True)
class HistoryEntry:
    """One call. ``started`` is when it began (UTC), ``answered`` when it was established
    (None: never answered), ``duration`` the seconds from the answer to the end (None while
    going on or never answered); ``outcome`` is how it ended in words ("answered",
    "busy", "missed"...); ``signalling``, ``audio`` and ``identity`` are UX.md's answers
    as the engine reported them ("" until known)."""

    call_id: str
    direction: str  # "outgoing" | "incoming"
    peer: str
    started: dt.datetime
    answered: dt.datetime | None = None
    duration: float | None = None
    outcome: str = "in progress"
    ended: bool = False
    signalling: str = ""
    audio: str = ""
    identity: str = ""  # claimed | certificate | seen-before | verified | changed | ""

    def __post_init__(self) -> None:
        if self.direction not in ("outgoing", "incoming"):
            raise ValueError(f"direction must be outgoing or incoming, not {self.direction!r}")
        if self.started.tzinfo is None:
            raise ValueError("started must be an aware datetime (UTC)")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = self.started.isoformat()
        data["answered"] = None if self.answered is None else self.answered.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        """Raises ``ValueError`` (or ``TypeError``/``KeyError``) for a malformed entry."""
        values = dict(data)
        values["started"] = dt.datetime.fromisoformat(values["started"])
        if values.get("answered") is not None:
            values["answered"] = dt.datetime.fromisoformat(values["answered"])
        for name in ("call_id", "direction", "peer", "outcome"):
            if not isinstance(values.get(name), str):
                raise ValueError(f"{name} must be text")
        return cls(**values)


class CallHistory:
    """The persisted history (see the module docstring); :attr:`entries` newest first."""

    def __init__(
        self, path: Path | None = None, *, max_entries: int = MAX_ENTRIES, background: bool = False
    ) -> None:
        """``background``: :meth:`save` hands the file write to a worker thread (the GUI: the
        event loop must not wait for a disk's fsync, issue 7), which writes the changes of
        :data:`WRITE_DELAY` at once; :meth:`flush` waits for it (and does not wait the
        delay)."""
        self.path = path if path is not None else default_history_path()
        self.max_entries = max_entries
        self.entries: list[HistoryEntry] = []
        #: What went wrong with the file, in words ("" when nothing did).
        self.problem = ""
        self._writer = _Writer(self._write, delay=WRITE_DELAY) if background else None

    @classmethod
    def load(
        cls, path: Path | None = None, *, max_entries: int = MAX_ENTRIES, background: bool = False
    ) -> CallHistory:
        """The history in ``path`` (empty if there is none yet); never raises for a bad file."""
        history = cls(path, max_entries=max_entries, background=background)
        try:
            raw = history.path.read_bytes()
        except FileNotFoundError:
            return history
        except OSError as exc:
            history.problem = f"The call history could not be read ({exc.strerror or exc})."
            log.warning("%s", history.problem)
            return history
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError("not a version 1 history file")
            items = data["entries"]
            if not isinstance(items, list):
                raise ValueError("entries is not a list")
            entries = [HistoryEntry.from_json(item) for item in items]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            history._set_aside(exc)
            return history
        history.entries = [
            e if e.ended else replace(e, ended=True, outcome=INTERRUPTED) for e in entries
        ][:max_entries]
        return history

    def _set_aside(self, exc: Exception) -> None:
        aside = self.path.with_name(self.path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)
        self.problem = (
            f"The call history file was damaged and was set aside as {aside.name}; "
            f"the history starts empty ({exc})."
        )
        log.warning("%s", self.problem)

    # -- following the engine -----------------------------------------------------------------

    def find(self, call_id: str) -> HistoryEntry | None:
        for entry in self.entries:
            if entry.call_id == call_id:
                return entry
        return None

    def record(self, event: Event, now: dt.datetime) -> HistoryEntry | None:
        """Take ``event`` (at wall-clock ``now``, UTC) into the history; returns the entry it
        changed (and saved), or None for an event about no call."""
        call_id = getattr(event, "call_id", None)
        if not isinstance(call_id, str) or not call_id:
            return None
        entry = self.find(call_id)
        if isinstance(event, CallState):
            updated = self._phase(entry, event, now)
        elif entry is None:
            return None  # media or identity of a call we never saw begin
        elif isinstance(event, MediaStarted):
            updated = replace(entry, signalling=event.signalling, audio=event.audio)
        elif event.name == "peer_identity":
            state = getattr(event, "identity_state", "")
            updated = replace(entry, identity=state if isinstance(state, str) else "")
        else:
            return None
        if updated is entry:
            return entry
        self._put(updated)
        self.save()
        return updated

    def _phase(
        self, entry: HistoryEntry | None, event: CallState, now: dt.datetime
    ) -> HistoryEntry:
        if entry is None:
            entry = HistoryEntry(event.call_id, event.direction, event.peer, now)
        if entry.ended:
            return entry
        if event.state == "established" and entry.answered is None:
            return replace(entry, answered=now, outcome="answered")
        if event.state == "ended":
            if entry.answered is not None:
                duration = max(0.0, (now - entry.answered).total_seconds())
                outcome = "answered"
                if event.reason and event.reason not in ("hung up", "the other side hung up"):
                    outcome = f"answered; ended: {event.reason}"
                return replace(entry, ended=True, duration=duration, outcome=outcome)
            outcome = event.reason or "not answered"
            if entry.direction == "incoming" and event.reason in ("cancelled", ""):
                outcome = "missed"
            return replace(entry, ended=True, outcome=outcome)
        return entry

    def _put(self, entry: HistoryEntry) -> None:
        for i, old in enumerate(self.entries):
            if old.call_id == entry.call_id:
                self.entries[i] = entry
                return
        self.entries.insert(0, entry)
        del self.entries[self.max_entries :]

    def save(self) -> None:
        """Write the file atomically; a failure is logged and kept in :attr:`problem`.
        In the background when asked for (:class:`_Writer`: the newest state wins)."""
        if self._writer is not None:
            self._writer.submit(tuple(self.entries))  # entries are frozen: a cheap snapshot
        else:
            self._write(tuple(self.entries))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every :meth:`save` so far is on disk; False if ``timeout`` ran out."""
        return True if self._writer is None else self._writer.flush(timeout)

    def _write(self, entries: tuple[HistoryEntry, ...]) -> None:
        text = _file_text(entries)
        try:
            atomic_write(self.path, text.encode("utf-8"))
        except OSError as exc:
            self.problem = f"The call history could not be saved ({exc.strerror or exc})."
            log.warning("%s", self.problem)
        else:
            self.problem = ""

    def clear(self) -> None:
        """Forget every call (and save)."""
        self.entries.clear()
        self.save()


def _file_text(entries: tuple[HistoryEntry, ...]) -> str:
    """The file's JSON, one entry a line. Each entry's text is made once (entries are
    frozen, and a call changes only its own): writing all 500 anew at each event of a call
    held the GIL for 30-47 ms in the writer thread, beside the window's event loop (issue 7)."""
    lines = ",\n".join(_entry_text(entry) for entry in entries)
    return f'{{"version": {VERSION}, "entries": [\n{lines}\n]}}\n'


@functools.lru_cache(maxsize=2 * MAX_ENTRIES)
def _entry_text(entry: HistoryEntry) -> str:
    return json.dumps(entry.to_json(), ensure_ascii=False)


#: How long the background writer gathers changes before it writes: a call's set-up changes
#: its entry four or five times in a few hundred ms, and each write (JSON and an fsync in the
#: writer thread, 1-4 ms on a CPU) took the GIL from the event loop in the set-up's busiest
#: turns (issue 7). A crash loses at most this much of the newest changes.
WRITE_DELAY = 0.5


class _Writer:
    """Writes a history's snapshots in a worker thread, newest first: a snapshot that is
    overtaken before the thread gets to it is dropped (the file only ever needs the last one);
    the thread waits ``delay`` after the first change before it writes, so that a burst of
    changes is written once. Each write is still atomic (:func:`softphone.storage.atomic_write`:
    temporary file, fsync, rename), so a crash leaves the previous or the new file, never half
    of one. The thread is started by the first snapshot and then waits for the next (starting
    a thread makes the caller wait until it runs: milliseconds on a loaded machine, on the
    event loop)."""

    def __init__(
        self, write: Callable[[tuple[HistoryEntry, ...]], None], *, delay: float = 0.0
    ) -> None:
        self._write = write
        self._delay = delay
        self._cond = threading.Condition()
        self._pending: tuple[HistoryEntry, ...] | None = None
        self._busy = False
        self._hurry = False  # flush() waits: no delay
        self._thread: threading.Thread | None = None

    def submit(self, entries: tuple[HistoryEntry, ...]) -> None:
        with self._cond:
            self._pending = entries
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="call-history", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None)
                self._busy = True
                self._cond.wait_for(lambda: self._hurry, self._delay)  # the rest of the burst
                entries, self._pending = self._pending, None
            try:
                if entries is not None:
                    self._write(entries)
            except Exception:  # a bug must not kill the writer: the next snapshot tries again
                log.exception("writing the call history failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: self._pending is None and not self._busy, timeout
                )
            finally:
                self._hurry = False
