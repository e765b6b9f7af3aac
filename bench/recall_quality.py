"""Recall over a twin's text events per mode, against BM25: prints figures, asserts nothing.

    .venv/bin/python bench/recall_quality.py --data-dir DIR [--region ams]
        [--seed 1 --twins 20 --facts 15 --chatter 30] [--lee PATH] [--locomo PATH]
        [--limit-queries N] [--show-tune] [--json]
    .venv/bin/python bench/recall_quality.py --offline      # BM25 only, no stack

Every collection's memories are logged as text events of their twins (``POST /v1/events`` with
``text`` and ``occurred_at``) through the region's edge of a running local stack (topology and
secrets read from DIR, as bench/retrieval_quality.py does), as an ``internal`` caller on twins
made for this run. Each question is asked of its own twin (``POST /v1/knowledge/query`` with
``filters: {twin_id, kind: "event"}``) in every mode; BM25 (``bm25s``, in this process) ranks
the same texts of the same twin, so all four rank exactly the same events.

Collections:
- synthetic (``--seed``): people whose city, employer, partner, pet, favourite food and car
  change over time, stated in diary sentences between daily chatter that reuses the same
  vocabulary (every twin draws from the same cities and employers). "Where does Ana live now?"
  is answered by the latest statement (gain 1; the superseded ones 0); "... before moving to
  Oslo?" by the one before it (gain 1), and half by the latest one when it names the old value
  ("Relocated from Lisbon to Oslo": gain 0.5). A hit of another twin is counted as a leak.
- Lee 2005 (bench/retrieval_quality.py's loader; ``--lee PATH``, else installed gensim, else
  skipped): the 50 articles as one twin's events, each judged article a query for the others.
- LoCoMo-10 (``--locomo locomo10.json``, snap-research, CC BY-NC: never committed): one twin
  per conversation, one event per dialogue turn at its session's date, questions of categories
  1-4 with their evidence turns relevant (category 5 is adversarial: no evidence to find).

Questions are split into a tune and a report half by a hash of their id: tune on the one, quote
the other. Goals (report half): hybrid >= the best single mode; on LoCoMo, hybrid >= BM25 + 0.05.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import random
import re
import sys
import time
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import bm25s
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "wire")]

from bench.retrieval_quality import K, lee_files, ndcg_at_k, parse_lee, recall_at_k  # noqa: E402
from mbwire.token import Tokens  # noqa: E402
from mbwire.types_events import MAX_EVENTS, MAX_TEXT_BYTES  # noqa: E402

STACK_MODES = ("keyword", "semantic", "hybrid")
BM25 = "bm25"
MAX_QUERY_CHARS = 2048  # KnowledgeQuery.query's limit
UTC = dt.UTC


@dataclass(frozen=True)
class Memory:
    twin: str  # the collection's twin key; the stack's twin id prefixes the run's tag
    text: str
    occurred_at: dt.datetime


@dataclass(frozen=True)
class Question:
    twin: str
    text: str


@dataclass(frozen=True)
class RecallSet:
    name: str
    memories: dict[str, Memory]  # doc id -> memory, in logging order
    questions: dict[str, Question]  # query id -> question
    gains: dict[str, dict[str, float]]  # query id -> doc id -> graded gain (> 0: relevant)
    relevant: dict[str, set[str]]  # query id -> doc ids that count for recall
    exclude_self: bool = False  # a question is one of the memories: not an answer to itself
    margin_over_bm25: float | None = None  # the goal's lead of hybrid over BM25, if any


@dataclass(frozen=True)
class Answer:
    ranked: list[str]  # doc ids, best first (another twin's events included: they displace)
    ms: float | None = None  # the stack's answer time (None: BM25, in this process)
    cross_twin: int = 0  # hits whose twin is not the one asked


# -- the synthetic set ------------------------------------------------------------------------

@dataclass(frozen=True)
class Trait:
    """Something about a person that changes, how a diary states it and how it is asked."""

    name: str
    values: tuple[str, ...]
    first: tuple[str, ...]  # templates with {new}
    change: tuple[str, ...]  # templates with {new}, some also with {old}
    now: str  # with {name}
    before: str  # with {name} and {cur}


CITIES = ("Lisbon", "Oslo", "Berlin", "Madrid", "Porto", "Vienna", "Prague", "Dublin", "Lyon",
          "Krakow", "Seattle", "Austin")
EMPLOYERS = ("Acme", "Globex", "Initech", "Umbrella Labs", "Hooli", "Vandelay Imports",
             "Tyrell Systems", "Wayne Foods", "Soylent", "Cyberdyne")
PEOPLE = ("Maria", "Joao", "Sven", "Ingrid", "Lukas", "Sofia", "Omar", "Chloe", "Priya",
          "Daniel", "Yuki", "Tomas")
PETS = ("beagle", "tabby cat", "parrot", "hamster", "golden retriever", "rabbit", "tortoise")
FOODS = ("sushi", "ramen", "paella", "tacos", "lasagne", "pho", "falafel", "curry", "dumplings")
CARS = ("Toyota Corolla", "Volvo XC40", "Tesla Model 3", "Ford Focus", "Fiat Panda", "VW Golf",
        "Honda Civic", "Skoda Octavia")
TRAITS = (
    Trait("city", CITIES,
          ("Moved to {new} and found a flat near the river.",
           "Settled in {new} after years of travelling."),
          ("Relocated from {old} to {new}.", "Packed up the flat in {old}; we live in {new} now.",
           "Signed the lease on a new place in {new}."),
          "Where does {name} live now?", "Where did {name} live before moving to {cur}?"),
    Trait("employer", EMPLOYERS,
          ("Started a new job as an engineer at {new}.", "Accepted an offer from {new}."),
          ("Left {old} and joined {new}.", "First day at {new} today, after quitting {old}.",
           "Now working for {new}."),
          "Who does {name} work for now?", "Who did {name} work for before {cur}?"),
    Trait("partner", PEOPLE,
          ("Went on a first date with {new}; we are together now.",
           "Moved in with my partner {new}."),
          ("Broke up with {old}; I'm seeing {new} now.",
           "Started dating {new} after things ended with {old}.", "Got engaged to {new}!"),
          "Who is {name}'s partner now?", "Who was {name}'s partner before {cur}?"),
    Trait("pet", PETS,
          ("Adopted a {new} from the shelter.", "Brought home a {new} today."),
          ("Our {old} went to live with my sister; we adopted a {new}.",
           "Rehomed the {old} and got a {new} instead.", "Say hello to our new {new}!"),
          "What pet does {name} have now?", "What pet did {name} have before the {cur}?"),
    Trait("food", FOODS,
          ("Honestly {new} is my favourite food.", "Nothing beats {new}; it's my favourite."),
          ("Went off {old}; {new} is my favourite food these days.",
           "My new favourite food is {new}."),
          "What is {name}'s favourite food now?",
          "What was {name}'s favourite food before {cur}?"),
    Trait("car", CARS,
          ("Bought a used {new}.", "Picked up my {new} from the dealer."),
          ("Sold the {old} and bought a {new}.", "Traded in my {old} for a {new}.",
           "Driving a {new} now."),
          "What car does {name} drive now?", "What car did {name} drive before the {cur}?"),
)
FIRST_NAMES = ("Ana", "Ben", "Carla", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas",
               "Kira", "Liam", "Mina", "Nils", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Umar",
               "Vera", "Wen", "Xavi", "Zoe")
# Daily chatter drawing on the traits' vocabulary, so a lexical match is no answer by itself.
CHATTER = ("Watched a documentary about {city} tonight.",
           "Thinking about a weekend trip to {city}.",
           "Read an article about {employer} and their new office.",
           "A recruiter from {employer} messaged me; not interested.",
           "Had {food} for lunch with a colleague.", "Tried a recipe for {food}; a disaster.",
           "Saw a {car} parked outside the bakery.", "Rented a {car} for the weekend.",
           "The neighbours' {pet} was noisy all night.",
           "{friend} from the gym recommended a podcast.", "Coffee with {friend} on {day}.",
           "Went for a run before breakfast on {day}.", "Rainy {day}; stayed in and read.",
           "Called mum to catch up.", "Fixed the leaking tap in the kitchen.",
           "Long meeting about the roadmap on {day}.")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def synthetic(seed: int, twins: int, facts: int, chatter: int) -> RecallSet:
    """People whose traits change over time, one twin each; deterministic for a seed. A doc id
    names its twin and what it states (``syn-p03/007-city``, ``.../008-chat``)."""
    if not 1 <= twins <= len(FIRST_NAMES) or facts < 1 or chatter < 0:
        raise ValueError(f"1 to {len(FIRST_NAMES)} twins, 1 or more facts, 0 or more chatter")
    rng = random.Random(seed)
    memories: dict[str, Memory] = {}
    questions: dict[str, Question] = {}
    gains: dict[str, dict[str, float]] = {}
    for i, name in enumerate(rng.sample(FIRST_NAMES, twins)):
        twin = f"syn-p{i:02d}"
        traits = rng.sample(TRAITS, min(facts, len(TRAITS)))
        values = {t.name: [rng.choice(t.values)] for t in traits}
        for _ in range(facts - len(traits)):
            open_ = [t for t in traits if len(values[t.name]) < len(t.values)]
            if open_:
                t = rng.choice(open_)
                values[t.name].append(rng.choice([v for v in t.values
                                                  if v not in values[t.name]]))
        # Each trait's statements in order, the traits interleaved at random.
        queue = [t for t in traits for _ in values[t.name]]
        rng.shuffle(queue)
        steps: list[tuple[Trait | None, str]] = []
        said = {t.name: 0 for t in traits}
        for t in queue:
            k, said[t.name] = said[t.name], said[t.name] + 1
            new, old = values[t.name][k], values[t.name][k - 1] if k else ""
            steps.append((t, rng.choice(t.change if k else t.first).format(new=new, old=old)))
        for _ in range(chatter):
            text = rng.choice(CHATTER).format(
                city=rng.choice(CITIES), employer=rng.choice(EMPLOYERS), food=rng.choice(FOODS),
                car=rng.choice(CARS), pet=rng.choice(PETS), friend=rng.choice(PEOPLE),
                day=rng.choice(DAYS))
            steps.insert(rng.randint(0, len(steps)), (None, text))
        when = dt.datetime(2023, 1, 1, 9, tzinfo=UTC) + dt.timedelta(days=rng.randint(0, 90))
        stated: dict[str, list[str]] = {t.name: [] for t in traits}
        for n, (trait, text) in enumerate(steps):
            when += dt.timedelta(days=rng.randint(1, 21), hours=rng.randint(0, 12))
            doc = f"{twin}/{n:03d}-{trait.name if trait else 'chat'}"
            memories[doc] = Memory(twin, text, when)
            if trait:
                stated[trait.name].append(doc)
        for t in traits:
            docs, cur = stated[t.name], values[t.name][-1]
            qid = f"{twin}/{t.name}/now"
            questions[qid] = Question(twin, t.now.format(name=name))
            gains[qid] = {d: 0.0 for d in docs} | {docs[-1]: 1.0}
            if len(docs) > 1:
                qid = f"{twin}/{t.name}/before"
                questions[qid] = Question(twin, t.before.format(name=name, cur=cur))
                names_old = values[t.name][-2] in memories[docs[-1]].text
                gains[qid] = {d: 0.0 for d in docs} | {docs[-2]: 1.0,
                                                        docs[-1]: 0.5 if names_old else 0.0}
    return RecallSet(
        name=f"synthetic (seed {seed}, {twins} twins, {facts} facts + {chatter} chatter each)",
        memories=memories, questions=questions, gains=gains,
        relevant={q: {d for d, g in gs.items() if g >= 1} for q, gs in gains.items()})


# -- Lee and LoCoMo ---------------------------------------------------------------------------

def fit(text: str) -> str:
    """At most the bytes an event's text may have, cut at a character: what is logged is what
    BM25 ranks."""
    return text.encode()[:MAX_TEXT_BYTES].decode(errors="ignore")


def lee(path: Path | None) -> RecallSet:
    """bench/retrieval_quality.py's Lee set, its articles one twin's events a day apart."""
    judged = parse_lee(*lee_files(path))
    start = dt.datetime(2005, 1, 1, tzinfo=UTC)
    return RecallSet(
        name=judged.name,
        memories={d: Memory("lee", fit(text), start + dt.timedelta(days=i))
                  for i, (d, (_, text)) in enumerate(judged.docs.items())},
        questions={q: Question("lee", text) for q, text in judged.queries.items()},
        gains=judged.gains, relevant=judged.relevant, exclude_self=judged.exclude_self)


SESSION = re.compile(r"session_(\d+)")
DIA_ID = re.compile(r"D\d+:\d+")
LOCOMO_DATES = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%d %B, %Y", "%d %B %Y")


def locomo_date(raw: object) -> dt.datetime | None:
    """A session's "1:56 pm on 8 May, 2023", as UTC (the set gives no zone)."""
    for fmt in LOCOMO_DATES:
        try:
            return dt.datetime.strptime(str(raw).strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def zipped_locomo(path: Path) -> list[dict[str, Any]]:
    """The zip's files as locomo10.json's samples: each file is one conversation, its speakers,
    sessions and their dates at the top level beside ``qa``."""
    samples = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".json")):
            raw = json.loads(archive.read(name))
            samples.append({"sample_id": Path(name).stem, "qa": raw.get("qa") or [],
                            "conversation": {k: v for k, v in raw.items()
                                             if k.startswith(("speaker_", "session_"))}})
    return samples


def load_locomo(path: Path) -> RecallSet:
    """LoCoMo's published layout, read defensively: a turn without an id or text is skipped,
    evidence like "D8:6; D9:17" is split, and a question none of whose evidence is a turn of
    its conversation is dropped (counted in the set's name). ``path``: locomo10.json (a list of
    samples), or the repository's ``data/locomo10.zip`` (one JSON file per conversation)."""
    samples = (zipped_locomo(path) if path.suffix == ".zip"
               else json.loads(path.read_text(encoding="utf-8")))
    memories: dict[str, Memory] = {}
    questions: dict[str, Question] = {}
    gains: dict[str, dict[str, float]] = {}
    dropped = 0
    for n, sample in enumerate(samples if isinstance(samples, list) else [samples]):
        twin = "loc-" + re.sub(r"[^A-Za-z0-9._:-]", "-", str(sample.get("sample_id") or n))[:64]
        conversation = sample.get("conversation") or {}
        sessions = sorted((int(m.group(1)), turns) for key, turns in conversation.items()
                          if (m := SESSION.fullmatch(key)) and isinstance(turns, list))
        when = dt.datetime(2023, 1, 1, tzinfo=UTC)
        for s, turns in sessions:
            # An unreadable date keeps the order: a day after the session before.
            when = locomo_date(conversation.get(f"session_{s}_date_time")) or (
                when + dt.timedelta(days=1))
            for i, turn in enumerate(turns):
                dia, text = str(turn.get("dia_id") or ""), str(turn.get("text") or "").strip()
                if not dia or not text:
                    continue
                if turn.get("blip_caption"):
                    text += f" [shares a photo: {turn['blip_caption']}]"
                text = fit(f"{turn.get('speaker') or '?'}: {text}")
                # Seconds apart, so the turns of a session keep their order.
                memories[f"{twin}/{dia}"] = Memory(twin, text, when + dt.timedelta(seconds=i))
        for i, qa in enumerate(sample.get("qa") or []):
            if qa.get("category") not in (1, 2, 3, 4) or not qa.get("question"):
                continue
            evidence = {f"{twin}/{d}" for raw in qa.get("evidence") or []
                        for d in DIA_ID.findall(str(raw))} & memories.keys()
            if not evidence:
                dropped += 1
                continue
            qid = f"{twin}/q{i:03d}"
            questions[qid] = Question(twin, str(qa["question"]))
            gains[qid] = dict.fromkeys(sorted(evidence), 1.0)
    return RecallSet(
        name=f"LoCoMo-10 ({path.name}; {dropped} questions without evidence dropped)",
        memories=memories, questions=questions, gains=gains,
        relevant={q: set(g) for q, g in gains.items()}, margin_over_bm25=0.05)


# -- scoring ----------------------------------------------------------------------------------

def half(qid: str) -> str:
    """``tune`` or ``report``, from a hash of the query id that no seed or process changes."""
    return "report" if hashlib.sha256(qid.encode()).digest()[0] & 1 else "tune"


def tokens(texts: list[str]) -> list[list[str]]:
    return cast(list[list[str]], bm25s.tokenize(texts, stopwords="en", return_ids=False,
                                                show_progress=False))


def bm25_answers(rs: RecallSet) -> dict[str, Answer]:
    """BM25 over each twin's own memories (bm25s: Lucene's variant, k1 1.5, b 0.75, English
    stop words, no stemming), as the stack's twin filter scopes its modes. Documents that share
    no term with the question score 0 and are left out, as a BM25 engine would."""
    answers: dict[str, Answer] = {}
    for twin, docs in by_twin(rs).items():
        index = bm25s.BM25()
        index.index(tokens([rs.memories[d].text for d in docs]), show_progress=False)
        asked = [q for q, question in rs.questions.items() if question.twin == twin]
        for qid, words in zip(asked, tokens([rs.questions[q].text[:MAX_QUERY_CHARS]
                                             for q in asked]), strict=True):
            scores = index.get_scores(words) if words else np.zeros(len(docs))
            order = np.argsort(-scores, kind="stable")[: K + 1]
            answers[qid] = Answer([docs[j] for j in order if scores[j] > 0])
    return answers


def by_twin(rs: RecallSet) -> dict[str, list[str]]:
    """Doc ids per twin, in logging order."""
    out: dict[str, list[str]] = {}
    for doc, memory in rs.memories.items():
        out.setdefault(memory.twin, []).append(doc)
    return out


@dataclass(frozen=True)
class Figures:
    ndcg: float
    recall: float
    p50_ms: float | None
    p95_ms: float | None
    cross_twin: int
    queries: int


def figures(rs: RecallSet, answers: dict[str, Answer], which: str) -> Figures | None:
    asked = [q for q in rs.questions if half(q) == which and q in answers]
    if not asked:
        return None
    ranked = {q: [d for d in answers[q].ranked if not (rs.exclude_self and d == q)]
              for q in asked}
    ms = sorted(m for q in asked if (m := answers[q].ms) is not None)
    return Figures(
        ndcg=sum(ndcg_at_k(ranked[q], rs.gains[q]) for q in asked) / len(asked),
        recall=sum(recall_at_k(ranked[q], rs.relevant[q]) for q in asked) / len(asked),
        p50_ms=ms[len(ms) // 2] if ms else None,
        p95_ms=ms[min(len(ms) - 1, int(len(ms) * 0.95))] if ms else None,
        cross_twin=sum(answers[q].cross_twin for q in asked), queries=len(asked))


def goals(rs: RecallSet, report: dict[str, Figures]) -> list[dict[str, Any]]:
    """The goals on the report half; ``met`` is None when a mode was not measured."""
    hybrid = report.get("hybrid")
    singles = [report[m].ndcg for m in ("keyword", "semantic") if m in report]
    out: list[dict[str, Any]] = [{
        "goal": "hybrid nDCG@10 >= the best single mode (keyword, semantic)",
        "hybrid": hybrid.ndcg if hybrid else None, "target": max(singles) if singles else None,
        "met": None if hybrid is None or not singles else hybrid.ndcg >= max(singles)}]
    if rs.margin_over_bm25 is not None and BM25 in report:
        target = report[BM25].ndcg + rs.margin_over_bm25
        out.append({"goal": f"hybrid nDCG@10 >= BM25 + {rs.margin_over_bm25}",
                    "hybrid": hybrid.ndcg if hybrid else None, "target": target,
                    "met": None if hybrid is None else hybrid.ndcg >= target})
    return out


# -- the stack --------------------------------------------------------------------------------

RETRY_STATUS = (429, 502, 503, 504)
ATTEMPTS = 6
READY_WAIT_S = 120.0
POLL_S = 1.0


class Edge:
    """A region's edge as one internal caller. Every call has a timeout; a 429/502/503/504 or a
    dropped connection is tried again (events carry idempotency keys, so nothing is stored
    twice); any other answer stops the run with what was asked and what came back."""

    def __init__(self, http: httpx.AsyncClient, url: str, jwt: str) -> None:
        self.http, self.url, self.auth = http, url.rstrip("/"), f"Bearer {jwt}"

    async def call(self, method: str, path: str, *, body: object = None,
                   params: dict[str, str] | None = None, token: str = "",
                   ok: Iterable[int] = (200,)) -> tuple[Any, float]:
        """The answer's JSON and the last attempt's milliseconds."""
        headers = {"Authorization": self.auth, "Cache-Control": "no-cache"}
        if token:
            headers["X-Consistency-Token"] = token
        attempt = 0
        while True:
            attempt += 1
            start = time.perf_counter()
            try:
                answer = await self.http.request(method, self.url + path, json=body,
                                                 params=params, headers=headers)
            except httpx.TransportError as e:
                if attempt == ATTEMPTS:
                    raise SystemExit(f"{method} {self.url}{path}: {type(e).__name__} {e} "
                                     "(is the stack up? memorybank up --data-dir DIR)") from e
                await asyncio.sleep(attempt)
                continue
            ms = (time.perf_counter() - start) * 1000
            if answer.status_code in ok:
                return answer.json(), ms
            if answer.status_code not in RETRY_STATUS or attempt == ATTEMPTS:
                raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
            try:
                wait = float(answer.headers.get("Retry-After", attempt))
            except ValueError:
                wait = attempt
            await asyncio.sleep(min(max(wait, 0.1), 30))


def event_batches(rs: RecallSet, twin_ids: dict[str, str], tag: str) -> list[dict[str, Any]]:
    """``POST /v1/events`` bodies: each twin's memories in order, at most MAX_EVENTS a batch;
    the payload carries the doc id, which is how the listing maps event ids back."""
    batches = []
    for twin, docs in by_twin(rs).items():
        for i in range(0, len(docs), MAX_EVENTS):
            batches.append({"events": [{
                "twin_id": twin_ids[twin], "type": "recall.memory", "payload": {"ref": doc},
                "text": rs.memories[doc].text,
                "occurred_at": rs.memories[doc].occurred_at.isoformat(),
                "idempotency_key": f"{tag}/{hashlib.sha256(doc.encode()).hexdigest()[:40]}",
            } for doc in docs[i:i + MAX_EVENTS]]})
    return batches


def query_body(text: str, twin_id: str, mode: str, limit: int = K + 1) -> dict[str, Any]:
    return {"query": text[:MAX_QUERY_CHARS], "mode": mode, "limit": limit,
            "filters": {"twin_id": twin_id, "kind": "event"}}


def read_hits(hits: list[dict[str, Any]], doc_of: dict[str, str],
              twin_id: str) -> tuple[list[str], int]:
    """A query's hits as doc ids (an unknown id stays, prefixed, so it matches nothing) and the
    count of hits of another twin (a leak)."""
    return ([doc_of.get(str(h.get("id")), f"?{h.get('id')}") for h in hits],
            sum(1 for h in hits if h.get("twin_id") != twin_id))


@dataclass(frozen=True)
class Readiness:
    seconds: float
    twins_ready: int
    twins: int


async def log_memories(edge: Edge, rs: RecallSet, twin_ids: dict[str, str],
                       tag: str) -> tuple[dict[str, str], str]:
    """Creates the twins, logs the memories; (event id -> doc id, a token covering all)."""
    seen = Tokens()
    for twin_id in twin_ids.values():
        answer, _ = await edge.call("POST", "/v1/twins", body={"twin_id": twin_id},
                                    ok=(201, 409))  # 409: created by an attempt that timed out
        seen = seen.merge(Tokens.maybe(answer.get("consistency_token")))
    batches = event_batches(rs, twin_ids, tag)
    for n, body in enumerate(batches, 1):
        answer, _ = await edge.call("POST", "/v1/events", body=body, ok=(202,))
        seen = seen.merge(Tokens.parse(answer["consistency_token"]))
        if n % 20 == 0:
            note(f"  {n}/{len(batches)} batches logged")
    token, doc_of = str(seen), {}
    for twin_id in twin_ids.values():
        cursor = ""
        while True:
            params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
            page, _ = await edge.call("GET", f"/v1/twins/{twin_id}/events", params=params,
                                      token=token)
            for item in page["items"]:
                ref = (item.get("payload") or {}).get("ref")
                if isinstance(ref, str):
                    doc_of[str(item["event_id"])] = ref
            cursor = page.get("next_cursor") or ""
            if not cursor:
                break
    missing = rs.memories.keys() - set(doc_of.values())
    if missing:
        raise SystemExit(f"{len(missing)} logged events were not listed back "
                         f"(e.g. {sorted(missing)[:3]}): cannot map hits to judgements")
    return doc_of, token


async def wait_semantic(edge: Edge, rs: RecallSet, twin_ids: dict[str, str],
                        event_of: dict[str, str], token: str) -> Readiness:
    """Vectors are computed after the 202: polls until a semantic query finds every twin's
    last event, or READY_WAIT_S pass (asking every POLL_S)."""
    start = time.perf_counter()
    pending = {twin: docs[-1] for twin, docs in by_twin(rs).items()}
    while pending and time.perf_counter() - start < READY_WAIT_S:
        for twin, last in list(pending.items()):
            body = query_body(rs.memories[last].text, twin_ids[twin], "semantic", limit=100)
            answer, _ = await edge.call("POST", "/v1/knowledge/query", body=body, token=token)
            if any(str(h.get("id")) == event_of[last] for h in answer["results"]):
                del pending[twin]
        if pending:
            await asyncio.sleep(POLL_S)
    return Readiness(round(time.perf_counter() - start, 1), len(twin_ids) - len(pending),
                     len(twin_ids))


async def ask_stack(edge: Edge, rs: RecallSet, tag: str,
                    questions: list[str]) -> tuple[dict[str, dict[str, Answer]], Readiness]:
    twin_ids = {twin: f"{tag}-{twin}" for twin in by_twin(rs)}
    note(f"{rs.name}: {len(twin_ids)} twins, {len(rs.memories)} events -> {edge.url} ({tag})")
    doc_of, token = await log_memories(edge, rs, twin_ids, tag)
    ready = await wait_semantic(edge, rs, twin_ids, {d: e for e, d in doc_of.items()}, token)
    note(f"  semantic index: {ready.twins_ready}/{ready.twins} twins' last events found "
         f"after {ready.seconds} s")
    answers: dict[str, dict[str, Answer]] = {}
    for mode in STACK_MODES:
        answers[mode] = {}
        for qid in questions:
            twin_id = twin_ids[rs.questions[qid].twin]
            body = query_body(rs.questions[qid].text, twin_id, mode)
            answer, ms = await edge.call("POST", "/v1/knowledge/query", body=body, token=token)
            ranked, cross_twin = read_hits(answer["results"], doc_of, twin_id)
            answers[mode][qid] = Answer(ranked, ms, cross_twin)
            if len(answers[mode]) % 250 == 0:
                note(f"  {mode}: {len(answers[mode])}/{len(questions)} questions")
        note(f"  {mode}: all {len(questions)} questions asked")
    return answers, ready


def edge_of(data_dir: Path, region: str, tag: str) -> tuple[str, str]:
    """(the region's edge URL, an internal caller's token) of the stack in ``data_dir``."""
    from devstack.errors import StackError
    from devstack.launcher import Stack
    from devstack.secrets import mint_token

    stack = Stack(data_dir)
    try:
        edges = stack.topology().edges
        secret = stack.secrets().jwt_hs256_secret
    except StackError as e:
        raise SystemExit(str(e)) from e
    if region not in edges:
        raise SystemExit(f"no edge for {region!r} in {data_dir}: try {', '.join(sorted(edges))}")
    return edges[region], mint_token(secret, f"bench-{tag}", tier="internal", ttl=6 * 3600)


# -- the run ----------------------------------------------------------------------------------

def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def collections(args: argparse.Namespace) -> list[RecallSet]:
    sets = [synthetic(args.seed, args.twins, args.facts, args.chatter)]
    try:
        sets.append(lee(args.lee))
    except SystemExit as e:  # no gensim and no --lee: the other sets still run
        if args.lee:
            raise
        note(f"Lee set skipped: {e}")
    if args.locomo:
        sets.append(load_locomo(args.locomo))
    return sets


def table(rows: dict[str, Figures]) -> list[str]:
    lines = ["| mode | nDCG@10 | Recall@10 | p50 ms | p95 ms | cross-twin hits | queries |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, f in rows.items():
        label = "bm25 (bm25s, in-process)" if mode == BM25 else mode
        p50, p95 = (f"{v:.1f}" if v is not None else "-" for v in (f.p50_ms, f.p95_ms))
        lines.append(f"| {label} | {f.ndcg:.4f} | {f.recall:.4f} | {p50} | {p95} | "
                     f"{f.cross_twin} | {f.queries} |")
    return lines


def report(rs: RecallSet, answers: dict[str, dict[str, Answer]], ready: Readiness | None,
           show_tune: bool) -> dict[str, Any]:
    halves = {}
    for which in ("report", "tune") if show_tune else ("report",):
        rows = {m: f for m, a in answers.items() if (f := figures(rs, a, which)) is not None}
        halves[which] = rows
    counts = {h: sum(1 for q in rs.questions if half(q) == h) for h in ("tune", "report")}
    return {
        "name": rs.name, "twins": len(by_twin(rs)), "events": len(rs.memories),
        "questions": counts, "semantic_ready": ready and asdict(ready),
        "cross_twin_hits": {m: sum(a.cross_twin for a in answers[m].values())
                            for m in answers if m != BM25},
        "halves": {h: {m: asdict(f) for m, f in rows.items()} for h, rows in halves.items()},
        "goals": goals(rs, halves["report"]),
    }


def markdown(result: dict[str, Any], offline: bool) -> str:
    q = result["questions"]
    lines = [f"### {result['name']}", "",
             f"{result['twins']} twins, {result['events']} events; questions: report half "
             f"{q['report']}, tune half {q['tune']}; K = {K}"]
    ready = result["semantic_ready"]
    if ready:
        caught = ready["twins_ready"] == ready["twins"]
        lines.append(f"semantic index: {'every' if caught else 'NOT every'} twin's last event "
                     f"found by a semantic query ({ready['twins_ready']}/{ready['twins']}) after "
                     f"{ready['seconds']} s" + ("" if caught else ": semantic and hybrid "
                                                "figures undercount"))
    if result["cross_twin_hits"]:
        leaks = ", ".join(f"{m} {n}" for m, n in result["cross_twin_hits"].items())
        lines.append(f"cross-twin hits over all questions (must be 0): {leaks}")
    for which, rows in result["halves"].items():
        lines += ["", f"{which} half:", "", *table({m: Figures(**f) for m, f in rows.items()})]
    lines.append("")
    for g in result["goals"]:
        if g["met"] is None:
            verdict = "not measured (--offline)" if offline else "not measured"
        else:
            verdict = (f"{'met' if g['met'] else 'NOT met'}: hybrid {g['hybrid']:.4f}, "
                       f"target {g['target']:.4f}")
        lines.append(f"goal: {g['goal']}: {verdict}")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, sets: list[RecallSet]) -> list[dict[str, Any]]:
    tag = f"rq-{uuid.uuid4().hex[:8]}"
    edge_url, jwt = ("", "") if args.offline else edge_of(args.data_dir, args.region, tag)
    results = []
    timeout = httpx.Timeout(60.0, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        for rs in sets:
            asked = list(rs.questions)[: args.limit_queries or None]
            bm25 = bm25_answers(rs)
            answers = {BM25: {q: bm25[q] for q in asked}}
            ready = None
            if not args.offline:
                stack, ready = await ask_stack(Edge(http, edge_url, jwt), rs, tag, asked)
                answers = {**stack, **answers}
            result = report(rs, answers, ready, args.show_tune)
            results.append(result)
            if not args.json:
                print(markdown(result, args.offline), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="a running stack's (memorybank up)")
    parser.add_argument("--region", default="ams")
    parser.add_argument("--offline", action="store_true", help="BM25 only: no stack")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--twins", type=int, default=20)
    parser.add_argument("--facts", type=int, default=15, help="trait statements per twin")
    parser.add_argument("--chatter", type=int, default=30, help="filler events per twin")
    parser.add_argument("--lee", type=Path, help="gensim wheel or its test_data directory")
    parser.add_argument("--locomo", type=Path, help="locomo10.json")
    parser.add_argument("--limit-queries", type=int, default=0,
                        help="only the first N questions of each collection")
    parser.add_argument("--show-tune", action="store_true", help="also print the tune half")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if not args.offline and args.data_dir is None:
        parser.error("--data-dir is required for the stack's modes (or --offline)")
    results = asyncio.run(run(args, collections(args)))
    if args.json:
        print(json.dumps({"k": K, "seed": args.seed, "offline": args.offline,
                          "collections": results}, indent=2))


if __name__ == "__main__":
    main()
