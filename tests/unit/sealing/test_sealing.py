"""The sealed format, the cell's key store and a process's keyring (sealing/)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from mbwire import NotFound, Unavailable
from sealing import Keyring, KeyStore, SealError, is_sealed
from sealing.aead import OVERHEAD, open_sealed, seal
from sealing.kek import KekMissing

TWIN = st.from_regex(r"[a-z0-9_]{1,20}(~[a-z]{2})?", fullmatch=True)
FIELD = st.sampled_from(["state", "profile", "update:7", "event:3", "chunk:d1:0"])
KEY = AESGCM(bytes(range(32)))


@given(twin=TWIN, field=FIELD, data=st.binary(max_size=2048))
def test_a_sealed_value_opens_to_what_was_sealed_and_holds_none_of_it(
        twin: str, field: str, data: bytes) -> None:
    sealed = seal(KEY, 1, twin, field, data)
    assert is_sealed(sealed) and len(sealed) == len(data) + OVERHEAD
    assert open_sealed(KEY, twin, field, sealed) == data
    if len(data) >= 8:
        assert data not in sealed


@given(a=TWIN, b=TWIN, field=FIELD, other=FIELD, data=st.binary(min_size=1, max_size=64))
def test_a_value_moved_to_another_twin_or_field_does_not_open(
        a: str, b: str, field: str, other: str, data: bytes) -> None:
    sealed = seal(KEY, 1, a, field, data)
    if b != a:
        with pytest.raises(SealError):
            open_sealed(KEY, b, field, sealed)
    if other != field:
        with pytest.raises(SealError):
            open_sealed(KEY, a, other, sealed)


@given(data=st.binary(min_size=1, max_size=64), at=st.integers(min_value=0))
def test_any_altered_byte_fails_to_open(data: bytes, at: int) -> None:
    sealed = bytearray(seal(KEY, 1, "t1", "profile", data))
    i = at % len(sealed)
    sealed[i] ^= 0x01
    with pytest.raises(SealError):
        open_sealed(KEY, "t1", "profile", bytes(sealed))


def test_the_same_value_sealed_twice_never_shares_a_nonce() -> None:
    nonces = {seal(KEY, 1, "t1", "profile", b"same")[3:15] for _ in range(2000)}
    assert len(nonces) == 2000


def test_plaintext_is_not_sealed() -> None:
    assert not is_sealed(b'{"name": "x"}') and not is_sealed(None)
    with pytest.raises(SealError):
        open_sealed(KEY, "t1", "profile", b'{"name": "a json profile, not sealed"}')


def test_a_key_store_keeps_one_key_per_twin_wrapped_never_raw(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    made = store.get_or_create("tw_a")
    assert store.get_or_create("tw_a") == made  # a second create keeps the first key
    assert store.get("tw_a") == made and store.get("tw_b") is None
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert made.key not in path.read_bytes()
            assert path.stat().st_mode & 0o077 == 0, path  # ours alone


def test_concurrent_creates_of_one_twin_agree_on_its_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(store.get_or_create("tw").key))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1


def test_destroying_a_key_leaves_no_copy_in_the_store(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    made = store.get_or_create("tw_a")
    gone = store.destroy("tw_a")
    assert gone is not None and gone.key_id == made.key_id
    assert store.get("tw_a") is None and store.destroy("tw_a") is None
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert made.key_id.encode() not in path.read_bytes()


def test_a_wrapped_key_moved_to_another_twins_record_does_not_unwrap(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.get_or_create("tw_a")
    store.get_or_create("tw_b")
    a, b = (tmp_path / "deks" / "tw_a.json"), (tmp_path / "deks" / "tw_b.json")
    b.write_bytes(a.read_bytes().replace(b'"twin_id":"tw_a"', b'"twin_id":"tw_b"'))
    with pytest.raises(Exception, match="does not unwrap"):
        store.get("tw_b")


def test_rotation_rewraps_every_key_and_retires_the_old_key_encryption_key(
        tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    keys = {t: store.get_or_create(t) for t in ("a", "b", "c")}
    index = store.index_key()
    old = store.kek.current()
    done = store.rotate()
    assert done.old == old and done.new != old and done.rewrapped == 4  # 3 twins + index
    assert not (tmp_path / "kek" / f"{old}.key").exists()
    fresh = KeyStore(tmp_path)  # another process of the cell, after the rotation
    assert {t: fresh.get(t) for t in keys} == keys
    assert fresh.index_key() == index
    with pytest.raises(KekMissing):
        fresh.kek.unwrap(old, "a", b"\x00" * 60)


def test_a_rotation_never_brings_back_a_key_destroyed_during_it(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    for i in range(200):
        store.get_or_create(f"t{i}")
    rotating = threading.Thread(target=store.rotate)
    rotating.start()
    for i in range(200):
        store.destroy(f"t{i}")
    rotating.join()
    assert [store.get(f"t{i}") for i in range(200)] == [None] * 200


async def test_a_keyring_is_bounded_and_forgets(tmp_path: Path) -> None:
    ring = Keyring(KeyStore(tmp_path), items=2)
    for t in ("a", "b", "c"):
        await ring.create(t)
    assert ring.cached("a") is None and ring.cached("c") is not None  # the oldest went first
    key = await ring.key("a")  # from the store again
    assert key.open_json("profile", key.seal_json("profile", {"x": 1})) == {"x": 1}
    ring.forget("a")
    assert ring.cached("a") is None


async def test_a_keyring_expires_keys_after_its_ttl(tmp_path: Path) -> None:
    ring = Keyring(KeyStore(tmp_path), ttl_s=0.0)
    await ring.create("a")
    assert ring.cached("a") is None


async def test_a_twin_without_a_key_is_not_found_and_no_store_is_unavailable(
        tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        await Keyring(KeyStore(tmp_path)).key("nobody")
    with pytest.raises(Unavailable):
        await Keyring(None).key("anyone")
    ring = Keyring(KeyStore(tmp_path))
    await ring.create("a")
    await ring.destroy("a")
    with pytest.raises(NotFound):
        await ring.key("a")


@settings(max_examples=25)
# Words of letters past "f": a hex digest can never hold one by chance, so finding it in a term
# would mean the word itself was kept.
@given(words=st.lists(st.from_regex(r"[g-z]{3,12}", fullmatch=True), min_size=1, max_size=8))
def test_blind_terms_are_stable_per_cell_and_hide_the_word(words: list[str]) -> None:
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        a, b = Keyring(KeyStore(Path(one))), Keyring(KeyStore(Path(two)))
        first = asyncio.run(a.blind(words))
        assert asyncio.run(a.blind(words)) == first  # the same words, the same terms
        assert asyncio.run(b.blind(words)) != first  # another cell's key, other terms
        for word, term in zip(words, first, strict=True):
            assert word not in term and term.startswith("h") and len(term) == 17
