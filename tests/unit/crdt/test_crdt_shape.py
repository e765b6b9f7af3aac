"""The twin's shape: one root map of map entries, maps nested a bounded depth, nothing
Yrs would mishandle. Hand-built V1 updates stand in for what no honest client sends."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlFragment

from crdt import InvalidUpdate, TwinDoc, merge, validate_update
from tests.unit.crdt.crdt_helpers import ARRAY, FULL, TEXT, assert_refused_and_untouched


def _update(build: Any) -> bytes:
    doc: Doc[Any] = Doc(client_id=31)
    build(doc)
    return doc.get_update()


def test_another_root_is_refused() -> None:
    other = _update(lambda d: d.get("other", type=Map).__setitem__("k", 1))
    with pytest.raises(InvalidUpdate, match="one root map"):
        validate_update(other)
    assert_refused_and_untouched(TwinDoc.load(FULL), other)


def test_profile_used_as_a_list_is_refused() -> None:
    update = _update(lambda d: d.get("profile", type=Array).append("x"))
    with pytest.raises(InvalidUpdate, match="list content"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


@pytest.mark.parametrize(
    "value",
    [Array([1, 2]), Text("notes"), XmlFragment(), Doc()],
    ids=["array", "text", "xml", "subdoc"],
)
def test_content_a_twin_does_not_hold_is_refused(value: Any) -> None:
    update = _update(lambda d: d.get("profile", type=Map).__setitem__("k", value))
    with pytest.raises(InvalidUpdate, match="not"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


@pytest.mark.parametrize("update", [TEXT, ARRAY], ids=["Y.Text", "Y.Array"])
def test_a_yjs_text_or_array_is_refused(update: bytes) -> None:
    """Arrays and strings are plain values in a twin; only objects are shared (Y.Map)."""
    with pytest.raises(InvalidUpdate, match="is not a map"):
        validate_update(update)


def test_text_content_in_a_list_is_refused_before_it_can_hang_the_process() -> None:
    """Found by fuzzing: Yrs renders a list holding text content with a character outside the
    BMP in an endless loop (``str(map)`` never returns). No Yjs client writes it; a profile
    holds no text content at all, so the bytes are refused before pycrdt sees them."""
    make_list = b"\x27\x01" + _str("profile") + _str("p") + b"\x00"  # profile.p = Y.Array
    text = b"\x04\x00" + _uint(9) + _uint(0) + _str("héllo 🌍")  # ContentString in it
    update = _one_client(9, [make_list, text])
    with pytest.raises(InvalidUpdate, match=r"not a map|text content"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


# Hand-built V1 updates, for shapes pycrdt would not write.
def _uint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _str(text: str) -> bytes:
    raw = text.encode()
    return _uint(len(raw)) + raw


def _one_client(client_id: int, structs: list[bytes], clock: int = 0) -> bytes:
    return (
        b"\x01"
        + _uint(len(structs))
        + _uint(client_id)
        + _uint(clock)
        + b"".join(structs)
        + b"\x00"
    )


def test_deeply_nested_values_are_refused_before_pycrdt_sees_them() -> None:
    """pycrdt decodes values recursively: at 100k levels the process dies (segfault)."""
    deep = b"\x01" + b"\x75\x01" * 100_000 + b"\x7e"  # Any: [[[...null...]]]
    update = _one_client(9, [b"\x28\x01" + _str("profile") + _str("k") + deep])
    with pytest.raises(InvalidUpdate, match="nested too deep"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


def test_deeply_nested_maps_are_refused() -> None:
    """Each map a separate item: only the document can tell the depth. Yrs renders and
    deletes nested types recursively; 100k levels kill the process (checked)."""
    structs = [b"\x27\x01" + _str("profile") + _str("k") + b"\x01"]
    structs += [b"\x27\x00" + _uint(9) + _uint(i) + _str("k") + b"\x01" for i in range(200)]
    update = _one_client(9, structs)
    validate_update(update)  # fine by itself ...
    with pytest.raises(InvalidUpdate, match="nested deeper"):  # ... not inside a twin
        merge(None, update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


def test_a_map_entry_holding_several_values_is_refused() -> None:
    """No Yjs client writes it; Yrs integrated it one way and re-encoded it another."""
    three = b"\x03" + b"".join(b"\x7b" + struct.pack(">d", x) for x in (1, 2, 3))
    update = _one_client(9, [b"\x28\x01" + _str("profile") + _str("k") + three])
    with pytest.raises(InvalidUpdate, match="holds 3 values"):
        validate_update(update)


@pytest.mark.parametrize(("origin", "right"), [(1, 0), (2, 2), (4, 3)])
def test_inserts_before_an_item_are_refused(origin: int, right: int) -> None:
    """Found by the mutation test on text, then searched on lists: an insert whose origins
    contradict each other lands in one place in memory and another once re-encoded and
    decoded (list items even vanish from memory), so the resident doc and its stored state
    would differ. Map entries never name a right origin, so none is accepted."""
    doc: Doc[Any] = Doc(client_id=1)
    doc.get("profile", type=Map).update({"m": Map({"a": 1, "b": 2}), "k": 1})
    twin = TwinDoc.load(doc.get_update())
    insert = b"\xc8\x01" + _uint(origin) + b"\x01" + _uint(right) + b"\x01\x77\x01Z"
    assert_refused_and_untouched(twin, _one_client(3, [insert]), match="inserts before")


def test_an_overwrite_names_the_entry_it_overwrites_as_origin() -> None:
    """The shape every map write after the first has: origin = the key's current item."""
    doc: Doc[Any] = Doc(client_id=1)
    doc.get("profile", type=Map).update({"m": Map({"a": 1})})  # m is item 1:0, a is 1:1
    twin = TwinDoc.load(doc.get_update())
    overwrite = b"\x88\x01\x01\x01\x77\x01Z"  # origin 1:1, one value: "Z"
    assert twin.apply(_one_client(3, [overwrite]))
    assert twin.profile() == {"m": {"a": "Z"}}
