"""Events and trajectory steps sealed at central and opened at the hub (no database: the
statements meet a fake connection). Central seals a payload as ``event:<seq>`` with the seq it
drew, a step as ``step:<version>:action|evidence``; the hub's pages open them with the twin's key,
and a value moved to another event, step or twin is the read's 500, never another row's
plaintext."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from central.events import _HEADS_SQL, _INSERT_SQL, _TWINS_SQL, write_batch
from central.knowledge import _LEXEMES
from central.memories import _CHUNKS, _DOCS
from mbwire import NotFound, Principal, Problem
from mbwire.types_events import EventsIn
from regional.reads.history import events_page, payload_of, step_of, text_of, trajectory_page
from sealing import Keyring, KeyStore, TwinKey

OWNER = Principal(sub="ada", tier="pro", role="agent")
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@dataclass
class Cursor:
    rows: list[Any]

    async def fetchall(self) -> list[Any]:
        return self.rows

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


@dataclass
class Conn:
    """Answers each statement from ``answers`` (by its start); keeps what was asked."""

    answers: dict[str, list[Any]]
    asked: list[tuple[str, Any]] = field(default_factory=list)

    async def execute(self, sql: str, params: Any = None) -> Cursor:
        self.asked.append((sql, params))
        return Cursor(next((rows for start, rows in self.answers.items()
                            if sql.startswith(start)), []))


@dataclass
class Tx:
    conn: Conn
    feed: list[tuple[str, str, int]] = field(default_factory=list)


@pytest.fixture
async def keys(tmp_path: Path) -> dict[str, TwinKey]:
    ring = Keyring(KeyStore(tmp_path))
    return {t: await ring.create(t) for t in ("ada", "bob")}


async def test_central_seals_each_payload_under_the_seq_it_drew(keys: dict[str, TwinKey]
                                                                 ) -> None:
    # The twin's head was at 4: this batch's two events are 5 and 6.
    conn = Conn({_TWINS_SQL: [("ada", True)], _HEADS_SQL: [("ada", 6, NOW)]})
    batch = msgspec.convert({"events": [
        {"twin_id": "ada", "type": "note", "payload": {"text": "marker-one"}},
        {"twin_id": "ada", "type": "note", "payload": "marker-two"}]}, EventsIn)
    assert await write_batch(Tx(conn), OWNER, batch, keys, None) == 2  # type: ignore[arg-type]
    [params] = [p for sql, p in conn.asked if sql == _INSERT_SQL]
    payloads, seqs = params[3], params[5]
    assert seqs == [5, 6]
    assert all(b"marker" not in p for p in payloads)
    assert payload_of(keys["ada"], 5, payloads[0]) == {"text": "marker-one"}
    assert payload_of(keys["ada"], 6, payloads[1]) == "marker-two"
    with pytest.raises(Problem) as exc:  # seq 5's payload read as seq 6
        payload_of(keys["ada"], 6, payloads[0])
    assert exc.value.status == 500 and "marker" not in exc.value.detail


async def test_a_twin_erased_between_its_key_and_the_batch_stores_nothing(
        keys: dict[str, TwinKey]) -> None:
    conn = Conn({_TWINS_SQL: [("ada", True), ("bob", True)]})
    batch = msgspec.convert({"events": [{"twin_id": "ada", "type": "a"},
                                        {"twin_id": "bob", "type": "a"}]}, EventsIn)
    with pytest.raises(NotFound) as exc:
        await write_batch(Tx(conn), OWNER, batch, {"ada": keys["ada"]}, None)  # type: ignore[arg-type]
    assert exc.value.extra["errors"] == [{"pointer": "/events/1/twin_id"}]
    assert [sql for sql, _ in conn.asked] == [_TWINS_SQL]


def event_row(key: TwinKey, seq: int, payload: Any, sealed_as: int | None = None
              ) -> tuple[Any, ...]:
    blob = key.seal_json(f"event:{sealed_as or seq}", payload)
    return (f"e{seq}", "note", blob, "2026-01-02T03:04:05.000000Z", seq, NOW, None,
            "2026-01-02T03:04:05.000000Z")


async def test_the_hub_opens_a_page_and_refuses_a_moved_payload(keys: dict[str, TwinKey]) -> None:
    ada, bob = keys["ada"], keys["bob"]
    page = await events_page(Conn({"select event_id": [  # type: ignore[arg-type]
        event_row(ada, 1, {"n": 1}), event_row(ada, 2, [2])]}), ada, limit=10)
    assert [(e.seq, e.payload, e.twin_id) for e in page.items] == [(1, {"n": 1}, "ada"),
                                                                  (2, [2], "ada")]
    # bob's event 1, copied into ada's event 1 (same seq, another twin): a 500, not bob's text.
    moved = (*event_row(bob, 1, "bob's secret")[:2], bob.seal_json("event:1", "bob's secret"),
             *event_row(ada, 1, None)[3:])
    for rows in ([moved], [event_row(ada, 2, "swapped", sealed_as=1)]):
        with pytest.raises(Problem) as exc:
            await events_page(Conn({"select event_id": rows}), ada, limit=10)  # type: ignore[arg-type]
        assert exc.value.status == 500 and "secret" not in exc.value.detail


async def test_steps_open_by_version_and_a_swapped_evidence_fails(keys: dict[str, TwinKey]
                                                                  ) -> None:
    ada = keys["ada"]
    at = "2026-01-02T03:04:05.000000Z"
    rows = [(v, ada.seal(f"step:{v}:action", f"act {v}".encode()),
             None if v == 2 else ada.seal_json(f"step:{v}:evidence", {"v": v}), at)
            for v in (1, 2)]
    conn = Conn({"select coalesce": [(2,)], "select version": rows})
    view = await trajectory_page(conn, ada, limit=10)  # type: ignore[arg-type]
    assert view.version == 2
    assert [(s.version, s.action, s.evidence) for s in view.steps] == [
        (1, "act 1", {"v": 1}), (2, "act 2", None)]
    evidence = rows[0][2]
    assert evidence is not None
    with pytest.raises(Problem):  # step 1's evidence stored as step 2's action
        step_of(ada, 2, evidence, None, at)


async def test_a_text_event_is_a_sealed_memory_found_by_hashed_words_only(
        tmp_path: Path) -> None:
    """Its text sealed into the event as ``event_text:<seq>``; its document (``event/<id>``,
    the type as title, the time it happened) and chunk written in the same work, the chunk
    sealed and indexed by the blind hashes of its lexemes: no word of it is written."""
    ring = Keyring(KeyStore(tmp_path / "ks"))
    ada = await ring.create("ada")
    conn = Conn({_TWINS_SQL: [("ada", True)], _HEADS_SQL: [("ada", 5, NOW)],
                 _INSERT_SQL: [("ada", 5, 501)], _LEXEMES: [(["whippet", "biscuit"],)]})
    batch = msgspec.convert({"events": [
        {"twin_id": "ada", "type": "pet.adopted", "text": "Adopted a whippet named Biscuit",
         "occurred_at": "2024-07-14T18:30:00+02:00"}]}, EventsIn, strict=False)
    tx = Tx(conn)
    assert await write_batch(tx, OWNER, batch, {"ada": ada}, ring) == 1  # type: ignore[arg-type]
    [insert] = [p for sql, p in conn.asked if sql == _INSERT_SQL]
    assert text_of(ada, 5, insert[7][0]) == "Adopted a whippet named Biscuit"
    assert insert[8] == [dt.datetime(2024, 7, 14, 16, 30, tzinfo=dt.UTC)]
    [docs] = [p for sql, p in conn.asked if sql == _DOCS]
    assert docs[1:] == (["event/501"], ["ada"], ["pet.adopted"], insert[8])
    [chunks] = [p for sql, p in conn.asked if sql == _CHUNKS]
    assert chunks[0] == ["event/501"] and chunks[1] == [0]
    assert ada.open("chunk:event/501:0", chunks[2][0]) == b"Adopted a whippet named Biscuit"
    assert chunks[3] == [" ".join(await ring.blind(["whippet", "biscuit"]))]
    stored = repr([insert, docs, chunks])  # what is written (the lexemes' statement only reads)
    assert "whippet" not in stored and "Biscuit" not in stored
    # The keyword index hears of its words now; the vector index again once it is embedded.
    assert tx.feed == [("memory", "event/501", 0), ("event", "ada", 5)]
