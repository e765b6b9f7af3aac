"""The dev stack's artifact wiring: one blob directory and URL secret for central and every hub,
URLs pointing at an edge, and a secrets file from before artifacts gaining its secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from devstack import apps, children, secrets
from devstack.children import Sources
from devstack.ports import PortPlan
from devstack.secrets import Secrets
from devstack.state import StackState
from devstack.topology import build_topology

REGIONS = ("iad", "ams")
SECRETS = Secrets(edge_hop_secret="e" * 20, central_hop_secret="c" * 20,
                  jwt_hs256_secret="j" * 20, artifact_url_secret="a" * 32)


def test_central_and_hubs_share_blobs_and_secret_and_point_at_an_edge() -> None:
    plan = PortPlan(base=25000, regions=REGIONS)
    topo = build_topology(plan)
    current = StackState(data_dir="/d", regions=list(REGIONS), services=["central", "hubs"],
                         port_base=plan.base, topology=topo)
    src = Sources(pg_bin=None, redis_server=None, run_as=None, secrets=SECRETS,
                  factories=apps.DEFAULT_FACTORIES)
    s = children.build_specs(current, Path("/d"), src)
    central, iad, ams = s["central"].env, s["hub-iad"].env, s["hub-ams"].env
    assert central["CENTRAL_BLOB_URL"] == iad["HUB_BLOB_URL"] == ams["HUB_BLOB_URL"] == "/d/blobs"
    assert central["CENTRAL_ARTIFACT_URL_SECRET"] == ams["HUB_ARTIFACT_URL_SECRET"] == "a" * 32
    assert central["CENTRAL_PUBLIC_URL"] == topo.edges["iad"]  # the primary region's edge
    assert ams["HUB_PUBLIC_URL"] == topo.edges["ams"]  # each hub: its own region's


def test_secrets_from_before_artifacts_gain_theirs_and_keep_the_rest(tmp_path: Path) -> None:
    old = {"edge_hop_secret": "e" * 20, "central_hop_secret": "c" * 20,
           "jwt_hs256_secret": "j" * 20}
    path = tmp_path / secrets.SECRETS_FILE
    path.write_bytes(msgspec.json.encode(old))
    os.chmod(path, 0o600)
    upgraded = secrets.load_or_create(tmp_path)
    assert len(upgraded.artifact_url_secret) >= 32
    assert (upgraded.edge_hop_secret, upgraded.central_hop_secret,
            upgraded.jwt_hs256_secret) == ("e" * 20, "c" * 20, "j" * 20)
    assert secrets.load_or_create(tmp_path) == upgraded  # written back: stable from now on
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [secrets.SECRETS_FILE]


def test_fresh_secrets_include_the_artifact_secret(tmp_path: Path) -> None:
    fresh = secrets.load_or_create(tmp_path)
    assert len(fresh.artifact_url_secret) >= 32
    assert fresh.artifact_url_secret not in (fresh.edge_hop_secret, fresh.central_hop_secret)
