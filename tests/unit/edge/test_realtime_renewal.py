"""The edge's half of a socket's lifetime (``mbedge.realtime``, ``mbwire.socket_auth``): the
upgrade's hop carries the token's deadline, which a client cannot set, and an ``auth`` op is
verified here and passed on as a renewal only a hub holding the hop secret accepts."""

from __future__ import annotations

import math
import time

import msgspec
import pytest

from mbedge import EdgeRequest
from mbedge.realtime import renewal
from mbedge.sockets import hub_target, plan_upgrade
from mbwire import HopError, HopSigner
from mbwire.socket_auth import Renew, until_of, verify_renewal
from tests.unit.edge.edge_fakes import HOP_SECRET, make_rig, token


def upgrade_request(jwt: str, query: str = "") -> EdgeRequest:
    return EdgeRequest(method="GET", path="/v1/realtime", query=query, body=b"",
                       headers={"authorization": f"Bearer {jwt}"})


async def test_the_hop_carries_the_tokens_deadline_and_a_client_cannot_set_it() -> None:
    rig, signer = make_rig(), HopSigner(HOP_SECRET)
    exp = int(time.time()) + 600
    req = upgrade_request(token("alice", exp=exp), query="mb_until=99999999999&x=1")
    upgrade = await plan_upgrade(rig.edge, req, "w1")
    url, headers = hub_target(rig.edge, signer, upgrade, upgrade.candidates[0])
    query = url.partition("?")[2]
    assert until_of(query) == math.floor(exp + rig.edge.settings.jwt_leeway_s)
    assert query.startswith("x=1&") and query.count("mb_until") == 1
    assert HopSigner(HOP_SECRET).verify("GET", "/v1/realtime", headers, "w1", query=query)


async def test_an_auth_op_becomes_a_signed_renewal_and_a_bad_token_an_error_frame() -> None:
    rig, signer = make_rig(), HopSigner(HOP_SECRET)
    upgrade = await plan_upgrade(rig.edge, upgrade_request(token("alice")), "w1")
    fresh = token("alice", exp=int(time.time()) + 3600)
    renew, refused = renewal(rig.edge, signer, upgrade, f'{{"op":"auth","token":"{fresh}"}}')
    assert refused is None and renew is not None
    op = msgspec.json.decode(renew, type=Renew)
    assert verify_renewal(HopSigner(HOP_SECRET), op, "w1").sub == "alice"
    with pytest.raises(HopError):  # signed for this socket only
        verify_renewal(HopSigner(HOP_SECRET), op, "w2")
    renew, refused = renewal(rig.edge, signer, upgrade, '{"op":"auth","token":"not.a.jwt"}')
    assert renew is None and refused is not None
    assert msgspec.json.decode(refused)["status"] == 401
    assert renewal(rig.edge, signer, upgrade, '{"op":"subscribe","channels":["auth"]}') == (
        None, None)
