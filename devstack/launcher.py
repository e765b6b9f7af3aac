"""The local stack: Postgres under Patroni (a Raft witness, primary, sync standby, replicas), the
cell's backup agent (devstack/backup_agent.py), Redis, central, hubs and edge PoPs, each a
detached child process, started in that order, each group waited on until healthy, then a
supervisor (``devstack.supervisor``) that restarts any child that dies, unless it was stopped on
purpose (``stop_process`` holds it). ``up`` on a running stack also restarts what died (Patroni
itself restarts a crashed Postgres, or fails over).

``Stack`` is the API the CLI, the tests and the benchmark share. Everything it knows between two
commands is in the data directory (``stack.json``, ``secrets.json``, ``pg/``, ``redis/``,
``logs/``), so ``memorybank down`` in one shell stops what ``memorybank up`` started in another."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from devstack import (
    apps,
    backup,
    cells,
    children,
    layout,
    leadership,
    liveness,
    patroni,
    postgres,
    procs,
    reclone,
    secrets,
    state,
    supervisor,
)
from devstack.children import Sources, StackStatus
from devstack.errors import ConfigError, StackError
from devstack.health import wait_healthy
from devstack.ports import MAX_CENTRAL_SHARDS, PortPlan, choose_plan, ports_are_free
from devstack.procs import ProcessSpec
from devstack.state import ALL_SERVICES, SERVICE_ORDER, StackState
from devstack.topology import Topology, build_topology, writer_url
from georouting.catalog import DEFAULT_REGIONS, check_regions
from mbwire.cells import CellMap

HUB_WORKERS_ENV = "MEMORYBANK_HUB_WORKERS"
CENTRAL_SHARDS_ENV = "MEMORYBANK_CENTRAL_SHARDS"
DEFAULT_CENTRAL_SHARDS = 2  # as in production (fly.toml): the sharded path is the one tested
# A spawned child: what it runs, its process, its record, when its group was spawned.
_Started = tuple[ProcessSpec, "subprocess.Popen[bytes]", procs.ProcessRecord, float]


class _Background:
    """A wait run on a daemon thread (a failed ``up`` exits without waiting for it);
    ``result()`` joins it and raises what it raised."""

    def __init__(self, wait: Callable[[], object]) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                wait()
            except BaseException as e:  # handed to result()
                self._error = e

        self._thread = threading.Thread(target=run, name="launcher-wait", daemon=True)
        self._thread.start()

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class Stack:
    def __init__(
        self,
        data_dir: Path | str,
        regions: Iterable[str] | None = None,
        *,
        pg_bin: Path | None = None,
        redis_server: Path | None = None,
        services: Iterable[str] = ALL_SERVICES,
        factories: Mapping[str, str] | None = None,
        progress: Callable[[str], None] = lambda message: None,
        hub_workers: int | None = None,
        central_shards: int | None = None,
        supervise: bool = True,
        fleet: CellMap | None = None,
        links: cells.CellLinks | None = None,
        taken: set[int] | None = None,
    ) -> None:
        """``regions``: None means those of the last run, else ``DEFAULT_REGIONS``. ``factories``
        overrides the ASGI factory of ``central``, ``hubs`` or ``edges`` (tests use stand-ins).
        ``hub_workers``: granian workers per hub; None means ``$MEMORYBANK_HUB_WORKERS``, else 1.
        ``central_shards``: central's writer processes; None means ``$MEMORYBANK_CENTRAL_SHARDS``,
        else as many as the last run, else ``DEFAULT_CENTRAL_SHARDS``.
        ``supervise``: a new stack runs the supervisor (tests watching a crash go without).
        ``fleet``: the cells a new stack runs (devstack.cells); None means those of the last
        run, else ``$MEMORYBANK_CELLS`` or ``cells.DEFAULT_FLEET`` when no regions are given,
        else one cell over ``regions``. ``links``, ``taken``: only for a cell's own stack, made
        by its home stack (what the fleet gives it; ports the fleet's other stacks use)."""
        self.data_dir = Path(data_dir).expanduser().resolve()
        try:
            self._requested = check_regions(list(regions)) if regions is not None else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.services = frozenset(services)
        if unknown := self.services - ALL_SERVICES:
            raise ConfigError(
                f"unknown service(s) {sorted(unknown)}; known: {sorted(ALL_SERVICES)}")
        self._pg_bin, self._redis_server = pg_bin, redis_server
        self._factories = {**apps.DEFAULT_FACTORIES, **(factories or {})}
        try:
            self._hub_workers = hub_workers or int(os.environ.get(HUB_WORKERS_ENV) or 1)
        except ValueError:
            raise ConfigError(f"{HUB_WORKERS_ENV} must be a whole number") from None
        if self._hub_workers < 1:
            raise ConfigError("hubs need at least one worker")
        try:
            self._shards = central_shards or int(os.environ.get(CENTRAL_SHARDS_ENV) or 0) or None
        except ValueError:
            raise ConfigError(f"{CENTRAL_SHARDS_ENV} must be a whole number") from None
        if self._shards is not None and not 1 <= self._shards <= MAX_CENTRAL_SHARDS:
            raise ConfigError(f"central runs 1 to {MAX_CENTRAL_SHARDS} shards")
        self._progress = progress
        self._supervise = supervise
        self._fleet, self._links, self._taken = fleet, links, set(taken or ())
        self._run_as = procs.unprivileged()
        self._popens: dict[str, subprocess.Popen[bytes]] = {}  # children this object started

    # -- reading ------------------------------------------------------------------------------

    def topology(self) -> Topology:
        return self._loaded().topology

    def secrets(self) -> secrets.Secrets:
        """The fleet's secrets: a cell's stack uses its home stack's."""
        current = state.load(self.data_dir)
        links = self._links or (current.links if current else None)
        home = Path(links.secrets_dir) if links and links.secrets_dir else self.data_dir
        return secrets.load_or_create(home)

    def status(self) -> StackStatus:
        return children.status_of(state.load(self.data_dir), self.data_dir)

    def links(self) -> cells.CellLinks | None:
        """The fleet this stack belongs to; None for a single-cell stack."""
        current = state.load(self.data_dir)
        return current.links if current is not None else None

    def cell_stacks(self) -> dict[str, Stack]:
        """The stacks of this fleet's other cells, by cell name (none for a single cell)."""
        current = state.load(self.data_dir)
        if current is None or current.links is None:
            return {}
        return {name: Stack(directory, pg_bin=self._pg_bin, redis_server=self._redis_server,
                            factories=self._factories, hub_workers=self._hub_workers,
                            progress=self._prefixed(name))
                for name, directory in current.links.cell_dirs.items()}

    def fleet(self) -> list[Stack]:
        """Every stack of this stack's fleet, its home stack first (just this one when alone):
        what a lost region takes down is every cell's processes there."""
        links = self.links()
        if links is None:
            return [self]
        home = self if links.secrets_dir in ("", str(self.data_dir)) else Stack(
            links.secrets_dir, pg_bin=self._pg_bin, redis_server=self._redis_server,
            factories=self._factories, hub_workers=self._hub_workers)
        return [home, *home.cell_stacks().values()]

    def _prefixed(self, cell: str) -> Callable[[str], None]:
        return lambda message: self._progress(f"[{cell}] {message}")

    # -- changing ------------------------------------------------------------------------------

    def up(self) -> Topology:
        """Starts the stack and returns once every child is healthy. On a running stack, starts
        only children that crashed or were stopped; on failure, stops what this call started."""
        with state.locked(self.data_dir):
            current = state.load(self.data_dir)
            if current is not None and current.processes:
                if self._requested and tuple(current.regions) != self._requested:
                    raise ConfigError(
                        f"the stack in {self.data_dir} runs {','.join(current.regions)}; "
                        "`memorybank down` first to change regions")
                if self._shards and len(current.topology.writers) != self._shards:
                    raise ConfigError(
                        f"the stack in {self.data_dir} runs {len(current.topology.writers)} "
                        "central shard(s); `memorybank down` first to change them")
                specs = self._specs(current)
                self._prepare_pg_if_any(current)
                for service, names in children.names_by_service(current).items():
                    if service == "edges":
                        self._up_cells()
                    dead = [n for n in names if not children.is_up(current, n)]
                    self._start(current, [specs[n] for n in dead])
                if "edges" not in current.services:
                    self._up_cells()
                current.held, current.lost_regions = [], []
                state.save(self.data_dir, current)
                self._start_supervisor(current)
                return current.topology
            fresh = self._plan(current)
            try:
                self._start_all(fresh)
                self._start_supervisor(fresh)
            except BaseException:
                self._progress("start failed; stopping what was started (logs kept)")
                self._down_cells(meanwhile=lambda: self._stop_all(fresh))
                raise
            return fresh.topology

    def down(self, *, discard: bool = False) -> None:
        """Stops every recorded child, last started first, those of a service side by side
        (``stop_waves``), and every other cell's stack meanwhile; the data directories stay.

        ``discard``: the caller deletes the data directories next (a test's stack), so each
        Postgres node stops at once: its Patroni killed, then its postmaster's immediate
        shutdown (no checkpoint, no handover to a replica). Patroni's own stop takes two to
        four seconds a wave (``stop_waves``); this saves ~5 s a stack."""
        def stop_own() -> None:
            with state.locked(self.data_dir):
                current = state.load(self.data_dir)
                if current is not None:
                    self._stop_all(current, discard)

        self._down_cells(meanwhile=stop_own, discard=discard)

    def _up_cells(self) -> None:
        """Starts the other cells' stacks (before the edges, which route to them)."""
        for name, stack in self.cell_stacks().items():
            self._progress(f"cell {name}: starting its stack in {stack.data_dir}")
            stack.up()

    def _down_cells(self, meanwhile: Callable[[], None] = lambda: None, *,
                    discard: bool = False) -> None:
        """Stops the other cells' stacks side by side, running ``meanwhile`` (this stack's own
        stop) on this thread as they go; returns once all are done."""
        stacks = self.cell_stacks()
        for name in stacks:
            self._progress(f"cell {name}: stopping its stack")
        with ThreadPoolExecutor(max(1, len(stacks))) as pool:
            stopping = [pool.submit(stack.down, discard=discard) for stack in stacks.values()]
            try:
                meanwhile()
            finally:
                for each in stopping:
                    each.result()

    def stop_process(self, name: str) -> None:
        """Stops one child (e.g. ``hub-ams``) on purpose; ``status`` then shows it as stopped
        and the supervisor leaves it stopped ("held") until ``start_process`` or ``up``. A child
        killed any other way (a crash, a drill's ``kill -9``) is restarted by the supervisor."""
        with state.locked(self.data_dir):
            current = self._loaded()
            record = current.record(name)
            if record is None:
                raise StackError(f"{name} is not running in {self.data_dir}")
            current.hold(name, True)
            state.save(self.data_dir, current)  # held before it dies: the supervisor must not see
            procs.stop(record)                  # it dead and unheld
            liveness.stop_postmaster(self.data_dir, name)
            current.drop(name)
            state.save(self.data_dir, current)

    def start_process(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """Starts one child again (no-op if it runs) and waits until it is healthy. ``env``
        overrides some of its settings for this run only (the drill points a hub's
        ``HUB_CENTRAL_URL`` through a fault proxy); the next start goes back to the defaults."""
        with state.locked(self.data_dir):
            current = self._loaded()
            spec = self._specs(current).get(name)
            if spec is None:
                raise StackError(f"this stack has no process {name!r}; see `memorybank status`")
            if env:
                spec = dataclasses.replace(spec, env={**spec.env, **env})
            current.hold(name, False)
            if not children.is_up(current, name):
                self._prepare_pg_if_any(current)
                self._start(current, [spec])
            state.save(self.data_dir, current)

    def hold_processes(self, names: list[str], held: bool = True) -> None:
        """Marks children held (``held=False``: no longer) without stopping them: the
        supervisor leaves them dead once they die. The disaster drill holds the members that may
        lead before it kills them, and lets them go once their data is restored."""
        with state.locked(self.data_dir):
            current = self._loaded()
            for name in names:
                current.hold(name, held)
            state.save(self.data_dir, current)

    def lose_region(self, region: str, lost: bool = True) -> list[str]:
        """Marks ``region`` lost (its machines are gone: the supervisor must not restart its
        children) or back (``lost=False``: the supervisor restarts them); returns the region's
        children this stack has recorded. The region-loss drill marks before it kills."""
        with state.locked(self.data_dir):
            current = self._loaded()
            current.lose(region, lost)
            state.save(self.data_dir, current)
            recorded = [n for n in children.all_names(current) if current.record(n)]
            return layout.children_in(current.topology, recorded, region)

    def restart_crashed(self, name: str) -> bool:
        """The supervisor's restart: starts ``name`` again only if it is still recorded, dead,
        not held and not in a lost region (checked under the lock, so a ``stop_process``,
        ``lose_region`` or ``down`` in between wins); counts the restart in ``stack.json``.
        True if it restarted it."""
        with state.locked(self.data_dir):
            current = self._loaded()
            spec = self._specs(current).get(name)
            if (spec is None or name in current.held or current.record(name) is None
                    or layout.region_of_child(current.topology, name) in current.lost_regions
                    or children.is_up(current, name)):
                return False
            current.restarts[name] = current.restarts.get(name, 0) + 1
            self._prepare_pg_if_any(current)
            self._start(current, [spec])
            return True

    # -- internals -----------------------------------------------------------------------------

    def _loaded(self) -> StackState:
        current = state.load(self.data_dir)
        if current is None:
            raise StackError(f"no stack in {self.data_dir}; run `memorybank up` first")
        return current

    def _plan(self, previous: StackState | None) -> StackState:
        if self._links is None and previous is not None and previous.links is not None \
                and previous.links.cell != previous.links.fleet_map.home.name:
            self._links = previous.links  # a cell's own stack, started again
        fleet = self._fleet_of(previous)
        regions = self._requested or (tuple(previous.regions) if previous else DEFAULT_REGIONS)
        if fleet is not None:
            try:
                regions = cells.check_fleet(fleet)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        shards = self._shards or (len(previous.topology.writers) if previous
                                  else DEFAULT_CENTRAL_SHARDS)
        services = [s for s in SERVICE_ORDER if s in self.services]
        if self._links is not None:
            services = [s for s in services if s != "edges"]  # the fleet's PoPs route to it
        taken = self._taken

        def free(ports: list[int]) -> bool:
            return not taken.intersection(ports) and ports_are_free(ports)

        plan = choose_plan(self.data_dir, regions, free,
                           previous_base=previous.port_base if previous else None,
                           central_shards=shards)
        fresh = StackState(
            data_dir=str(self.data_dir), regions=list(regions), services=services,
            port_base=plan.base, topology=build_topology(plan), supervised=self._supervise,
            links=self._links,
        )
        if fleet is not None:
            fresh.links = self._plan_cells(fresh, fleet, set(plan.all_ports()))
        state.save(self.data_dir, fresh)
        return fresh

    def _fleet_of(self, previous: StackState | None) -> CellMap | None:
        """The cells a home stack about to start runs; None for a single cell (as before)."""
        if self._links is not None:
            return None  # a cell's own stack
        if self._fleet is not None:
            fleet: CellMap | None = self._fleet
        elif previous is not None:
            fleet = previous.links.fleet_map if previous.links else None
        elif self._requested is None:
            raw = os.environ.get(cells.CELLS_ENV, "")
            try:
                fleet = CellMap.from_json(raw) if raw.strip() else cells.DEFAULT_FLEET
            except ValueError as exc:
                raise ConfigError(f"{cells.CELLS_ENV}: {exc}") from None
        else:
            fleet = None
        return fleet if fleet is not None and len(fleet.cells) > 1 else None

    def _plan_cells(self, home: StackState, fleet: CellMap, taken: set[int]) -> cells.CellLinks:
        """Plans every other cell's stack (ports clear of the home stack's and of each other's)
        and returns the home stack's links, naming their hubs and directories."""
        topo = home.topology
        shared = cells.CellLinks(cell=fleet.home.name, fleet=fleet.to_json(), edges=topo.edges,
                                 limits_redis=topo.redis[topo.primary_region],
                                 secrets_dir=str(self.data_dir))
        hubs, dirs = {}, {}
        for cell in fleet.cells:
            if cell == fleet.home:
                continue
            directory = cells.cell_dir(self.data_dir, cell.name)
            sub = Stack(directory, cell.regions, pg_bin=self._pg_bin,
                        redis_server=self._redis_server,
                        services=self.services - {"edges"}, factories=self._factories,
                        progress=self._prefixed(cell.name),
                        hub_workers=self._hub_workers, central_shards=1,
                        supervise=self._supervise, taken=taken,
                        links=msgspec.structs.replace(shared, cell=cell.name))
            with state.locked(directory):
                planned = sub._plan(state.load(directory))
            taken |= set(PortPlan(base=planned.port_base, regions=tuple(planned.regions),
                                  central_shards=len(planned.topology.writers)).all_ports())
            hubs[cell.name], dirs[cell.name] = planned.topology.hubs, str(directory)
        return msgspec.structs.replace(shared, cell_hubs=hubs, cell_dirs=dirs)

    def _specs(self, current: StackState) -> dict[str, ProcessSpec]:
        sources = Sources(pg_bin=self._pg_bin, redis_server=self._redis_server,
                          run_as=self._run_as, secrets=self.secrets(), factories=self._factories,
                          hub_workers=self._hub_workers)
        return children.build_specs(current, self.data_dir, sources)

    def _start(self, current: StackState, specs: list[ProcessSpec]) -> None:
        """Spawns a group of independent children at once, then waits until each is healthy.
        Each is recorded before the wait, so a failed ``up`` (or ``down``) can still stop it."""
        self._wait(self._spawn(current, specs))

    def _spawn(self, current: StackState, specs: list[ProcessSpec]) -> list[_Started]:
        began, started = time.monotonic(), []
        for spec in specs:
            liveness.clear_for_start(current, self.data_dir, spec.name)
            proc, record = procs.spawn(spec)
            self._popens[spec.name] = proc
            current.put(record)
            started.append((spec, proc, record, began))
        state.save(self.data_dir, current)
        return started

    def _wait(self, started: list[_Started]) -> None:
        for spec, proc, record, began in started:
            wait_healthy(spec.name, spec.check, proc, spec.log, spec.start_timeout)
            took = time.monotonic() - began
            self._progress(f"{spec.name:<12} up  pid {record.pid:<7} {took:.2f} s")

    def _start_supervisor(self, current: StackState) -> None:
        """Last of all (it must find every child recorded); no-op if it runs or is not wanted."""
        if not current.supervised or children.is_up(current, supervisor.NAME):
            return
        spec = supervisor.spec(self.data_dir, pg_bin=self._pg_bin,
                               redis_server=self._redis_server, factories=self._factories,
                               hub_workers=self._hub_workers)
        liveness.clear_for_start(current, self.data_dir, spec.name)
        proc, record = procs.spawn(spec)
        self._popens[spec.name] = proc
        current.put(record)
        state.save(self.data_dir, current)
        self._progress(f"{spec.name:<12} up  pid {record.pid}")

    def _start_all(self, current: StackState) -> None:
        """Each service in order, waiting until its children are healthy before the next,
        except two waits that nothing after them needs and that only poll: Patroni's record of
        the synchronous standby (``_start_postgres``) and the backup agent's start. Both are
        awaited before ``up`` returns, so a stack that is up has both."""
        specs = self._specs(current)
        settled: _Background | None = None
        agent: list[_Started] = []  # the backup agent: spawned, waited for last
        for service, names in children.names_by_service(current).items():
            if service == "edges":
                self._up_cells()
            if service == "postgres":
                settled = self._start_postgres(current, specs)
            elif service == "backups":
                self._prepare_backups(current)
                agent = self._spawn(current, [specs[n] for n in names])
            else:
                self._start(current, [specs[n] for n in names])
        self._wait(agent)
        if "edges" not in current.services:
            self._up_cells()
        if settled is not None:  # (a start that failed before this leaves the thread behind)
            settled.result()  # its error, if it failed, and at the latest its own deadline

    def _start_postgres(self, current: StackState,
                        specs: dict[str, ProcessSpec]) -> _Background:
        """Patroni's witness and the first node (it bootstraps a new cluster), then the others,
        which clone from whoever leads; returns once every region's replica streams and
        Postgres has the standby synchronous, with the wait for Patroni's record of it (a
        second or two, up to its loop) running meanwhile, for the caller to await."""
        plan = PortPlan(base=current.port_base, regions=tuple(current.regions))
        backups = "backups" in current.services
        pg_root = self._prepare_pg(plan, backups)
        names = children.names_by_service(current)["postgres"]
        if not any(postgres.is_cluster(pg_root / m) for m in patroni.FAILOVER_MEMBERS):
            # A new cluster: nodes and Raft state of an earlier one would follow a ghost.
            for old in pg_root.iterdir():
                if old.is_dir():
                    self._progress(f"removing {old} (not part of a cluster being made)")
                    shutil.rmtree(old)
            # The replicas (which never bootstrap: nofailover) start with the primary and clone
            # once it leads; the standby starts then, or it might race it to bootstrap first.
            first = [n for n in names if n != "pg-standby"]
        else:
            first = names
        started = self._spawn(current, [specs[n] for n in first])
        self._wait([s for s in started if s[0].name in ("pg-witness", "pg-primary")])
        leader = patroni.wait_leader(plan)
        self._progress(f"postgres leader is {leader}")
        patroni.set_backup_slot(list(current.topology.postgres.patroni.values()), backups)
        writer = writer_url([plan.pg_primary, plan.pg_standby], "postgres")
        postgres.create_database(writer)
        started += self._spawn(current, [specs[n] for n in names if n not in first])
        self._wait([s for s in started if s[0].name not in ("pg-witness", "pg-primary")])
        followers = [m.name for m in patroni.members(plan) if m.name != leader]
        def reclone_left_behind() -> None:  # a replica down past its slot's WAL bound
            for name in reclone.check(current.topology.postgres):
                self._progress(f"pg-{name} needs WAL the leader no longer holds: re-cloning it")

        postgres.wait_streaming(writer, tuple(followers), meanwhile=reclone_left_behind)
        # Postgres's sync comes before Patroni's record of it, and only the node that record
        # names may be promoted: a leader lost before it could not fail over. The services
        # after Postgres start meanwhile (they need its sync, not Patroni's record).
        return _Background(lambda: leadership.wait_settled(current.topology.postgres,
                                                           within_s=120.0))

    def _prepare_pg_if_any(self, current: StackState) -> None:
        if "postgres" in current.services:
            self._prepare_pg(PortPlan(base=current.port_base, regions=tuple(current.regions)),
                             "backups" in current.services)
            self._prepare_backups(current)

    def _prepare_pg(self, plan: PortPlan, backups: bool) -> Path:
        """``DATA_DIR/pg`` for the Postgres user, and Patroni's configuration files in it."""
        bin_dir = postgres.reachable_bin_dir(postgres.find_bin_dir(self._pg_bin), self._run_as)
        pg_root = postgres.pg_data_root(self.data_dir, self._run_as)
        postgres.prepare_root(pg_root, self._run_as)
        patroni.write_configs(plan, pg_root, bin_dir, self._run_as, backups)
        return pg_root

    def _prepare_backups(self, current: StackState) -> None:
        """The cell's backup store and barman's configuration (devstack/backup.py)."""
        if "backups" not in current.services or "postgres" not in current.services:
            return
        cell = backup.cell_of(self.data_dir, current.links.cell if current.links else None)
        backup.write_config(cell, PortPlan(base=current.port_base, regions=tuple(current.regions)),
                            postgres.find_bin_dir(self._pg_bin))

    def _stop_all(self, current: StackState, discard: bool = False) -> None:
        leader = None
        if "postgres" in current.services and current.processes:
            leader = patroni.leader_of(PortPlan(base=current.port_base,
                                                regions=tuple(current.regions)), timeout=0.5)
        recorded = {p.name: p for p in current.processes}
        for wave in stop_waves(current, list(recorded), leader):
            records = [recorded[name] for name in wave]
            for record in records:
                self._progress(f"stopping {record.name}")
            with ThreadPoolExecutor(len(records)) as pool:
                list(pool.map(lambda record: self._stop_one(record, discard), records))
            for record in records:
                current.drop(record.name)
            current.held, current.lost_regions = [], []
            state.save(self.data_dir, current)

    def _stop_one(self, record: procs.ProcessRecord, discard: bool = False) -> None:
        if record.name == supervisor.NAME:
            supervisor.stop(record)
        elif discard and liveness.is_postgres_node(record.name):
            procs.stop(msgspec.structs.replace(record, stop_signal=int(signal.SIGKILL)))
        else:
            procs.stop(record)
        liveness.stop_postmaster(self.data_dir, record.name, immediate=discard)


def stop_waves(current: StackState, recorded: list[str], leader: str | None) -> list[list[str]]:
    """The recorded children in the order ``down`` stops them, as waves stopped side by side:
    first whatever the stack does not name (the supervisor, before it could restart a child
    being stopped), then each service in reverse start order (edges, hubs with their index
    services, central, Redis, the backup agent), all of a service at once. Postgres goes last,
    in three waves: the regions' replicas with the node that may lead but does not (the
    standby, unless it leads), then the leader (stopped before the other, it would hand it the
    lock: a needless failover while everything shuts down), then the witness. Patroni takes two
    seconds or more to stop a node (it polls its postmaster once a second until it is gone; a
    synchronous standby first waits to be released), so side by side the first wave costs
    about what one node did."""
    names = set(recorded)
    known = children.names_by_service(current)
    named = set(children.all_names(current))
    waves = [[n for n in recorded if n not in named]]
    for service, members in reversed(known.items()):
        members = [n for n in members if n in names]
        if service != "postgres":
            waves.append(members)
            continue
        # Without a known leader, the primary goes last: it led when the stack started.
        last = f"pg-{leader}" if leader in patroni.FAILOVER_MEMBERS else "pg-primary"
        waves.append([n for n in members if n not in (last, "pg-witness")])
        waves += [[n for n in members if n == last], [n for n in members if n == "pg-witness"]]
    return [wave for wave in waves if wave]
