"""The key-encryption key in AWS KMS (sealing/kek.py ``KmsKek``), against moto's server on
127.0.0.1 (a real HTTP KMS API, started for this module): data keys wrapped with the twin as
encryption context, a rotation onto a new KMS key with the old one scheduled for deletion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sealing import Keyring, KeyStore
from sealing.kek import KekError, KmsKek


@pytest.fixture(scope="module")
def kms() -> Iterator[tuple[str, str]]:
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
            yield endpoint, client.create_key(Description="cell kek")["KeyMetadata"]["KeyId"]
        finally:
            server.stop()


def _store(root: Path, kms: tuple[str, str]) -> KeyStore:
    endpoint, key_id = kms
    return KeyStore(root, KmsKek(root, key_id, endpoint=endpoint, cell="g1"))


def test_data_keys_are_wrapped_by_kms_and_bound_to_their_twin(
        tmp_path: Path, kms: tuple[str, str]) -> None:
    store = _store(tmp_path, kms)
    made = store.get_or_create("tw_a")
    again = _store(tmp_path, kms)  # another process of the cell
    assert again.get("tw_a") == made
    record = (tmp_path / "deks" / "tw_a.json").read_bytes()
    assert made.key not in record
    wrapped = store.kek.wrap(store.kek.current(), "tw_a", made.key)
    with pytest.raises(KekError):  # the twin is KMS's encryption context
        store.kek.unwrap(store.kek.current(), "tw_b", wrapped)


def test_a_rotation_moves_every_key_to_a_new_kms_key_and_retires_the_old(
        tmp_path: Path, kms: tuple[str, str]) -> None:
    store = _store(tmp_path, kms)
    keys = {t: store.get_or_create(t) for t in ("a", "b", "c")}
    old = store.kek.current()
    done = store.rotate()
    assert done.old == old and done.new != old and done.rewrapped == 4
    assert {t: _store(tmp_path, kms).get(t) for t in keys} == keys
    assert all(b'"kek":"%s"' % done.new.encode() in p.read_bytes()
               for p in (tmp_path / "deks").iterdir() if p.suffix == ".json")
    # Pending deletion: real KMS refuses to decrypt under it (moto does not enforce that).
    state = store.kek.client.describe_key(KeyId=old)["KeyMetadata"]["KeyState"]  # type: ignore[attr-defined]
    assert state == "PendingDeletion"


async def test_a_keyring_configured_for_kms_seals_and_opens(
        tmp_path: Path, kms: tuple[str, str]) -> None:
    endpoint, key_id = kms
    ring = Keyring.configure(keys_dir=str(tmp_path), kms_key_id=key_id, kms_endpoint=endpoint,
                             cell="g1")
    key = await ring.create("tw_k")
    sealed = key.seal_json("profile", {"name": "Ada"})
    ring.forget("tw_k")
    assert (await ring.key("tw_k")).open_json("profile", sealed) == {"name": "Ada"}
