"""The recall harness (bench/recall_quality.py): its synthetic set's judgements, the LoCoMo
loader, the metrics and BM25 it reports, and its stack path against an in-process fake edge."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from bench import recall_quality as rq
from mbwire.types import KnowledgeQuery
from mbwire.types_events import MAX_EVENTS, EventsIn

UTC = dt.UTC


def test_the_synthetic_set_is_the_same_for_a_seed() -> None:
    assert rq.synthetic(7, 5, 12, 10) == rq.synthetic(7, 5, 12, 10)
    assert rq.synthetic(7, 5, 12, 10) != rq.synthetic(8, 5, 12, 10)


def test_every_question_is_answered_by_its_own_twin_only() -> None:
    rs = rq.synthetic(1, 20, 15, 30)
    for qid, question in rs.questions.items():
        assert rs.relevant[qid], qid
        assert {rs.memories[d].twin for d in rs.gains[qid]} == {question.twin}


def test_now_is_the_latest_statement_and_before_the_one_it_replaced() -> None:
    rs = rq.synthetic(3, 20, 15, 30)
    for qid in rs.questions:
        twin, trait, when = qid.split("/")
        statements = sorted((d for d in rs.memories
                             if d.startswith(f"{twin}/") and d.endswith(f"-{trait}")),
                            key=lambda d: rs.memories[d].occurred_at)
        assert rs.relevant[qid] == {statements[-1] if when == "now" else statements[-2]}
    for docs in rq.by_twin(rs).values():
        times = [rs.memories[d].occurred_at for d in docs]
        assert times == sorted(times) and len(set(times)) == len(times)


def test_twins_share_vocabulary_so_a_leak_would_cost() -> None:
    rs = rq.synthetic(1, 20, 15, 30)
    cities = [{c for d in docs if d.endswith("-city") for c in rq.CITIES
               if c in rs.memories[d].text} for docs in rq.by_twin(rs).values()]
    assert any(a & b for i, a in enumerate(cities) for b in cities[i + 1:])


LOCOMO = [{
    "sample_id": "conv-1",
    "conversation": {
        "speaker_a": "Caroline", "speaker_b": "Melanie",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hey Mel!"},
            {"speaker": "Caroline", "dia_id": "D1:2", "text": "I went to a support group."},
            {"speaker": "Melanie", "dia_id": "D1:3", "text": "My latest painting.",
             "img_url": ["https://example.invalid/x.jpg"], "blip_caption": "a sunset"}],
        "session_2_date_time": "sometime later",
        "session_2": [{"speaker": "Melanie", "dia_id": "D2:1", "text": "I paint sunsets."},
                      {"speaker": "Caroline", "dia_id": "D2:2", "text": ""}]},
    "qa": [
        {"question": "Where did Caroline go?", "answer": "a group", "evidence": ["D1:2"],
         "category": 2},
        {"question": "What does Melanie paint?", "answer": "sunsets",
         "evidence": ["D2:1; D1:3"], "category": 1},
        {"question": "Caroline's dog?", "adversarial_answer": "Rex", "evidence": ["D1:1"],
         "category": 5},
        {"question": "Lost?", "answer": "x", "evidence": ["D9:9"], "category": 4}],
}]


def test_the_locomo_loader_reads_the_published_layout(tmp_path: Path) -> None:
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps(LOCOMO))
    rs = rq.load_locomo(path)
    first = dt.datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert rs.memories == {
        "loc-conv-1/D1:1": rq.Memory("loc-conv-1", "Caroline: Hey Mel!", first),
        "loc-conv-1/D1:2": rq.Memory("loc-conv-1", "Caroline: I went to a support group.",
                                     first + dt.timedelta(seconds=1)),
        "loc-conv-1/D1:3": rq.Memory("loc-conv-1",
                                     "Melanie: My latest painting. [shares a photo: a sunset]",
                                     first + dt.timedelta(seconds=2)),
        # An unreadable session date: a day after the one before.
        "loc-conv-1/D2:1": rq.Memory("loc-conv-1", "Melanie: I paint sunsets.",
                                     first + dt.timedelta(days=1))}
    assert rs.questions == {"loc-conv-1/q000": rq.Question("loc-conv-1", "Where did Caroline go?"),
                            "loc-conv-1/q001": rq.Question("loc-conv-1",
                                                           "What does Melanie paint?")}
    assert rs.relevant == {"loc-conv-1/q000": {"loc-conv-1/D1:2"},
                           "loc-conv-1/q001": {"loc-conv-1/D2:1", "loc-conv-1/D1:3"}}
    assert "1 questions without evidence dropped" in rs.name
    assert rs.margin_over_bm25 == 0.05


def test_a_perfect_ranking_scores_one_in_both_halves() -> None:
    rs = rq.synthetic(1, 20, 15, 30)
    oracle = {q: rq.Answer(sorted(g, key=lambda d: -g[d])) for q, g in rs.gains.items()}
    for which in ("tune", "report"):
        figures = rq.figures(rs, oracle, which)
        assert figures is not None and figures.queries > 50
        assert figures.ndcg == pytest.approx(1.0) and figures.recall == 1.0
        assert figures.p50_ms is None


def test_bm25_puts_the_exact_term_first_and_stays_in_its_twin() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=UTC)
    rs = rq.RecallSet(
        name="toy", memories={
            "a/1": rq.Memory("a", "We walked along the river after dinner.", when),
            "a/2": rq.Memory("a", "The zeppelin flew over the stadium.", when),
            "a/3": rq.Memory("a", "Dinner was late and the river was cold.", when),
            "b/1": rq.Memory("b", "A zeppelin zeppelin zeppelin.", when)},
        questions={"a/q": rq.Question("a", "When did the zeppelin fly?")},
        gains={"a/q": {"a/2": 1.0}}, relevant={"a/q": {"a/2"}})
    assert rq.bm25_answers(rs)["a/q"].ranked == ["a/2"]


def test_the_halves_are_stable_and_both_used() -> None:
    qids = list(rq.synthetic(1, 20, 15, 30).questions)
    assert [rq.half(q) for q in qids] == [rq.half(q) for q in qids]
    assert 0.35 < sum(rq.half(q) == "report" for q in qids) / len(qids) < 0.65


def test_the_requests_are_what_the_wire_accepts() -> None:
    rs = rq.synthetic(1, 3, 15, 100)
    batches = rq.event_batches(rs, {t: f"rq-x-{t}" for t in rq.by_twin(rs)}, "rq-x")
    assert sum(len(b["events"]) for b in batches) == len(rs.memories)
    for body in batches:
        assert len(msgspec.json.decode(msgspec.json.encode(body), type=EventsIn).events) \
            <= MAX_EVENTS
    msgspec.json.decode(msgspec.json.encode(rq.query_body("x" * 5000, "rq-x-a", "hybrid")),
                        type=KnowledgeQuery)


class FakeEdge:
    """Enough of the edge for the harness: the first events batch is throttled once, listings
    come 7 to a page, a query ranks the twin's events by words shared with it, and semantic
    queries find nothing at first (vectors lag the 202). ``leak``: one hit of another twin."""

    def __init__(self, leak: bool) -> None:
        self.leak, self.throttled, self.semantic_asked = leak, False, 0
        self.events: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer jwt"
        body = json.loads(request.content or b"null")
        path = request.url.path
        if path == "/v1/twins":
            return httpx.Response(201, json={"twin_id": body["twin_id"], "version": 1,
                                             "consistency_token": "L0000000000000001"})
        if path == "/v1/events":
            if not self.throttled:
                self.throttled = True
                return httpx.Response(429, headers={"Retry-After": "0"})
            for event in body["events"]:
                self.events.append({**event, "event_id": str(len(self.events) + 1)})
            return httpx.Response(202, json={"accepted": len(body["events"]),
                                             "consistency_token": f"L{len(self.events):016X}"})
        assert request.headers["x-consistency-token"] == f"L{len(self.events):016X}"
        if path.endswith("/events"):
            mine = [e for e in self.events if e["twin_id"] == path.split("/")[3]]
            start = int(request.url.params.get("cursor") or 0)
            more = start + 7 < len(mine)
            return httpx.Response(200, json={"items": mine[start:start + 7],
                                             "next_cursor": str(start + 7) if more else None})
        assert path == "/v1/knowledge/query" and body["filters"]["kind"] == "event"
        twin = body["filters"]["twin_id"]
        if body["mode"] == "semantic":
            self.semantic_asked += 1
            if self.semantic_asked == 1:
                return httpx.Response(200, json={"results": [], "mode": "semantic"})
        words = set(body["query"].lower().split())
        hits = sorted((e for e in self.events if e["twin_id"] == twin),
                      key=lambda e: -len(words & set(e["text"].lower().split())))
        if self.leak:
            hits = hits[: body["limit"] - 1] + [e for e in self.events if e["twin_id"] != twin][:1]
        else:
            hits = hits[: body["limit"]]
        return httpx.Response(200, json={"mode": body["mode"], "results": [
            {"id": e["event_id"], "title": "", "snippet": e["text"], "score": 1.0,
             "kind": "event", "twin_id": e["twin_id"]} for e in hits]})


@pytest.mark.parametrize("leak", [False, True])
async def test_the_stack_path_against_a_fake_edge(monkeypatch: pytest.MonkeyPatch,
                                                  leak: bool) -> None:
    monkeypatch.setattr(rq, "POLL_S", 0.0)
    rs = rq.synthetic(2, 3, 8, 6)
    async with httpx.AsyncClient(transport=httpx.MockTransport(FakeEdge(leak))) as http:
        answers, ready = await rq.ask_stack(rq.Edge(http, "http://edge.invalid", "jwt"), rs,
                                            "rq-test", list(rs.questions))
    assert (ready.twins_ready, ready.twins) == (3, 3)
    assert set(answers) == set(rq.STACK_MODES)
    leaks = sum(a.cross_twin for mode in answers.values() for a in mode.values())
    assert leaks == (3 * len(rs.questions) if leak else 0)
    assert all(d in rs.memories for a in answers["keyword"].values() for d in a.ranked)
    result = rq.report(rs, {**answers, rq.BM25: rq.bm25_answers(rs)}, ready, show_tune=True)
    text = rq.markdown(json.loads(json.dumps(result)), offline=False)
    assert "semantic index: every twin's last event found" in text
    assert f"(must be 0): keyword {leaks // 3}, semantic {leaks // 3}" in text
    assert "| hybrid |" in text and "goal: hybrid nDCG@10 >= the best single mode" in text


def test_offline_prints_bm25_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    rq.main(["--offline", "--json", "--twins", "3"])
    out = json.loads(capsys.readouterr().out)
    synthetic = out["collections"][0]
    assert set(synthetic["halves"]["report"]) == {"bm25"}
    assert synthetic["goals"][0]["met"] is None


def test_the_repositorys_zip_reads_as_the_same_samples(tmp_path: Path) -> None:
    """data/locomo10.zip holds one file per conversation, its fields at the top level."""
    sample = LOCOMO[0]
    path = tmp_path / "locomo10.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/v2/conv-1.json",
                         json.dumps({**sample["conversation"], "qa": sample["qa"],
                                     "events_session_1": ["ignored"]}))
    listed = tmp_path / "locomo10.json"
    listed.write_text(json.dumps(LOCOMO))
    zipped, plain = rq.load_locomo(path), rq.load_locomo(listed)
    assert zipped.memories == plain.memories and zipped.relevant == plain.relevant
