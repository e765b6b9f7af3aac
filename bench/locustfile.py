"""The seed's agent mix for locust, through the edges of a local stack, from several regions.

Each simulated agent is its own ``sub`` (tier ``enterprise``) that owns one twin and one wallet,
made before it starts (outside the statistics), and sits in one region: it calls that region's
edge with the dev-mode ``X-Debug-Geo`` header of a city there, so the edge routes it as it would
a caller from that city. Mix (weights per 100 requests): 80 reads (its profile 40, knowledge
queries 20, its grants 10, its wallet 10) and 20 writes (profile patches 8, events about its
twin 6, transfers to another agent's wallet 6).

Environment (``bench/load_steps.py`` sets it from the stack): ``MB_EDGES`` (JSON region -> edge
URL), ``MB_JWT_SECRET``, ``MB_USER_RPS`` (requests per second per agent, default 2),
``MB_ONLY`` (task names, comma-separated: only those, at equal weight, to price one kind of
request alone, e.g. ``MB_ONLY=query_knowledge scripts/load --rate 60``).

    locust -f bench/locustfile.py --headless -u 50 -r 25 -t 30s --csv out/run --html out/run.html
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from pathlib import Path

import requests
from locust import FastHttpUser, constant_throughput, task

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire")]

from devstack.secrets import mint_token  # noqa: E402

EDGES: dict[str, str] = json.loads(os.environ.get("MB_EDGES", '{"ams": "http://127.0.0.1:8000"}'))
SECRET = os.environ.get("MB_JWT_SECRET", "")
USER_RPS = float(os.environ.get("MB_USER_RPS", "2"))
# A city in each region (lat,lon): what the dev-mode geo override says the caller is near.
CITIES = {"ams": "52.37,4.90", "iad": "38.90,-77.04", "sin": "1.35,103.82", "fra": "50.11,8.68",
          "lhr": "51.51,-0.13", "nrt": "35.68,139.69", "syd": "-33.87,151.21"}
QUERIES = ("how do agents share memory", "consistency token", "rate limits per tier",
           "replica lag", "wallet transfer")
WALLETS: list[str] = []  # every agent's wallet in this locust process: transfer targets


def _setup(base: str, sub: str, twin: str, wallet: str) -> None:
    """The agent's twin and funded wallet, outside locust's statistics."""
    own = {"Authorization": "Bearer " + mint_token(SECRET, sub, tier="enterprise")}
    admin = {"Authorization": "Bearer " + mint_token(SECRET, "load-admin", tier="internal")}
    r = requests.post(f"{base}/v1/twins", json={"twin_id": twin, "profile": {"name": sub}},
                      headers=own, timeout=10)
    r.raise_for_status()
    r = requests.post(f"{base}/v1/wallets/{wallet}/mint", headers=admin, timeout=10,
                      json={"amount": "1000000", "currency": "TOK", "owner": sub,
                            "idempotency_key": uuid.uuid4().hex})
    r.raise_for_status()


class Agent(FastHttpUser):
    wait_time = constant_throughput(USER_RPS)
    host = next(iter(EDGES.values()))

    def on_start(self) -> None:
        self.region = random.choice(sorted(EDGES))
        self.base = EDGES[self.region]
        self.sub = f"load-{uuid.uuid4().hex[:12]}"
        self.twin, self.wallet = self.sub, f"w-{self.sub}"
        _setup(self.base, self.sub, self.twin, self.wallet)
        WALLETS.append(self.wallet)
        self.headers = {"Authorization": "Bearer " + mint_token(SECRET, self.sub,
                                                                tier="enterprise"),
                        "X-Debug-Geo": CITIES.get(self.region, CITIES["ams"])}

    def _get(self, path: str, name: str) -> None:
        self.client.get(self.base + path, headers=self.headers, name=name)

    @task(40)
    def read_profile(self) -> None:
        self._get(f"/v1/twins/{self.twin}", "GET /v1/twins/{id}")

    @task(20)
    def query_knowledge(self) -> None:
        self.client.post(self.base + "/v1/knowledge/query", headers=self.headers,
                         json={"query": random.choice(QUERIES), "limit": 5},
                         name="POST /v1/knowledge/query")

    @task(10)
    def list_grants(self) -> None:
        self._get(f"/v1/twins/{self.twin}/grants", "GET /v1/twins/{id}/grants")

    @task(10)
    def read_wallet(self) -> None:
        self._get(f"/v1/wallets/{self.wallet}", "GET /v1/wallets/{id}")

    @task(8)
    def patch_profile(self) -> None:
        self.client.patch(self.base + f"/v1/twins/{self.twin}",
                          headers={**self.headers,
                                   "Content-Type": "application/merge-patch+json"},
                          data=json.dumps({"seen": random.randrange(1 << 30)}),
                          name="PATCH /v1/twins/{id}")

    @task(6)
    def log_event(self) -> None:
        self.client.post(self.base + "/v1/events", headers=self.headers, name="POST /v1/events",
                         json={"events": [{"twin_id": self.twin, "type": "load.step",
                                           "payload": {"n": random.randrange(1 << 30)},
                                           "idempotency_key": uuid.uuid4().hex}]})

    @task(6)
    def transfer(self) -> None:
        if len(WALLETS) < 2:
            self.read_wallet()
            return
        to = random.choice(WALLETS)
        if to == self.wallet:  # a transfer to itself is refused: take the next agent's
            to = WALLETS[(WALLETS.index(to) + 1) % len(WALLETS)]
        self.client.post(self.base + "/v1/transactions", headers=self.headers,
                         json={"from_wallet": self.wallet, "to_wallet": to, "amount": "0.01",
                               "currency": "TOK", "idempotency_key": uuid.uuid4().hex},
                         name="POST /v1/transactions")


if os.environ.get("MB_ONLY"):
    Agent.tasks = [getattr(Agent, name.strip()) for name in os.environ["MB_ONLY"].split(",")]
