"""Data residency on a two-zone fleet (devstack.cells): the home cell ``g1`` (zone global, in
ams and mow) and ``ru1`` (zone ru, in mow only), started by the launcher the dev stack uses.

The canary: a twin pinned to ``ru`` with unique markers in its profile, an event, a trajectory
step and a text artifact, written and read through the ams edge. Then every file outside the
ru cell's directory (heap, WAL, logs, blobs, Redis, ...) and every Postgres node and Redis of the
global cell is searched: no marker, no row of the twin. The same search inside the ru cell finds
every marker, so the scan can fail."""

from __future__ import annotations

import mmap
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from devstack import cells
from devstack.launcher import Stack
from devstack.postgres import pg_data_root
from devstack.procs import unprivileged
from devstack.secrets import mint_token
from devstack.testing import running_stack
from mbwire.cells import Cell, CellMap
from mbwire.token import Tokens
from memorybank_client import MemoryBank
from memorybank_client.errors import ProblemError

pytestmark = pytest.mark.integration

FLEET = CellMap(cells=(Cell("g1", "global", ("ams", "mow")), Cell("ru1", "ru", ("mow",))))


@pytest.fixture(scope="module")
def fleet() -> Iterator[Stack]:
    with running_stack(regions=("ams", "mow"), fleet=FLEET, central_shards=1) as stack:
        yield stack


def _jwt(stack: Stack, sub: str) -> str:
    return mint_token(stack.secrets().jwt_hs256_secret, sub, tier="internal")


def _edge(stack: Stack, region: str) -> str:
    return stack.topology().edges[region]


def _ru(stack: Stack) -> Stack:
    return stack.cell_stacks()["ru1"]


# -- the canary ----------------------------------------------------------------------------


def _files(root: Path, skip: Path | None = None) -> Iterator[Path]:
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _found(paths: Iterator[Path], markers: list[bytes]) -> dict[bytes, list[str]]:
    """Which markers occur in which files (raw bytes: heap pages, WAL, logs, blobs)."""
    pattern = re.compile(b"|".join(re.escape(m) for m in markers))
    hits: dict[bytes, list[str]] = {}
    for path in paths:
        try:
            if path.stat().st_size == 0:
                continue
            with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                for hit in set(pattern.findall(m)):
                    hits.setdefault(hit, []).append(str(path))
        except (PermissionError, FileNotFoundError, ValueError, OSError):
            continue
    return hits


def _rows_naming(url: str, needles: list[str]) -> dict[str, int]:
    """Rows of every table in the node that name any needle, by table (the whole row as text:
    twins, their logs, grants, events, trajectories, artifacts, chunks, stored answers,
    the change feed)."""
    out = {}
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        tables = [r[0] for r in conn.execute(
            "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = "
            "c.relnamespace where n.nspname = 'public' and c.relkind = 'r'").fetchall()]
        for table in tables:
            like = " or ".join("t::text like %s" for _ in needles)
            count = conn.execute(f"select count(*) from {table} t where {like}",
                                 [f"%{n}%" for n in needles]).fetchone()
            if count and count[0]:
                out[table] = int(count[0])
    return out


def _redis_naming(url: str, needles: list[bytes]) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        hits = []
        for key in client.scan_iter(count=1000):
            dumped = client.dump(key) or b""
            if any(n in key or n in dumped for n in needles):
                hits.append(key)
        return hits
    finally:
        client.close()


def test_a_twin_pinned_to_ru_leaves_no_byte_outside_its_zone(fleet: Stack) -> None:
    tag = uuid.uuid4().hex[:12]
    # Each marker random on its own (a compressed file stores a repeated run as a reference).
    markers = {what: f"canary-{what}-{uuid.uuid4().hex[:12]}"
               for what in ("profile", "event", "step", "artifact")}
    # Sealed, the markers are in no file anywhere; an event's type is kept in the clear, so this
    # one must be found in the zone (a scan that reads nothing fails) and nowhere outside.
    control = f"canary-type-{uuid.uuid4().hex[:12]}"
    owner = f"canary-{tag}"
    with MemoryBank(_edge(fleet, "ams"), _jwt(fleet, owner)) as mb:
        created = mb.twins.create({"note": markers["profile"]}, residency="ru")
        twin = created.twin_id
        assert twin.startswith("ru1~") and created.residency == "ru"
        mb.twins.log_events([{"twin_id": twin, "type": control,
                              "payload": {"note": markers["event"]}}])
        mb.twins.update_trajectory(twin, "canary", 0, evidence={"note": markers["step"]})
        text = f"A field note that only Moscow keeps: {markers['artifact']}.".encode()
        mb.artifacts.upload(twin, text, "text/plain", {"title": "canary"})
        view = mb.twins.get(twin)
        assert view.residency == "ru" and view.profile["note"] == markers["profile"]
        assert "ru1." in (mb.consistency_token or "")

    # Read through the ams edge: served by the ru cell's hub in mow, never stored at the PoP.
    r = httpx.get(f"{_edge(fleet, 'ams')}/v1/twins/{twin}",
                  headers={"Authorization": f"Bearer {_jwt(fleet, owner)}"}, timeout=15)
    assert r.status_code == 200, r.text
    assert "hub=mow" in r.headers["x-served-by"] and "edge=ams" in r.headers["x-served-by"]
    assert "no-store" in r.headers.get("cache-control", "")

    # Everything on disk: heap pages are written by a checkpoint (the WAL holds them already).
    ru = _ru(fleet)
    for stack in (fleet, ru):
        with psycopg.connect(stack.topology().postgres.primary, autocommit=True) as conn:
            conn.execute("checkpoint")

    needles = [m.encode() for m in (*markers.values(), control)]
    run_as = unprivileged()
    inside = [ru.data_dir, pg_data_root(ru.data_dir, run_as)]
    outside_roots = {fleet.data_dir, pg_data_root(fleet.data_dir, run_as)}
    outside: dict[bytes, list[str]] = {}
    for root in outside_roots:
        for hit, where in _found(_files(root, skip=ru.data_dir), needles).items():
            outside.setdefault(hit, []).extend(where)
    assert outside == {}, f"personal data of a ru twin outside its zone: {outside}"
    within: dict[bytes, list[str]] = {}
    for root in dict.fromkeys(inside):
        for hit, where in _found(_files(root), needles).items():
            within.setdefault(hit, []).extend(where)
    assert set(within) == {control.encode()}, (
        f"only the plaintext control must be found, in the zone: {within}")

    # Every Postgres node and Redis of the global cell, asked for the twin's rows.
    topo = fleet.topology()
    for name, url in topo.postgres.nodes.items():
        assert _rows_naming(url, [twin, *markers.values()]) == {}, name
    for region, url in topo.redis.items():
        assert _redis_naming(url, [twin.encode(), *needles]) == [], region
    # ... and the ru cell's primary holds them (so that question can fail too).
    held = _rows_naming(ru.topology().postgres.primary, [twin])
    assert {"twins", "events", "artifacts"} <= {t.split(".")[-1].split("_p")[0] for t in held} \
        or len(held) >= 4, held


# -- routing, placement, tokens ------------------------------------------------------------


def test_views_name_the_zone_and_global_twins_stay_in_the_home_cell(fleet: Stack) -> None:
    with MemoryBank(_edge(fleet, "mow"), _jwt(fleet, "placer")) as mb:
        home = mb.twins.create({"a": 1})
        assert "~" not in home.twin_id and home.residency == "global"
        named = f"ru~named-{uuid.uuid4().hex[:6]}"
        pinned = mb.twins.create({"a": 2}, residency="ru", twin_id=named)
        assert pinned.twin_id.startswith("ru~") and pinned.residency == "ru"
        # One session, two cells: the SDK's token names both, and reads with it are fresh.
        mb.twins.patch(home.twin_id, {"a": 3})
        mb.twins.patch(pinned.twin_id, {"a": 4})
        held = Tokens.parse(mb.consistency_token or "")
        assert set(held.positions) == {"", "ru1"}
        assert mb.twins.get(home.twin_id).profile == {"a": 3}
        assert mb.twins.get(pinned.twin_id).profile == {"a": 4}


@pytest.mark.parametrize("body, why", [
    ({"residency": "mars"}, "zone"),
    ({"residency": "ru", "twin_id": "plain-id"}, "ru~"),
    ({"twin_id": "ru1~sneaky"}, "ru"),
])
def test_a_create_in_the_wrong_zone_is_refused_and_nothing_is_stored(
    fleet: Stack, body: dict[str, str], why: str
) -> None:
    r = httpx.post(f"{_edge(fleet, 'ams')}/v1/twins", json=body, timeout=15,
                   headers={"Authorization": f"Bearer {_jwt(fleet, 'wrong-zone')}"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert why in r.text
    if "twin_id" in body:
        with MemoryBank(_edge(fleet, "ams"), _jwt(fleet, "wrong-zone")) as mb:
            with pytest.raises(ProblemError) as exc:
                mb.twins.get(body["twin_id"])
            assert exc.value.status in (404, 503)


def test_events_of_two_zones_in_one_request_are_refused(fleet: Stack) -> None:
    with MemoryBank(_edge(fleet, "ams"), _jwt(fleet, "mixer")) as mb:
        a = mb.twins.create({}).twin_id
        b = mb.twins.create({}, residency="ru").twin_id
        with pytest.raises(ProblemError) as exc:
            mb.twins.log_events([{"twin_id": a, "type": "x"}, {"twin_id": b, "type": "x"}])
        assert exc.value.status == 422


def test_a_batch_mixing_zones_answers_each_item_from_its_own_cell(fleet: Stack) -> None:
    with MemoryBank(_edge(fleet, "ams"), _jwt(fleet, "batcher")) as mb:
        a = mb.twins.create({"z": "g"}).twin_id
        b = mb.twins.create({"z": "r"}, residency="ru").twin_id
        answer = mb.batch([{"action": "get_twin_profile", "params": {"twin_id": b}},
                           {"action": "get_twin_profile", "params": {"twin_id": a}},
                           {"action": "get_twin_profile", "params": {"twin_id": "ru~nobody"}}])
        statuses = [item.status for item in answer.results]
        assert statuses == [200, 200, 404]
        assert answer.results[0].body["profile"] == {"z": "r"}
        assert answer.results[0].body["residency"] == "ru"
        assert answer.results[1].body["profile"] == {"z": "g"}


def test_when_its_zone_cannot_be_reached_a_pinned_twin_is_a_503_naming_it(fleet: Stack) -> None:
    with MemoryBank(_edge(fleet, "ams"), _jwt(fleet, "outage")) as mb:
        pinned = mb.twins.create({"k": 1}, residency="ru").twin_id
        home = mb.twins.create({"k": 1}).twin_id
    ru = _ru(fleet)
    auth = {"Authorization": f"Bearer {_jwt(fleet, 'outage')}"}
    ru.stop_process("hub-mow")
    try:
        r = httpx.get(f"{_edge(fleet, 'ams')}/v1/twins/{pinned}", headers=auth, timeout=30)
        assert r.status_code == 503, r.text
        assert r.json().get("zone") == "ru" and "ru" in r.json()["detail"]
        # The global twin is served as before: one cell's outage is its own.
        assert httpx.get(f"{_edge(fleet, 'ams')}/v1/twins/{home}", headers=auth,
                         timeout=15).status_code == 200
    finally:
        ru.start_process("hub-mow")


def test_a_cells_primary_down_stops_only_its_own_twins_writes(fleet: Stack) -> None:
    jwt = _jwt(fleet, "writer-outage")
    with MemoryBank(_edge(fleet, "ams"), jwt) as mb:
        pinned = mb.twins.create({"k": 0}, residency="ru").twin_id
        home = mb.twins.create({"k": 0}).twin_id
    ru = _ru(fleet)
    # Both nodes that may lead: the cell has no writable Postgres at all.
    ru.stop_process("pg-standby")
    ru.stop_process("pg-primary")
    auth = {"Authorization": f"Bearer {jwt}", "Content-Type": "application/merge-patch+json"}
    try:
        r = httpx.patch(f"{_edge(fleet, 'ams')}/v1/twins/{pinned}", content=b'{"k": 1}',
                        headers=auth, timeout=60)
        assert r.status_code == 503, r.text
        ok = httpx.patch(f"{_edge(fleet, 'ams')}/v1/twins/{home}", content=b'{"k": 1}',
                         headers=auth, timeout=15)
        assert ok.status_code == 200, ok.text
        # Reads of the pinned twin go on from its zone's replica.
        read = httpx.get(f"{_edge(fleet, 'mow')}/v1/twins/{pinned}",
                         headers={"Authorization": f"Bearer {jwt}"}, timeout=15)
        assert read.status_code == 200 and read.json()["profile"] == {"k": 0}
    finally:
        ru.start_process("pg-primary")
        ru.start_process("pg-standby")
    with MemoryBank(_edge(fleet, "ams"), jwt, timeout=30) as mb:
        assert mb.twins.patch(pinned, {"k": 2}).version >= 2


def test_status_json_keeps_the_home_cell_keys_and_adds_the_cells(fleet: Stack) -> None:
    import subprocess
    import sys

    import msgspec

    out = subprocess.run([sys.executable, "-m", "devstack.cli", "status", "--json",
                          "--data-dir", str(fleet.data_dir)], capture_output=True, check=False,
                         env={**os.environ})
    report = msgspec.json.decode(out.stdout)
    assert {"regions", "edges", "hubs", "central", "postgres", "redis"} <= set(report)
    assert report["zones"] == {"global": ["g1"], "ru": ["ru1"]}
    assert report["cells"]["ru1"]["regions"] == ["mow"]
    assert report["cells"]["ru1"]["data_dir"] == str(cells.cell_dir(fleet.data_dir, "ru1"))
    assert report["cells"]["ru1"]["report"]["hubs"].keys() == {"mow"}


def test_metrics_carry_the_cell(fleet: Stack) -> None:
    text = httpx.get(f"{_ru(fleet).topology().hubs['mow']}/metrics", timeout=10).text
    assert 'cell="ru1"' in text
    text = httpx.get(f"{fleet.topology().hubs['ams']}/metrics", timeout=10).text
    assert 'cell="g1"' in text and 'cell="ru1"' not in text


async def test_a_realtime_subscription_to_a_pinned_twin_is_served_in_its_zone(
    fleet: Stack,
) -> None:
    import asyncio

    from memorybank_client import AsyncMemoryBank

    async with AsyncMemoryBank(_edge(fleet, "ams"), _jwt(fleet, "listener")) as mb:
        twin = (await mb.twins.create({}, residency="ru")).twin_id
        stream = mb.subscribe([f"twin:{twin}"], since=0, residency="ru")

        async def first_event() -> object:
            async for message in stream:
                if message.channel == f"twin:{twin}" and message.event == "event":
                    return message
            raise AssertionError("the subscription ended")

        arrival = asyncio.ensure_future(first_event())
        await mb.twins.log_events([{"twin_id": twin, "type": "ping"}])
        try:
            message = await asyncio.wait_for(arrival, 20)
        finally:
            arrival.cancel()
            await stream.aclose()
        token = getattr(message, "consistency_token", "")
        assert token.startswith("ru1.")
        listed = await mb.twins.events(twin, consistency_token=token)
        assert [e.type for e in listed.items] == ["ping"]


async def test_the_demos_residency_step_passes_on_two_zones(fleet: Stack) -> None:
    from examples import demo_cells

    others = {name: cell.topology() for name, cell in fleet.cell_stacks().items()}
    assert await demo_cells.residency(fleet.topology(), others, _jwt(fleet, "demo-olga"), "t")
