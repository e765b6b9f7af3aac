"""Cells: merges/s with one and with two global cells, and what a cross-zone read costs;
prints figures, asserts nothing.

    .venv/bin/python bench/cells_bench.py [--seconds 8] [--concurrency 8] [--twins 200] [--json]

Two fleets, one after the other (the first torn down before the second starts), each from the
launcher with one central process per cell (``central_shards=1``); the client is
``bench/loadgen.py`` (one process; its CPU is printed: near 100 % means the client limits):
1. Two global cells, g1 and g2, both in ams. ``--twins`` twins of ~1 KB in each (``g2~...`` in
   g2), created through edge-ams. Merge patches straight at central, hop signed with central's
   secret as a hub does (``twin_writes.patchers``), ``--seconds`` each after a short warm-up of
   both: "one cell" puts all ``--concurrency`` connections on g1's central and g1's twins; "two
   cells" splits the same connections over g1's and g2's centrals, each to its own twins. Next
   to them, the bare anchor: a bare ASGI JSON answer under granian (``bare_app.create_asgi_app``,
   ``spine_servers.bare_spec``), same client, same connections. This machine has 2 cores, so
   the two cells share the same CPUs: two/one shows what a second cell's own primary, standby
   and writer add when CPU is shared, not a linear scale-out (on separate machines each cell
   would bring its own).
2. g1 (global: ams, mow) and ru1 (zone ru: mow only). Reads through the edges, ``--seconds``
   each after a warm-up: (a) global twins read by their owners through edge-ams (edge cache:
   mostly HIT); (a0) the same with ``Cache-Control: no-cache`` (every read to hub-ams: an
   uncached read that differs from (c) only by its route); (b) the same twins read by grantees
   (tier ``enterprise``: a superuser's answer is cacheable, a grantee's is ``no-store``, so
   every read goes to hub-ams); (c) ru-pinned twins read by their owners through edge-ams
   (routed to ru1's hub in mow, never cached); (d) the same through edge-mow. Each connection
   cycles over its own callers, each with its own twin (the PoP limits each sub per minute).
   On loopback there is no WAN: in production (c) adds one ams-mow round trip (~40-50 ms) per
   read."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import loadgen  # noqa: E402
from spine_servers import bare_spec, serving  # noqa: E402
from twin_writes import Figures, load_figures, patchers, say  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import Secrets, mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from mbwire.cells import Cell, CellMap, marked  # noqa: E402

TWO_GLOBAL = CellMap(cells=(Cell("g1", "global", ("ams",)), Cell("g2", "global", ("ams",))))
CROSS_ZONE = CellMap(cells=(Cell("g1", "global", ("ams", "mow")), Cell("ru1", "ru", ("mow",))))
SUBS_EACH = 8  # callers per read connection: each sub's own per-minute limit stays far away
Read = tuple[str, dict[str, str]]  # (path, headers)


def jwt(secrets: Secrets, sub: str, tier: str = "internal") -> str:
    return mint_token(secrets.jwt_hs256_secret, sub, tier=tier)


def small_profile(i: int) -> dict[str, Any]:
    """~1 KB of JSON: 20 fields of ~45 characters."""
    return {f"f{k}": f"{i:06d}-{k:02d}-" + "abcdefghij" * 3 + "klmnopq" for k in range(20)}


def warmup_s(args: argparse.Namespace) -> float:
    return min(2.0, args.seconds / 4)


async def post_all(base: str, posts: Sequence[tuple[str, str, dict[str, Any]]],
                   parallel: int = 8) -> list[dict[str, Any]]:
    """Each (path, JWT, JSON body) posted to ``base``, ``parallel`` at a time; any answer other
    than 200/201 is an error. The answers' JSON, in order."""
    gate = asyncio.Semaphore(parallel)

    async def one(http: httpx.AsyncClient, path: str, token: str,
                  body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            r = await http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST {path} {body.get('twin_id', '')}: {r.status_code} "
                               f"{r.text[:300]}")
        answer: dict[str, Any] = r.json()
        return answer

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return list(await asyncio.gather(*(one(http, *p) for p in posts)))


def show(label: str, f: Figures, bare: Figures | None = None) -> None:
    ratio = f"  = {f['ok_per_s'] / bare['ok_per_s']:.3f} of bare" if bare else ""
    say(f"   {label:<34} {f['ok_per_s']:>8,.0f}/s  p50 {f['p50_ms']:>7.2f} ms  p99 "
        f"{f['p99_ms']:>7.2f} ms  non-200 {f['non_200']}  client cpu {f['client_cpu']:.0%}"
        f"{ratio}")


def ratio(a: Figures, b: Figures) -> float:
    return round(a["ok_per_s"] / b["ok_per_s"], 3) if b["ok_per_s"] else float("nan")


async def bare_anchor(stack: Stack, args: argparse.Namespace) -> Figures:
    """Bare ASGI JSON under granian (one worker), ``--concurrency`` connections."""
    with serving(*bare_spec(stack, "create_asgi_app")) as bare:
        raw = loadgen.build_request("GET", "127.0.0.1", bare.port, "/")
        makers = [itertools.repeat(raw).__next__ for _ in range(args.concurrency)]
        await loadgen.run("127.0.0.1", bare.port, makers, warmup_s(args))
        f = load_figures(await loadgen.run("127.0.0.1", bare.port, makers, args.seconds))
    show("bare ASGI JSON (anchor)", f)
    return f


# -- 1. merges with one and with two global cells ---------------------------------------------


async def merge_phase(cells: dict[str, Stack], twins: dict[str, list[str]], split: dict[str, int],
                      seconds: float, base: int) -> Figures:
    """``split``: connections per cell, each to its cell's central about its own twins.
    ``base``: where the patchers' counters start, so no phase repeats a value (a patch setting
    a value the twin already holds changes nothing and is not a write)."""
    made, at, of_cell = [], [], []
    for name, n in split.items():
        if n:
            m, a = patchers(cells[name].topology(), cells[name].secrets(), twins[name], n)
            made += m
            at += a
            of_cell += [name] * n
    for p in made:
        p.count = base
    f = load_figures(await loadgen.run(*at[0], made, seconds, at=at))
    sent = Counter[str]()
    for name, p in zip(of_cell, made, strict=True):
        sent[name] += p.count - base
    f["sent_per_s_by_cell"] = {k: round(v / seconds, 1) for k, v in sent.items()}
    return f


async def merges(stack: Stack, args: argparse.Namespace) -> Figures:
    cells = {"g1": stack, **stack.cell_stacks()}
    run, secrets = uuid.uuid4().hex[:6], stack.secrets()
    owner = jwt(secrets, f"cells-merge-{run}")
    twins = {c: [marked(c, f"cm-{run}-{i:05d}") for i in range(args.twins)] for c in cells}
    t0 = time.monotonic()
    made = await post_all(stack.topology().edges["ams"], [
        ("/v1/twins", owner, {"twin_id": t, "profile": small_profile(i)})
        for ids in twins.values() for i, t in enumerate(ids)])
    wrong = [a["twin_id"] for a, t in zip(made, itertools.chain(*twins.values()), strict=True)
             if a["twin_id"] != t]
    if wrong:
        raise RuntimeError(f"twins made under other ids: {wrong[:5]}")
    say(f"   {len(made)} twins of ~{len(json.dumps(small_profile(0))):,} bytes made through "
        f"edge-ams in {time.monotonic() - t0:.1f} s: {args.twins} in g1, {args.twins} in g2")
    bare = await bare_anchor(stack, args)
    c = args.concurrency
    both = {"g1": (c + 1) // 2, "g2": c // 2}
    await merge_phase(cells, twins, both, warmup_s(args), base=1_000_000)
    one = await merge_phase(cells, twins, {"g1": c}, args.seconds, base=2_000_000)
    show(f"one cell: g1 x {c}", one, bare)
    two = await merge_phase(cells, twins, both, args.seconds, base=3_000_000)
    show(f"two cells: g1 x {both['g1']} + g2 x {both['g2']}", two, bare)
    by = two["sent_per_s_by_cell"]
    say(f"   two cells, sent per cell: g1 {by.get('g1', 0):,.0f}/s, g2 {by.get('g2', 0):,.0f}/s")
    f: Figures = {"bare": bare, "one_cell": one, "two_cells": two,
                  "two/one": ratio(two, one), "one/bare": ratio(one, bare),
                  "two/bare": ratio(two, bare)}
    say(f"   ratio two cells / one cell: {f['two/one']:.3f}  ({os.cpu_count()} cores shared by "
        "both cells: what the second cell adds on the same CPUs, not a linear scale-out)")
    return f


# -- 2. the cost of a cross-zone read ---------------------------------------------------------


def read_makers(edge: str, reads: list[Read], connections: int) -> list[loadgen.Maker]:
    """Connection k cycles over reads k, k + connections, ...: its own callers."""
    url = urlsplit(edge)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    return [itertools.cycle([loadgen.build_request("GET", host, port, path, headers)
                             for path, headers in reads[k::connections]]).__next__
            for k in range(connections)]


def reads_of(twins: list[str], tokens: list[str], **extra: str) -> list[Read]:
    """Caller i reads twin i; ``extra`` headers (``cache_control``: ``Cache-Control``)."""
    more = {k.replace("_", "-"): v for k, v in extra.items()}
    return [(f"/v1/twins/{t}", {"Authorization": f"Bearer {j}", **more})
            for t, j in zip(twins, tokens, strict=True)]


async def probe(edge: str, reads: list[Read], n: int = 24) -> dict[str, int]:
    """How ``n`` of the reads were answered, one at a time: served by, X-Cache, no-store."""
    seen = Counter[str]()
    async with httpx.AsyncClient(base_url=edge, timeout=30) as http:
        for path, headers in reads[:n]:
            r = await http.get(path, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"GET {edge}{path}: {r.status_code} {r.text[:300]}")
            store = "no-store" if "no-store" in r.headers.get("cache-control", "") else "storable"
            seen[f"{r.headers.get('x-served-by')} | {r.headers.get('x-cache', '-')} | "
                 f"{store}"] += 1
    return dict(seen)


async def read_case(edge: str, reads: list[Read], args: argparse.Namespace) -> Figures:
    makers = read_makers(edge, reads, args.concurrency)
    url = urlsplit(edge)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    await loadgen.run(host, port, makers, warmup_s(args))
    answered = await probe(edge, reads)
    f = load_figures(await loadgen.run(host, port, makers, args.seconds))
    f["probe"] = answered
    return f


async def cross_zone(stack: Stack, args: argparse.Namespace) -> Figures:
    secrets, edges = stack.secrets(), stack.topology().edges
    run, n = uuid.uuid4().hex[:6], args.concurrency * SUBS_EACH
    owners = [jwt(secrets, f"cz-owner-{run}-{i}") for i in range(n)]
    grantees = [f"cz-grantee-{run}-{i}" for i in range(n)]
    home = [f"cz-{run}-{i:04d}" for i in range(n)]
    pinned = [f"ru~cz-{run}-{i:04d}" for i in range(n)]
    t0 = time.monotonic()
    made = await post_all(edges["ams"], [
        *(("/v1/twins", owners[i], {"twin_id": home[i], "profile": small_profile(i)})
          for i in range(n)),
        *(("/v1/twins", owners[i], {"twin_id": pinned[i], "residency": "ru",
                                    "profile": small_profile(i)}) for i in range(n))])
    if {a.get("residency") for a in made[n:]} != {"ru"}:
        raise RuntimeError(f"pinned twins not in zone ru: {made[n]}")
    await post_all(edges["ams"], [(f"/v1/twins/{home[i]}/grants", owners[i],
                                   {"sub": grantees[i], "access": "read"}) for i in range(n)])
    say(f"   {n} owners, each with a global and a ru twin, and {n} grantees (read grant on one "
        f"global twin each), made through edge-ams in {time.monotonic() - t0:.1f} s")
    grantee_jwts = [jwt(secrets, g, tier="enterprise") for g in grantees]
    cases = {
        "a": ("(a) global, owner, edge-ams", edges["ams"], reads_of(home, owners)),
        "a0": ("(a0) as (a), Cache-Control: no-cache", edges["ams"],
               reads_of(home, owners, cache_control="no-cache")),
        "b": ("(b) global, grantee, edge-ams", edges["ams"], reads_of(home, grantee_jwts)),
        "c": ("(c) ru-pinned, owner, edge-ams", edges["ams"], reads_of(pinned, owners)),
        "d": ("(d) ru-pinned, owner, edge-mow", edges["mow"], reads_of(pinned, owners)),
    }
    bare = await bare_anchor(stack, args)
    f: Figures = {"bare": bare}
    for key, (label, edge, reads) in cases.items():
        f[key] = await read_case(edge, reads, args)
        show(label, f[key], bare)
        for what, count in f[key]["probe"].items():
            say(f"       probe after warm-up: {count:>2} x  {what}")
    for a, b in (("c", "b"), ("c", "a0"), ("c", "a"), ("d", "c")):
        f[f"{a}/{b}"] = ratio(f[a], f[b])
    say(f"   ratio (c)/(b) {f['c/b']:.3f}: the routing cost of a cross-zone read, uncached "
        "against uncached;\n      (b) also differs in caller: a grantee (tier enterprise, "
        "access by grant) where (c) is the owner")
    say(f"   ratio (c)/(a0) {f['c/a0']:.3f}: the same, against the same owner's global read "
        "with the edge cache bypassed (only the route differs)")
    say(f"   ratio (c)/(a) {f['c/a']:.3f}: a pinned twin read across zones against a cached "
        "global read")
    say(f"   ratio (d)/(c) {f['d/c']:.3f}: the pinned twin read in its zone's edge vs across")
    say("   On loopback there is no WAN round trip: in production (c) adds one ams<->mow round "
        "trip (~40-50 ms) to every read,\n   which is why pinned twins should be read through "
        "an edge in their zone (d).")
    return f


# -- the run ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=8.0, help="per measured run")
    p.add_argument("--concurrency", type=int, default=8, help="connections per run")
    p.add_argument("--twins", type=int, default=200, help="twins per global cell (section 1)")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = p.parse_args()
    if not 2 <= args.concurrency <= 64:
        p.error("--concurrency: 2 to 64 (the patchers' values are unique below 64 writers)")
    return args


def main() -> None:
    args = parse_args()
    say(f"cells bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"seconds={args.seconds:g} concurrency={args.concurrency} twins={args.twins}")
    t0 = time.monotonic()
    figures: Figures = {}
    say("\n1. merges/s at central, one global cell vs two (g1, g2; both in ams; one central "
        "each)")
    with running_stack(regions=("ams",), fleet=TWO_GLOBAL, central_shards=1) as stack:
        say(f"   fleet up in {time.monotonic() - t0:.0f} s")
        figures["merges"] = asyncio.run(merges(stack, args))
    t1 = time.monotonic()
    say("\n2. cross-zone reads: g1 (global: ams, mow) and ru1 (ru: mow)")
    with running_stack(regions=("ams", "mow"), fleet=CROSS_ZONE, central_shards=1) as stack:
        say(f"   fleet up in {time.monotonic() - t1:.0f} s")
        figures["reads"] = asyncio.run(cross_zone(stack, args))
    figures["params"] = {k: v for k, v in vars(args).items() if k != "json"}
    figures["machine"] = {"cores": os.cpu_count(), "load_average_1m_end": os.getloadavg()[0]}
    figures["wall_s"] = round(time.monotonic() - t0, 1)
    say(f"\n{figures['wall_s']:g} s in all; load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        say(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
