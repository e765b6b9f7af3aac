"""The hub's gauges, read from its live parts when Prometheus scrapes (``mbhttp.metrics.probes``):
nothing on the request path, and never staler than the scrape."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from knowledge.embed import Embedder, QueryCache
from mbhttp.metrics import breaker_states, probes
from regional.follower import Follower
from regional.index_client import SearchIndex
from regional.replica import ReplayClock


def watch_hub(clock: ReplayClock, follower: Follower, indexer: SearchIndex,
              breakers: Mapping[str, Callable[[], str]], embedder: Embedder | None = None) -> None:
    g = probes.gauge
    g("memorybank_replica_lag_seconds",
      "Replica replay lag behind the WAL it has received (pg_last_xact_replay_timestamp)",
      lambda: clock.lag_ms / 1000)
    g("memorybank_replica_replay_position_bytes", "WAL position the replica has replayed",
      lambda: clock.position)
    g("memorybank_replica_received_position_bytes", "WAL position the replica has received",
      lambda: clock.received)
    g("memorybank_replica_healthy", "1 while the replay clock ticked within 2 s",
      lambda: float(clock.healthy))
    g("memorybank_replica_clock_quiet",
      "1 while the replay clock naps its quiet nap (HUB_CLOCK_QUIET_MS: the replica idle, no "
      "write sent, no socket open)", lambda: float(clock.quiet))
    # The follower runs in the one worker holding the feed lease; elsewhere its mark stays 0 and
    # the series is left out rather than reporting a false lag.
    g("memorybank_feed_follower_lag_bytes",
      "WAL bytes between the replay position and what the feed follower has processed",
      lambda: max(0, clock.position - follower.mark.lsn) if follower.mark.lsn else None)
    g("memorybank_feed_follower_cursor", "Last change-feed seq the follower processed",
      lambda: follower.cursor if follower.mark.lsn else None)
    g("memorybank_index_lag_bytes",
      "WAL bytes between the replay position and what the search index covers",
      lambda: max(0, clock.position - indexer.mark.lsn))
    g("memorybank_index_ready",
      "1 while the search index is current (loaded or resumed, and caught up since)",
      lambda: float(indexer.state == "current"))
    g("memorybank_breaker_state", "Circuit breaker state (1 for the current one)",
      lambda: breaker_states(breakers), labels=("breaker", "state"))
    if isinstance(embedder, QueryCache):
        cache = embedder
        probes.counter(
            "memorybank_query_cache_lookups",
            "Query texts looked up in the hub's query cache, by result (hit; miss: embedded; "
            "joined: a miss that joined a call already embedding the same text)",
            lambda: {("hit",): cache.hits, ("miss",): cache.misses - cache.joined,
                     ("joined",): cache.joined}, labels=("result",))
