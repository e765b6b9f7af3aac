"""The ledger against a model (hypothesis stateful): random mints, transfers (by the owner or
by a stranger, affordable or not, in the wallet's currency or not), exact retries and reused keys
with another body, through random edges. After every step each wallet's balance at the primary
is the model's, and the edge answered what the model predicts."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from .conftest import REGIONS, LiveStack

pytestmark = pytest.mark.integration

OWNERS = ("ann", "ben")
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("30"), places=2)


def test_the_ledger_behaves_as_its_model(live: LiveStack) -> None:
    run = uuid.uuid4().hex[:8]

    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.http = httpx.Client(timeout=15)
            self.wallets = [f"m-{run}-{uuid.uuid4().hex[:8]}" for _ in range(3)]
            self.owner = {w: OWNERS[i % 2] for i, w in enumerate(self.wallets)}
            self.model = {w: Decimal(0) for w in self.wallets}
            self.sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            for w in self.wallets:  # a wallet exists from its first mint
                self._mint(w, Decimal("1"), REGIONS[0])

        def teardown(self) -> None:
            self.http.close()

        def _post(self, region: str, path: str, sub: str, body: dict[str, Any],
                  **claims: str) -> httpx.Response:
            return self.http.post(f"{live.topology.edges[region]}{path}",
                                  headers=live.auth(sub, **claims), json=body)

        def _mint(self, wallet: str, amount: Decimal, region: str) -> None:
            r = self._post(region, f"/v1/wallets/{wallet}/mint", "treasurer",
                           {"amount": str(amount), "currency": "TOK",
                            "owner": self.owner[wallet], "idempotency_key": uuid.uuid4().hex},
                           role="admin")
            assert r.status_code == 201, r.text
            self.model[wallet] += amount

        @rule(i=st.integers(0, 2), amount=AMOUNTS, region=st.sampled_from(REGIONS))
        def mint(self, i: int, amount: Decimal, region: str) -> None:
            self._mint(self.wallets[i], amount, region)

        @rule(i=st.integers(0, 2), j=st.integers(0, 2), amount=AMOUNTS,
              stranger=st.booleans(), currency=st.sampled_from(["TOK", "TOK", "USD"]),
              region=st.sampled_from(REGIONS))
        def transfer(self, i: int, j: int, amount: Decimal, stranger: bool, currency: str,
                     region: str) -> None:
            src, dst = self.wallets[i], self.wallets[j]
            sub = "mallory" if stranger else self.owner[src]
            body = {"from_wallet": src, "to_wallet": dst, "amount": str(amount),
                    "currency": currency, "idempotency_key": uuid.uuid4().hex}
            r = self._post(region, "/v1/transactions", sub, body, tier="enterprise")
            if stranger:
                expected = 403
            elif currency != "TOK":
                expected = 422
            elif self.model[src] < amount:
                expected = 409
            else:
                expected = 201
            assert r.status_code == expected, r.text
            if expected == 201:
                self.model[src] -= amount
                self.model[dst] += amount
                assert Decimal(r.json()["from_balance"]) == self.model[src]
                self.sent.append((sub, body, r.json()))

        @rule(data=st.data(), region=st.sampled_from(REGIONS), other=st.booleans())
        def retry(self, data: st.DataObject, region: str, other: bool) -> None:
            if not self.sent:
                return
            sub, body, first = data.draw(st.sampled_from(self.sent))
            if other:  # the same key with another body: refused, nothing moves
                body = {**body, "amount": str(Decimal(body["amount"]) + 1)}
            r = self._post(region, "/v1/transactions", sub, body, tier="enterprise")
            if other:
                assert r.status_code == 409, r.text
            else:
                assert r.status_code == 201, r.text
                assert {k: r.json()[k] for k in ("transaction_id", "from_balance", "to_balance")} \
                    == {k: first[k] for k in ("transaction_id", "from_balance", "to_balance")}

        @invariant()
        def balances_are_the_models(self) -> None:
            with psycopg.connect(live.topology.postgres.primary) as conn:
                stored: dict[str, Decimal] = dict(conn.execute(
                    "select wallet_id, balance from wallets where wallet_id = any(%s)",
                    (self.wallets,)).fetchall())
            assert stored == self.model

    run_state_machine_as_test(Ledger, settings=settings(
        max_examples=12, stateful_step_count=12, deadline=None,
        suppress_health_check=list(HealthCheck)))
