"""The log_event and update_trajectory body checks: each refusal names a JSON pointer to the
offending event, whatever made it bad; a good body passes unchanged."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire.checks_events import check_events, check_trajectory, pointer_of
from mbwire.errors import BadRequest, Unprocessable


def body(*events: dict[str, object]) -> bytes:
    return msgspec.json.encode({"events": list(events)})


OK = {"twin_id": "ada", "type": "page.viewed", "payload": {"url": "/"}}


@pytest.mark.parametrize(("bad", "pointer"), [
    ({"type": 1}, "/events/1/type"),
    ({"type": "has space"}, "/events/1/type"),
    ({"type": "x" * 65}, "/events/1/type"),
    ({"twin_id": "a/b"}, "/events/1/twin_id"),
    ({"idempotency_key": "has space"}, "/events/1/idempotency_key"),
    ({"payload": "\x00"}, "/events/1/payload"),
    ({"payload": {"k\x00": 1}}, "/events/1/payload"),
    ({"payload": "x" * 20000}, "/events/1/payload"),
    ({"payload": [[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]}, "/events/1/payload"),
    ({"text": 7}, "/events/1/text"),
    ({"text": ""}, "/events/1/text"),
    ({"text": " \n\t"}, "/events/1/text"),
    ({"text": "a\x00b"}, "/events/1/text"),
    ({"text": "é" * 8193}, "/events/1/text"),  # 16,386 bytes of UTF-8
    ({"occurred_at": "2025-01-01T00:00:00"}, "/events/1/occurred_at"),  # no offset
    ({"occurred_at": "last tuesday"}, "/events/1/occurred_at"),
])
def test_a_bad_event_is_named_by_pointer(bad: dict[str, object], pointer: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_events(body(OK, {**OK, **bad}, OK))
    assert caught.value.extra["errors"][0]["pointer"] == pointer


def test_batch_limits_and_garbage() -> None:
    for raw in (body(), body(*[OK] * 101), b'{"events": 1}', b"{}"):
        with pytest.raises(Unprocessable):
            check_events(raw)
    with pytest.raises(BadRequest):
        check_events(b"{not json")
    assert len(check_events(body(*[OK] * 100)).events) == 100


def test_trajectory_checks() -> None:
    assert check_trajectory(b'{"action": "a", "expected_version": 0}').expected_version == 0
    for raw, pointer in ((b'{"action": "a"}', ""),
                         (b'{"action": "a", "expected_version": -1}', "/expected_version"),
                         (b'{"action": "a", "expected_version": 0, "evidence": "\\u0000"}',
                          "/evidence")):
        with pytest.raises(Unprocessable) as caught:
            check_trajectory(raw)
        assert caught.value.extra["errors"][0]["pointer"] == pointer


@given(st.lists(st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                          st.integers(0, 999)), max_size=6))
def test_pointer_of_reads_msgspec_paths(parts: list[str | int]) -> None:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    assert pointer_of(f"Expected `str`, got `int` - at `{path}`") == "".join(
        f"/{p}" for p in parts)


def test_a_lone_surrogate_in_a_text_is_not_json() -> None:
    raw = b'{"events": [{"twin_id": "ada", "type": "t", "text": "a\\ud800b"}]}'
    with pytest.raises(BadRequest, match="not valid JSON"):  # a 400, never stored
        check_events(raw)


def test_a_memory_up_to_16_kib_with_its_time_passes() -> None:
    batch = check_events(body({**OK, "text": "é" * 8192,
                               "occurred_at": "2024-07-14T18:30:00+02:00"}))
    event = batch.events[0]
    assert event.text is not None and len(event.text.encode()) == 16 * 1024
    assert event.occurred_at is not None and event.occurred_at.utcoffset() is not None
