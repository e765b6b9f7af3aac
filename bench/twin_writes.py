"""Twin writes at scale (issue "Twin writes at scale"): WAL per small patch of a big twin, merge
and read cost as the twins grow, and central's memory; prints figures, asserts nothing.

    .venv/bin/python bench/twin_writes.py [--json] [--patches 512] [--scale 1000,10000]
        [--seconds 8] [--concurrency 8] [--resident-twins N] [--resident-bytes B]

One fresh local stack (ams, iad; every service; central's default shards), always torn down:
1. WAL per small patch: one twin whose profile is ~50 KB of JSON (450 keys, each an object with a
   40-character random string, an int, a small list and a nested object; seeded) is created
   through edge-ams, then ``--patches`` merge patches of ~10 bytes each (``{"k7": {"n": i}}``)
   go one at a time through edge-ams (edge → hub → central → commit → ack). On the primary:
   ``checkpoint`` first (so each page's first change after it is a full-page image, counted alike
   in every run), ``pg_current_wal_lsn()`` before the first patch, (a) after the 100th (below
   central's compaction threshold of 128: appends alone) and (b) 3 s after the last (every
   compaction of the series included: with 512 patches, four). Bytes per patch is the LSN
   difference over the patches; also the twin's stored sizes (``twins.state``, ``profile``:
   both sealed since migration 0013, so each 31 bytes more than its plaintext).
2. Scale curve: for each N of ``--scale``, twins ``scale-000000`` .. are loaded straight into the
   primary with COPY (each a ~50 KB profile with a few values varied, its Yjs state made by
   ``crdt.new_state``, its ``profile`` column by ``crdt.profile_of``, both sealed as central
   seals them under a data key made for the twin in the stack's key store (``<data dir>/keys``,
   ``sealing.Keyring.configure``), as central's create makes it; columns found in
   ``information_schema``, so ``twins.compacted``, where it exists, is set to 1 as well); the
   next N loads only the difference. Then, ``--seconds`` each, with ``--concurrency``
   connections (``bench/loadgen.py``): (a) merges: merge patches to uniformly random twins among
   the N, straight at central (hop signed with central's secret, as a hub does), each to the
   twin's home shard; (b) reads: uncached profile reads (``GET /v1/twins/{id}``) of random twins
   at a second ams hub run with ``HUB_CACHE_READS=false`` (no Redis, no near cache: every read
   is a replica query; ``spine_servers.uncached_hub_spec``, started for each read run and
   stopped after it, so it is not running during loads and merges); (c) central's resident
   memory: the RSS of every central shard's process tree (granian and its worker) after the
   load, at its peak during the merges (sampled every 0.5 s) and after the reads.
   Central keeps hot twins resident, bounded by a count (``CENTRAL_RESIDENT_TWINS``,
   ``--resident-twins``) or by bytes (``CENTRAL_RESIDENT_BYTES``, ``--resident-bytes``),
   whichever this tree's central has: a flag goes into the stack's environment only when given,
   and is refused here if central does not know the setting (central refuses unknown
   ``CENTRAL_*`` settings at start). The first line printed names the bound in force.
100k twins (``--scale 1000,10000,100000``) is opt-in: a twin here is ~69 KB of Yjs state and a
~51 KB JSON profile, ~89 KB on disk (TOAST-compressed, with its index entries; measured before
the values were sealed: ciphertext does not compress, so expect more now), so 100k is
~9 GB on each of the stack's four Postgres nodes (primary, standby, two replicas: ~36 GB in all)
and, at the 67-81 twins/s COPY managed here, 20-25 minutes of loading (the issue's estimate, for
~57 KB + ~52 KB twins: ~11 GB and ~1 h). Everything shares this machine's 2 cores; figures are
this run's."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import json
import multiprocessing
import os
import random
import string
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import loadgen  # noqa: E402
import msgspec  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from psycopg import sql  # noqa: E402
from spine_servers import Server, keys_dir, serving, uncached_hub_spec  # noqa: E402

import crdt  # noqa: E402
from central.settings import CentralSettings  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import Secrets, mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from devstack.topology import Topology  # noqa: E402
from mbwire import HopSigner, Principal  # noqa: E402
from mbwire.placement import central_shard  # noqa: E402
from sealing import Keyring, KeyStore, TwinKey  # noqa: E402

REGIONS = ("ams", "iad")
KEYS = 450  # top-level keys of a profile: ~51 KB of JSON, ~69 KB of Yjs state
MERGE_PATCH = "application/merge-patch+json"
SCALE_OWNER = "bench-scale-owner"
LETTERS = string.ascii_letters + string.digits
Figures = dict[str, Any]


def say(line: str = "") -> None:
    print(line, flush=True)


def kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB"


# -- profiles and twins ---------------------------------------------------------------------------


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(LETTERS, k=n))


def _entry(rng: random.Random) -> dict[str, Any]:
    return {"s": _text(rng, 40), "n": rng.randrange(10**9), "l": [_text(rng, 6) for _ in range(3)],
            "o": {"a": rng.randrange(100)}}


def make_profile(seed: int | str) -> dict[str, Any]:
    """~51 KB of JSON: ``KEYS`` keys ``k0``.., each a small object (see ``_entry``)."""
    rng = random.Random(seed)
    return {f"k{i}": _entry(rng) for i in range(KEYS)}


_BASE: dict[str, Any] = {}
_KEYS: dict[str, KeyStore] = {}  # a pool worker's key store, by directory


def key_store(keys: str) -> KeyStore:
    """The stack's key store (``keys``: its directory), opened as services open it."""
    if keys not in _KEYS:
        _KEYS[keys] = Keyring.configure(keys_dir=keys).require()
    return _KEYS[keys]


def sealed_twin(keys: str, twin_id: str, state: bytes, profile: Any) -> tuple[bytes, bytes]:
    """``state`` and ``profile`` as central stores a new twin (``central.store.insert_twin``):
    sealed under the twin's data key, which is made in the stack's key store (``keys``) if the
    twin has none yet, as central's create makes it. Nothing plaintext reaches Postgres."""
    data = key_store(keys).get_or_create(twin_id)
    key = TwinKey(twin_id, data.key_id, data.version, AESGCM(data.key))
    return key.seal("state", state), key.seal_json("profile", profile)


def scale_twin_id(i: int) -> str:
    return f"scale-{i:06d}"


def build_twin(keys: str, i: int) -> tuple[str, bytes, bytes]:
    """Twin ``i`` of the scale curve: one shared base profile with 3 entries of its own, its Yjs
    state and its profile as central stores them (sealed, its key made in the key store
    ``keys``). Run in a process pool."""
    if not _BASE:
        _BASE.update(make_profile("scale-base"))
    rng = random.Random(i)
    profile = dict(_BASE)
    for _ in range(3):
        profile[f"k{rng.randrange(KEYS)}"] = _entry(rng)
    state = crdt.new_state(profile, crdt.client_id_for(SCALE_OWNER))
    twin_id = scale_twin_id(i)
    return (twin_id, *sealed_twin(keys, twin_id, state, crdt.profile_of(state)))


# -- the primary ----------------------------------------------------------------------------------


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def one(conn: psycopg.AsyncConnection[Any], query: LiteralString, *params: Any) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return row[0] if row else None


async def wal_lsn(conn: psycopg.AsyncConnection[Any]) -> str:
    return str(await one(conn, "select pg_current_wal_lsn()::text"))


async def wal_diff(conn: psycopg.AsyncConnection[Any], end: str, start: str) -> int:
    return int(await one(conn, "select pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", end, start))


async def has_table(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    return bool(await one(conn, "select to_regclass(%s) is not null", name))


async def twin_columns(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        "select column_name from information_schema.columns where table_name = 'twins'"
        " and table_schema = current_schema() order by ordinal_position")
    return [r[0] for r in await cur.fetchall()]


async def stored_sizes(conn: psycopg.AsyncConnection[Any], twin_id: str) -> Figures:
    cur = await conn.execute(
        "select octet_length(state), pg_column_size(state), octet_length(profile),"
        " pg_column_size(profile), version from twins where twin_id = %s", (twin_id,))
    row = await cur.fetchone()
    assert row is not None, f"twin {twin_id} is not on the primary"
    # Sealed values (migration 0013): the plaintext's length + sealing.aead.OVERHEAD (31).
    return dict(zip(("state_bytes", "state_stored_bytes", "profile_bytes",
                     "profile_stored_bytes", "version"), row, strict=True))


async def log_rows(conn: psycopg.AsyncConnection[Any], twin_id: str) -> int:
    return int(await one(conn, "select count(*) from twin_updates where twin_id = %s", twin_id))


async def wait_replayed(replica_url: str, lsn: str, within: float = 600.0) -> float:
    """Seconds until ``replica_url`` has replayed ``lsn``."""
    t0 = time.monotonic()
    async with await connect(replica_url) as conn:
        while not await one(conn, "select pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn):
            if time.monotonic() - t0 > within:
                raise RuntimeError(f"{replica_url} has not replayed {lsn} in {within:g} s")
            await asyncio.sleep(0.2)
    return time.monotonic() - t0


# -- 1. WAL per small patch -----------------------------------------------------------------------


async def create_at_edge(http: httpx.AsyncClient, jwt: str, twin_id: str,
                         profile: dict[str, Any]) -> None:
    r = await http.post("/v1/twins", headers={"Authorization": f"Bearer {jwt}"},
                        json={"twin_id": twin_id, "profile": profile})
    if r.status_code != 201:
        raise RuntimeError(f"creating {twin_id}: {r.status_code} {r.text[:300]}")


async def patch_at_edge(http: httpx.AsyncClient, jwt: str, twin_id: str, patch: bytes) -> None:
    r = await http.patch(f"/v1/twins/{twin_id}", content=patch, headers={
        "Authorization": f"Bearer {jwt}", "Content-Type": MERGE_PATCH})
    if r.status_code != 200:
        raise RuntimeError(f"patching {twin_id}: {r.status_code} {r.text[:300]}")


async def wal_per_patch(topo: Topology, secrets: Secrets, patches: int) -> Figures:
    region = REGIONS[0]
    sub = f"bench-wal-{uuid.uuid4().hex[:6]}"
    twin_id, profile = sub, make_profile(1)
    jwt = mint_token(secrets.jwt_hs256_secret, sub, tier="internal")
    first = min(patches, 100)  # below central's compaction threshold (128): appends alone
    say(f"\n1. WAL per small patch: twin {twin_id}, profile {kb(len(msgspec.json.encode(profile)))}"
        f" of JSON, created and patched through edge-{region}; {patches} merge patches of "
        f"~10 bytes, one at a time")
    say("   checkpoint on the primary before the series (each page's first change after it is a "
        "full-page image, counted alike in every run)")
    async with (httpx.AsyncClient(base_url=topo.edges[region], timeout=30) as http,
                await connect(topo.postgres.primary) as conn):
        await create_at_edge(http, jwt, twin_id, profile)
        with_log = await has_table(conn, "twin_updates")
        created = await stored_sizes(conn, twin_id)
        await conn.execute("checkpoint")
        start = await wal_lsn(conn)
        t0 = time.perf_counter()
        for i in range(patches):
            await patch_at_edge(http, jwt, twin_id, b'{"k7":{"n":%d}}' % i)
            if i + 1 == first:
                appended = await wal_lsn(conn)
        took = time.perf_counter() - t0
        await asyncio.sleep(3.0)  # a compaction the last patches made due runs now
        end = await wal_lsn(conn)
        rows = await log_rows(conn, twin_id) if with_log else None
        appends = await wal_diff(conn, appended, start)
        total = await wal_diff(conn, end, start)
        after = await stored_sizes(conn, twin_id)
        compacted = (int(await one(conn, "select compacted from twins where twin_id = %s",
                                   twin_id)) if with_log else None)
    f: Figures = {
        "twin_id": twin_id, "patches": patches, "patch_ms_mean": round(took / patches * 1000, 2),
        "twin_updates_table": with_log, "log_rows_at_end": rows, "compacted_at": compacted,
        "first": first, "wal_bytes_first": appends, "wal_bytes_series": total,
        "wal_per_patch_first": round(appends / first),
        "wal_per_patch_series": round(total / patches), "created": created, "after": after}
    show_wal(f)
    return f


def show_wal(f: Figures) -> None:
    c, a = f["created"], f["after"]
    say(f"   stored twin at creation (sealed): state {kb(c['state_bytes'])} "
        f"({kb(c['state_stored_bytes'])} on disk), profile {kb(c['profile_bytes'])} of sealed JSON "
        f"({kb(c['profile_stored_bytes'])} on disk)")
    say(f"   patches took {f['patch_ms_mean']} ms each (mean, sequential)")
    say(f"   (a) first {f['first']} patches: {f['wal_per_patch_first']:>8,} WAL bytes per patch "
        f"({f['wal_bytes_first']:,})" + (" - appends only, no compaction yet"
                                         if f["twin_updates_table"] else ""))
    say(f"   (b) all {f['patches']} patches: {f['wal_per_patch_series']:>8,} WAL bytes per patch "
        f"({f['wal_bytes_series']:,}, every compaction during the series and 3 s after "
        "included)")
    if f["twin_updates_table"]:
        say(f"       at the end: compacted up to version {f['compacted_at']} of "
            f"{a['version']}, {f['log_rows_at_end']} updates in the log")
    else:
        say("       no twin_updates table in this tree: every patch rewrites the twin")
    say(f"   stored twin after the patches (sealed): version {a['version']}, state "
        f"{kb(a['state_bytes'])} ({kb(a['state_stored_bytes'])} on disk), profile "
        f"{kb(a['profile_bytes'])} ({kb(a['profile_stored_bytes'])} on disk)")


# -- 2. loading the scale curve's twins -----------------------------------------------------------


def made_in_batches(pool: concurrent.futures.Executor, keys: str, start: int, stop: int,
                    batch: int) -> Iterator[list[tuple[str, bytes, bytes]]]:
    """Twins ``start``..``stop - 1`` from ``build_twin`` in ``pool``, a batch at a time, the next
    batch being made while the caller stores this one (so at most two are held)."""
    ahead = None
    build = functools.partial(build_twin, keys)
    for lo in range(start, stop, batch):
        made = pool.map(build, range(lo, min(lo + batch, stop)), chunksize=16)
        if ahead is not None:
            yield list(ahead)
        ahead = made
    if ahead is not None:
        yield list(ahead)


def copy_twins(primary: str, keys: str, columns: list[str], start: int, stop: int,
               batch: int = 256) -> None:
    """Twins ``start``..``stop - 1`` into ``twins`` with COPY, one transaction per batch, their
    states made and sealed in a process pool (one process per core; ``keys``: the stack's key
    store, where each twin's data key is made)."""
    names = ["twin_id", "owner_sub", "state", "profile", "version"]
    names += [c for c in ("compacted",) if c in columns]  # = 1, like version
    copy_sql = sql.SQL("copy twins ({}) from stdin").format(
        sql.SQL(", ").join(map(sql.Identifier, names)))
    spawn = multiprocessing.get_context("spawn")
    with (concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 2, mp_context=spawn) as pool,
          psycopg.connect(primary) as conn):
        for rows in made_in_batches(pool, keys, start, stop, batch):
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for twin_id, state, profile in rows:
                    copy.write_row((twin_id, SCALE_OWNER, state, profile, *[1] * (len(names) - 4)))
            conn.commit()


async def load_to(stack: Stack, have: int, want: int) -> Figures:
    """Tops the scale twins up from ``have`` to ``want``; waits until the ams replica has them."""
    topo = stack.topology()
    t0 = time.monotonic()
    async with await connect(topo.postgres.primary) as conn:
        columns = await twin_columns(conn)
        await asyncio.to_thread(copy_twins, topo.postgres.primary, str(keys_dir(stack)), columns,
                                have, want)
        loaded = time.monotonic() - t0
        end = await wal_lsn(conn)
        size = int(await one(conn, "select pg_total_relation_size('twins')"))
    lag = await wait_replayed(topo.postgres.replicas[REGIONS[0]], end)
    return {"loaded": want - have, "load_s": round(loaded, 1), "replay_wait_s": round(lag, 1),
            "twins_table_bytes": size, "compacted_column": "compacted" in columns}


# -- 2. load: merges at central, uncached reads at a hub ------------------------------------------


class _Patcher:
    """One connection's merge patches: a uniformly random twin among its shard's each time,
    ~10 bytes that change one nested value (never a no-op: the value is unique per writer)."""

    def __init__(self, n: int, twins: list[str], hop: loadgen.Hop, host: str, port: int) -> None:
        self.n, self.twins, self.hop, self.host, self.port = n, twins, hop, host, port
        self.rng = random.Random(n)
        self.count = 0
        self.touched: set[str] = set()

    def __call__(self) -> bytes:
        twin = self.twins[self.rng.randrange(len(self.twins))]
        self.touched.add(twin)
        self.count += 1
        body = b'{"k%d":{"n":%d}}' % (self.rng.randrange(KEYS), self.count * 64 + self.n)
        path = f"/v1/twins/{twin}"
        head = loadgen.request_head("PATCH", self.host, self.port, path,
                                    {"Content-Type": MERGE_PATCH})
        return self.hop.request("PATCH", head, path, body=body)


def patchers(topo: Topology, secrets: Secrets, twins: list[str],
             count: int) -> tuple[list[_Patcher], list[tuple[str, int]]]:
    """Connection n talks to shard n mod S about the twins homed there, as the hubs route."""
    signer, shards = HopSigner(secrets.central_hop_secret), [urlsplit(u) for u in topo.writers]
    made, at = [], []
    for n in range(count):
        k = n % len(shards)
        host, port = shards[k].hostname or "127.0.0.1", shards[k].port or 80
        mine = [t for t in twins if central_shard(t, len(shards)) == k] or twins
        hop = loadgen.Hop(signer, Principal(sub=f"bench-scale-w{n}", tier="internal"))
        made.append(_Patcher(n, mine, hop, host, port))
        at.append((host, port))
    return made, at


def readers(server: Server, secrets: Secrets, twins: list[str], count: int) -> list[loadgen.Maker]:
    """One sub per connection (each sub has its own fleet rate limit); a random twin each read."""
    signer = HopSigner(secrets.edge_hop_secret)
    run = uuid.uuid4().hex[:6]

    def reader(n: int) -> loadgen.Maker:
        hop = loadgen.Hop(signer, Principal(sub=f"bench-read-{run}-{n}", tier="internal"))
        rng = random.Random(1000 + n)

        def make() -> bytes:
            path = f"/v1/twins/{twins[rng.randrange(len(twins))]}"
            return hop.request("GET", loadgen.request_head("GET", "127.0.0.1", server.port, path),
                               path)
        return make

    return [reader(n) for n in range(count)]


def load_figures(r: loadgen.LoadResult) -> Figures:
    ok = r.statuses[200]
    return {"ok_per_s": round(ok / r.seconds, 1) if r.seconds else 0.0,
            "p50_ms": round(r.ms(50), 2), "p95_ms": round(r.ms(95), 2),
            "p99_ms": round(r.ms(99), 2), "non_200": r.non_200,
            "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
            "connection_errors": len(r.errors), "client_cpu": round(r.client_cpu, 2)}


# -- central's memory -----------------------------------------------------------------------------


def central_pids(stack: Stack) -> dict[str, int]:
    return {c.name: c.pid for c in stack.status().children
            if c.name.startswith("central") and c.pid}


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process under it (granian's worker)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
    return total


def central_rss(stack: Stack) -> dict[str, int]:
    return {name: tree_rss(pid) for name, pid in central_pids(stack).items()}


def mb(n: float) -> float:
    return round(n / 2**20, 1)


@dataclass
class PeakRss:
    """Samples central's RSS every ``every`` s while it runs, and once more at its end;
    ``peak``: the largest sum seen."""

    stack: Stack
    every: float = 0.5
    peak: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _sample(self) -> None:
        while True:
            now = await asyncio.to_thread(central_rss, self.stack)
            self.peak = max(self.peak, sum(now.values()))
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, sum(central_rss(self.stack).values()))


# -- 2. one step of the curve ---------------------------------------------------------------------


async def check_read(server: Server, secrets: Secrets, twin_id: str) -> None:
    path, rid = f"/v1/twins/{twin_id}", uuid.uuid4().hex
    me = Principal(sub=f"bench-read-check-{rid[:6]}", tier="internal")
    headers = HopSigner(secrets.edge_hop_secret).sign("GET", path, me, rid)
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(server.url + path, headers={**headers, "x-request-id": rid})
    if r.status_code != 200:
        raise RuntimeError(f"{server.name}: reading {twin_id}: {r.status_code} {r.text[:300]}")


def rss_line(f: Figures) -> str:
    return (f"   central RSS (all shards): after load {mb(sum(f['rss_after_load'].values()))} MB, "
            f"peak during merges {mb(f['rss_peak_merges'])} MB, after merges "
            f"{mb(sum(f['rss_after_merges'].values()))} MB, after reads "
            f"{mb(sum(f['rss_after_reads'].values()))} MB")


async def merge_run(stack: Stack, twins: list[str], args: argparse.Namespace) -> Figures:
    made, at = patchers(stack.topology(), stack.secrets(), twins, args.concurrency)
    async with PeakRss(stack) as peak:
        load = await loadgen.run(*at[0], made, args.seconds, at=at)
    f = load_figures(load)
    f["twins_touched"] = len(set().union(*(m.touched for m in made)))
    f["rss_peak"] = peak.peak
    say(f"   merges at central: {f['ok_per_s']:,.0f}/s  p50 {f['p50_ms']} ms  "
        f"p95 {f['p95_ms']} ms  non-200 {f['non_200']} {f['statuses']}  "
        f"distinct twins {f['twins_touched']:,}  client cpu {f['client_cpu']:.0%}")
    return f


async def read_run(stack: Stack, twins: list[str], args: argparse.Namespace) -> Figures:
    secrets = stack.secrets()
    with serving(*uncached_hub_spec(stack, REGIONS[0])) as hub:
        await check_read(hub, secrets, twins[-1])
        makers = readers(hub, secrets, twins, args.concurrency)
        f = load_figures(await loadgen.run("127.0.0.1", hub.port, makers, args.seconds))
    say(f"   uncached reads at hub-ams: {f['ok_per_s']:,.0f}/s  p50 {f['p50_ms']} ms  "
        f"p95 {f['p95_ms']} ms  non-200 {f['non_200']} {f['statuses']}  "
        f"client cpu {f['client_cpu']:.0%}")
    return f


async def scale_step(stack: Stack, args: argparse.Namespace, have: int, n: int) -> Figures:
    say(f"\n   N = {n:,}: loading twins {have:,}..{n - 1:,} with COPY ...")
    f: Figures = {"twins": n, **await load_to(stack, have, n)}
    say(f"   loaded {f['loaded']:,} in {f['load_s']} s (+{f['replay_wait_s']} s until replica-ams "
        f"replayed them); twins table {mb(f['twins_table_bytes']):,} MB on the primary")
    twins = [scale_twin_id(i) for i in range(n)]
    f["rss_after_load"] = central_rss(stack)
    f["merges"] = await merge_run(stack, twins, args)
    f["rss_peak_merges"] = f["merges"].pop("rss_peak")
    f["rss_after_merges"] = central_rss(stack)
    f["reads"] = await read_run(stack, twins, args)
    f["rss_after_reads"] = central_rss(stack)
    say(rss_line(f))
    return f


async def scale_curve(stack: Stack, args: argparse.Namespace) -> list[Figures]:
    say(f"\n2. scale curve over N = {', '.join(f'{n:,}' for n in args.scale)} twins of ~50 KB "
        f"(loaded with COPY); each N: {args.seconds:g} s of merge patches to random twins at "
        f"central ({len(stack.topology().writers)} shard(s), each to the twin's home), then "
        f"{args.seconds:g} s of uncached reads of random twins at a second hub-ams "
        f"(HUB_CACHE_READS=false), {args.concurrency} connections each")
    steps, have = [], 0
    for n in args.scale:
        steps.append(await scale_step(stack, args, have, n))
        have = max(have, n)
    return steps


def show_table(steps: list[Figures]) -> None:
    say("\n   twins  loaded  load s  merges/s  merge p50  p95 ms  reads/s  read p50  p95 ms  "
        "central RSS MB: load / peak merges / reads")
    for s in steps:
        m, r = s["merges"], s["reads"]
        say(f"  {s['twins']:>6,}  {s['loaded']:>6,}  {s['load_s']:>6}  {m['ok_per_s']:>8,.0f}  "
            f"{m['p50_ms']:>9}  {m['p95_ms']:>6}  {r['ok_per_s']:>7,.0f}  {r['p50_ms']:>8}  "
            f"{r['p95_ms']:>6}  {mb(sum(s['rss_after_load'].values())):>8} / "
            f"{mb(s['rss_peak_merges']):>8} / {mb(sum(s['rss_after_reads'].values())):>8}")


# -- the run --------------------------------------------------------------------------------------


def resident_env(args: argparse.Namespace) -> dict[str, str]:
    """What goes into the stack's environment (every child's: only central reads CENTRAL_*)."""
    env = {}
    if args.resident_twins is not None:
        env["CENTRAL_RESIDENT_TWINS"] = str(args.resident_twins)
    if args.resident_bytes is not None:
        env["CENTRAL_RESIDENT_BYTES"] = str(args.resident_bytes)
    return env


def resident_bounds(env: dict[str, str]) -> str:
    defaults = CentralSettings(database_url="", hop_secret="")
    parts = []
    for name in ("resident_twins", "resident_bytes"):
        var = f"CENTRAL_{name.upper()}"
        if var in env:
            parts.append(f"{var}={env[var]}")
        elif name in CentralSettings.__struct_fields__:
            parts.append(f"{var}={getattr(defaults, name)} (default)")
    return ", ".join(parts)


async def run_all(stack: Stack, args: argparse.Namespace) -> Figures:
    figures: Figures = {}
    if args.patches > 0:
        figures["wal"] = await wal_per_patch(stack.topology(), stack.secrets(), args.patches)
    if args.scale:
        figures["scale"] = await scale_curve(stack, args)
        show_table(figures["scale"])
    return figures


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--patches", type=int, default=512, help="section 1's patches (0: skip it)")
    p.add_argument("--scale", type=lambda s: sorted({int(n) for n in s.split(",") if n}),
                   default=[1000, 10000], help="twin counts, e.g. 1000,10000 ('' skips it)")
    p.add_argument("--seconds", type=float, default=8.0, help="per merge and per read run")
    p.add_argument("--concurrency", type=int, default=8, help="connections per run")
    p.add_argument("--resident-twins", type=int, help="CENTRAL_RESIDENT_TWINS for central")
    p.add_argument("--resident-bytes", type=int, help="CENTRAL_RESIDENT_BYTES for central")
    args = p.parse_args()
    for name in ("resident_twins", "resident_bytes"):
        if getattr(args, name) is not None and name not in CentralSettings.__struct_fields__:
            p.error(f"this tree's central has no CENTRAL_{name.upper()} setting "
                    "(central/settings.py); it would refuse to start")
    return args


def main() -> None:
    args = parse_args()
    env = resident_env(args)
    os.environ.update(env)  # the launcher gives every child our environment (devstack.apps)
    say(f"twin writes bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"regions {','.join(REGIONS)}; patches={args.patches} scale={args.scale} "
        f"seconds={args.seconds:g} concurrency={args.concurrency}; central: {resident_bounds(env)}")
    t0 = time.monotonic()
    with running_stack(regions=REGIONS) as stack:
        say(f"stack up in {time.monotonic() - t0:.0f} s")
        figures = asyncio.run(run_all(stack, args))
    figures["params"] = {k: v for k, v in vars(args).items() if k != "json"}
    figures["machine"] = {"cores": os.cpu_count(), "load_average_1m_end": os.getloadavg()[0]}
    figures["wall_s"] = round(time.monotonic() - t0, 1)
    say(f"\n{figures['wall_s']:g} s in all; load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        say(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
