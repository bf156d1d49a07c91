"""softphone.ua.history: calls followed from their events, saved after each change, loaded
again after a crash (unfinished calls become "interrupted"), a damaged file set aside."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from softphone.ua import CallHistory, HistoryEntry, Registered, Transport
from softphone.ua.call import AUDIO_WORDS
from softphone.ua.events import CallState, Event, MediaStarted
from softphone.ua.history import INTERRUPTED, default_history_path

T0 = dt.datetime(2026, 1, 2, 10, 0, 0, tzinfo=dt.UTC)
BOB = "sips:bob@example.test"
HOPS = "Encrypted to each server; servers on the way can read it"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def state(call_id: str, phase: str, reason: str = "", direction: str = "outgoing") -> CallState:
    return CallState(call_id, direction, BOB, phase, reason)


@dataclass(frozen=True)
class PeerIdentity(Event):
    """The shape another helper's engine event has (only the fields the history reads)."""

    name: ClassVar[str] = "peer_identity"
    call_id: str
    identity_state: str


def test_an_answered_call_from_first_event_to_end(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    history = CallHistory(path)
    history.record(state("c1", "calling"), at(0))
    on_disk = json.loads(path.read_text())
    assert on_disk["version"] == 1
    assert on_disk["entries"][0]["ended"] is False  # in the file from the first event
    history.record(state("c1", "ringing"), at(1))
    history.record(state("c1", "established"), at(3))
    history.record(
        MediaStarted(
            "c1", "opus", True, "AES_CM_128_HMAC_SHA1_80", "sdes", AUDIO_WORDS["sdes-hops"], HOPS
        ),
        at(3),
    )
    history.record(PeerIdentity("c1", "certificate"), at(4))
    entry = history.record(state("c1", "ended", "hung up"), at(65.5))
    assert entry is not None
    assert entry.ended and entry.outcome == "answered"
    assert entry.duration == pytest.approx(62.5)
    assert entry.audio == AUDIO_WORDS["sdes-hops"] and entry.signalling == HOPS
    assert entry.identity == "certificate"
    again = CallHistory.load(path)
    assert again.entries == [entry]
    assert again.problem == ""
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("direction", "reason", "outcome"),
    [
        ("outgoing", "busy", "busy"),
        ("outgoing", "declined", "declined"),
        ("incoming", "cancelled", "missed"),
        ("incoming", "declined (by us)", "declined (by us)"),
    ],
)
def test_unanswered_calls_say_how_they_ended(
    tmp_path: Path, direction: str, reason: str, outcome: str
) -> None:
    history = CallHistory(tmp_path / "h.json")
    history.record(state("c1", "calling", direction=direction), at(0))
    entry = history.record(state("c1", "ended", reason, direction), at(5))
    assert entry is not None and entry.outcome == outcome
    assert entry.duration is None and entry.answered is None


def test_newest_first_and_bounded(tmp_path: Path) -> None:
    history = CallHistory(tmp_path / "h.json", max_entries=3)
    for i in range(5):
        history.record(state(f"c{i}", "calling"), at(i))
    assert [e.call_id for e in history.entries] == ["c4", "c3", "c2"]
    assert [e.call_id for e in CallHistory.load(tmp_path / "h.json").entries] == ["c4", "c3", "c2"]


def test_a_call_going_on_at_a_crash_is_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    history = CallHistory(path)
    history.record(state("c1", "calling"), at(0))
    history.record(state("c1", "established"), at(2))
    del history  # the process dies here: nothing more is written
    loaded = CallHistory.load(path)
    assert loaded.entries[0].ended
    assert loaded.entries[0].outcome == INTERRUPTED


def test_events_about_no_known_call_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    history = CallHistory(path)
    fp = ":".join(["AB"] * 32)
    assert (
        history.record(Registered(BOB, 60, "sips:example.test", fp, Transport.TLS), at(0)) is None
    )
    assert history.record(PeerIdentity("nope", "verified"), at(0)) is None
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"version": 9, "entries": []}',
        b'{"version": 1, "entries": [{"x": 1}]}',
        b"[]",
    ],
)
def test_a_damaged_file_is_set_aside_and_the_history_keeps_working(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "h.json"
    path.write_bytes(content)
    history = CallHistory.load(path)
    assert history.entries == []
    assert "damaged" in history.problem and "history.json" not in history.problem
    assert (tmp_path / "h.json.corrupt").read_bytes() == content
    history.record(state("c1", "calling"), at(0))  # still records and saves
    assert CallHistory.load(path).entries[0].call_id == "c1"


def test_a_save_failure_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    history = CallHistory(blocker / "h.json")  # its directory cannot be created
    history.record(state("c1", "calling"), at(0))
    assert "could not be saved" in history.problem
    assert history.entries[0].call_id == "c1"  # kept in memory


def test_entry_validation() -> None:
    with pytest.raises(ValueError):
        HistoryEntry("c", "sideways", BOB, T0)
    with pytest.raises(ValueError):
        HistoryEntry("c", "outgoing", BOB, dt.datetime(2026, 1, 1))  # naive


def test_default_path_is_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", os.fspath(Path("/tmp/xdg-test")))
    assert default_history_path() == Path("/tmp/xdg-test/softphone/history.json")


# --- saving in the background (the GUI: no fsync on the event loop, issue 7) ---------------------


def test_background_saves_reach_the_disk_after_flush(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    history = CallHistory(path, background=True)
    history.record(state("c1", "calling"), at(0))
    history.record(state("c1", "established"), at(2))
    history.record(state("c1", "ended", "hung up"), at(10))
    assert history.flush(10)
    again = CallHistory.load(path)
    assert [(e.call_id, e.outcome, e.duration) for e in again.entries] == [("c1", "answered", 8.0)]


def test_background_save_writes_the_newest_snapshot_and_drops_overtaken_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from softphone.ua import history as history_module

    gate = threading.Event()
    written: list[int] = []
    real = history_module.atomic_write

    def slow_write(path: Path, data: bytes) -> None:
        gate.wait(10)  # the first write is held while the loop records three more calls
        written.append(len(json.loads(data)["entries"]))
        real(path, data)

    monkeypatch.setattr(history_module, "atomic_write", slow_write)
    path = tmp_path / "history.json"
    history = CallHistory(path, background=True)
    for n in range(4):
        history.record(state(f"c{n}", "calling"), at(n))  # returns at once: no write waited for
    assert not history.flush(0.05)  # still held
    gate.set()
    assert history.flush(10)
    assert written[-1] == 4 and len(written) <= 2  # the first, then only the newest
    assert [e.call_id for e in CallHistory.load(path).entries] == ["c3", "c2", "c1", "c0"]
    history.record(state("c9", "calling"), at(9))  # the same writer takes the next one
    assert history.flush(10) and CallHistory.load(path).entries[0].call_id == "c9"


def test_a_burst_of_changes_is_written_once_after_the_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's set-up changes its entry four or five times in a few hundred ms: one write
    (JSON and an fsync in the writer thread, beside the event loop's busiest turns: issue 7),
    WRITE_DELAY after the first change, without anyone flushing. flush() does not wait it."""
    import time

    from softphone.ua import history as history_module

    written: list[list[str]] = []
    real = history_module.atomic_write

    def counted(path: Path, data: bytes) -> None:
        written.append([e["outcome"] for e in json.loads(data)["entries"]])
        real(path, data)

    monkeypatch.setattr(history_module, "atomic_write", counted)
    monkeypatch.setattr(history_module, "WRITE_DELAY", 0.3)
    history = CallHistory(tmp_path / "history.json", background=True)
    began = time.monotonic()
    for n, phase in enumerate(("calling", "ringing", "established")):
        history.record(state("c1", phase), at(n))
        time.sleep(0.05)
    assert written == []  # gathering
    deadline = time.monotonic() + 10
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.monotonic() - began >= 0.3
    time.sleep(0.1)
    assert len(written) == 1  # once, with the newest state
    loaded = CallHistory.load(tmp_path / "history.json").entries[0]
    assert loaded.answered == at(2)  # the established state: the newest
    history.record(state("c1", "ended", "hung up"), at(9))
    hurried = time.monotonic()
    assert history.flush(10)
    assert time.monotonic() - hurried < 0.3  # flush() does not wait the delay
    assert len(written) == 2
    assert CallHistory.load(tmp_path / "history.json").entries[0].duration == 7.0


def test_a_background_save_failure_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    history = CallHistory(blocker / "history.json", background=True)
    history.record(state("c1", "calling"), at(0))
    assert history.flush(10)
    assert "could not be saved" in history.problem
    assert history.entries[0].call_id == "c1"  # kept in memory


def test_a_save_writes_anew_only_the_entry_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7: every event of a call saves the history; making all 500 entries' JSON again
    each time held the GIL for 30-47 ms in the GUI's writer thread, beside its event loop."""
    path = tmp_path / "history.json"
    history = CallHistory(path)
    for i in range(40):
        history.record(state(f"made-{tmp_path.name}-{i}", "calling"), at(i))
        history.record(state(f"made-{tmp_path.name}-{i}", "ended", "busy"), at(i + 1))
    made: list[str] = []
    original = HistoryEntry.to_json

    def counted(entry: HistoryEntry) -> dict[str, object]:
        made.append(entry.call_id)
        return original(entry)

    monkeypatch.setattr(HistoryEntry, "to_json", counted)
    history.record(state("new-call", "calling"), at(100))
    assert made == ["new-call"]  # the 40 others' text was kept
    made.clear()
    history.record(state("new-call", "established"), at(101))
    assert made == ["new-call"]
    again = CallHistory.load(path)
    assert [e.call_id for e in again.entries] == [e.call_id for e in history.entries]
    assert again.entries[1:] == history.entries[1:]  # the first is "interrupted" once loaded
    assert again.entries[0].answered == at(101)
    assert len(path.read_text().splitlines()) == 2 + 41  # an entry a line
