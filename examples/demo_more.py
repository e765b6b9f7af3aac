"""The rest of ``memorybank demo``: what agents record and do with a twin (events, a trajectory,
the agent directory, recommendations), money (mint, transfer, wallets), one consistent batch of
reads, and a realtime subscription that sees the events arrive. Each step goes through an edge
with the SDK, as a real client would; each returns False with a FAILED line when the service
does not do what it says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from memorybank_client import AsyncMemoryBank, Conflict
from memorybank_client.realtime import Gap, Message


async def _first_event(stream: AsyncIterator[Message], twin_id: str) -> Message:
    """The first ``event`` message on the twin's channel (the replay from ``since`` brings the
    twin's earlier changes first)."""
    async for message in stream:
        if message.channel == f"twin:{twin_id}" and message.event == "event":
            return message
    raise RuntimeError("the subscription ended")


async def memory(alice: Any, bob: Any, scout: Any, twin_id: str, run: str) -> bool:
    """Steps 14-19: realtime, events, trajectory, agents, recommendations."""
    # Bob subscribes through his own edge from the start of the feed, so nothing is missed
    # however the subscription and the writes race.
    stream = bob.subscribe([f"twin:{twin_id}"], since=0)
    arrival = asyncio.ensure_future(_first_event(stream, twin_id))
    logged = await alice.twins.log_events([
        {"twin_id": twin_id, "type": "note", "payload": {"text": f"read about heron{run} habits"}},
        {"twin_id": twin_id, "type": "visit", "payload": {"place": "the canal"},
         "text": f"Walked along the canal at dawn and counted nine herons ({run})",
         "occurred_at": "2026-12-01T07:30:00Z"},  # a memory: recall searches its text
    ])
    print(f"14. alice logged 2 events ({alice.header('x-served-by')}): 202, accepted "
          f"{logged.accepted}, durable at the primary before the answer")
    try:
        message = await asyncio.wait_for(arrival, 15)
    except Gap:
        print("FAILED: the feed no longer holds its start; subscribe without since")
        return False
    finally:
        arrival.cancel()
        with contextlib.suppress(BaseException):
            await arrival
        with contextlib.suppress(BaseException):
            await stream.aclose()
    print(f"15. bob's realtime subscription (twin:{twin_id}) got '{message.event}' seq "
          f"{message.seq}, readable at token {message.consistency_token}")
    listed = await bob.twins.events(twin_id, consistency_token=message.consistency_token)
    kinds = [e.type for e in listed.items]
    print(f"    bob listed the twin's events with that token: {kinds}")
    if kinds[:2] != ["note", "visit"]:
        print("FAILED: the events announced were not readable with their token")
        return False
    recalled = await bob.twins.recall(twin_id, "herons by the canal")  # with the same token
    if not recalled.results or recalled.results[0].title != "visit":
        print("FAILED: the text event was not recalled with its token")
        return False
    top = recalled.results[0]
    print(f"    bob recalled 'herons by the canal': event {top.id} ({top.title}, occurred "
          f"{top.occurred_at}): {top.snippet[:60]!r}")

    step = await alice.twins.update_trajectory(twin_id, "read the field notes", 0)
    try:  # Bob planned from version 0 too: a 409 that carries what he has not seen.
        await bob.twins.update_trajectory(twin_id, "walk to the canal", 0)
        print("FAILED: a stale expected_version was accepted")
        return False
    except Conflict as conflict:
        current = conflict.body["current_version"]
        seen = [s["action"] for s in conflict.body["steps"]]
    rebased = await bob.twins.update_trajectory(twin_id, "walk to the canal", current)
    print(f"16. trajectory: alice wrote step {step.version}; bob's stale write got 409 with "
          f"current_version {current} and the steps he missed {seen}; he rebased to step "
          f"{rebased.version} with no extra read")

    await scout.agents.register("researcher", f"Scout {run}", description="Watches birds",
                                interests=["birds", "herons", "canals"])
    found = await bob.agents.search(f"Scout {run}",
                                    consistency_token=scout.consistency_token)
    print(f"17. an agent registered in the directory; bob found it by full text: "
          f"{[a.name for a in found.items]}")
    if not found.items:
        print("FAILED: the registered agent was not listed")
        return False

    await alice.twins.patch(twin_id, {"interests": ["birds", "herons"]})
    recs = await bob.twins.recommendations(twin_id, consistency_token=alice.consistency_token)
    print(f"18. recommendations for the twin ({len(recs.items)}, basis {recs.basis}):")
    for item in recs.items[:4]:
        print(f"    {item.kind:<9} {item.title or item.id}: {item.reason}")
    return bool(recs.items)


async def money(admin: AsyncMemoryBank, alice: Any, bob: Any, alice_sub: str, bob_sub: str,
                twin_id: str, run: str) -> bool:
    """Steps 19-21: mint, transfer (retried with its key), and one batch at one snapshot."""
    mine, theirs = f"w-alice-{run}", f"w-bob-{run}"
    await admin.wallets.mint(mine, "100.00", "TOK", owner=alice_sub)
    await admin.wallets.mint(theirs, "1.00", "TOK", owner=bob_sub)
    key = f"demo-{run}"
    done = await alice.wallets.transfer(mine, theirs, "25.50", "TOK", reason="field guide",
                                        idempotency_key=key)
    again = await alice.wallets.transfer(mine, theirs, "25.50", "TOK", reason="field guide",
                                         idempotency_key=key)
    print(f"19. an admin minted 100 TOK to alice; alice paid bob 25.50 TOK: balances "
          f"{done.from_balance} / {done.to_balance}; the retry with the same key answered the "
          f"same transaction ({again.transaction_id == done.transaction_id})")
    wallet = await bob.wallets.get(theirs, consistency_token=alice.consistency_token)
    print(f"20. bob's wallet read in his region with alice's token: {wallet.balance} TOK, "
          f"{len(wallet.entries)} entries")
    batch = await bob.batch([
        {"action": "get_twin_profile", "params": {"twin_id": twin_id}},
        {"action": "get_wallet", "params": {"wallet_id": theirs}},
        {"action": "get_wallet", "params": {"wallet_id": mine}},
    ], consistency_token=alice.consistency_token)
    print(f"21. bob's batch of 3 reads at one snapshot ({batch.consistency_token}): statuses "
          f"{[r.status for r in batch.results]} (alice's wallet is not his to read)")
    return (again.transaction_id == done.transaction_id and wallet.balance.startswith("26.5")
            and [r.status for r in batch.results][:2] == [200, 200]
            and batch.results[2].status in (403, 404))
