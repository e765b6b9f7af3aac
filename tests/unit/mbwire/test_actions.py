"""The action table and the document generated from it: every action found by its own path,
every documented status has a schema, and the examples round-trip through the wire types and
validate against the document's schemas (what a generated client would rely on)."""

from __future__ import annotations

from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import openapi
from mbwire.actions import ACTIONS, BY_NAME, OCTETS, Action, match, methods_at
from mbwire.errors import PROBLEM_CONTENT_TYPE

segment = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z")


def test_every_action_is_declared_once() -> None:
    assert len({(a.method, a.path) for a in ACTIONS}) == len(ACTIONS)
    assert len(BY_NAME) == len(ACTIONS)


@given(st.sampled_from(ACTIONS), st.lists(segment, min_size=2, max_size=2))
def test_match_finds_each_action_at_its_own_path(action: Action, values: list[str]) -> None:
    names = [seg[1:-1] for seg in action.path.split("/") if seg.startswith("{")]
    params = dict(zip(names, values, strict=False))
    found = match(action.method, action.path.format(**params))
    assert found is not None and found.action is action and found.params == params
    assert action.method in methods_at(action.path.format(**params))


def test_no_action_at_unknown_paths_and_head_is_get() -> None:
    assert match("GET", "/v1/twins/a/b/c") is None
    assert match("PUT", "/v1/twins/a") is None
    assert match("GET", "/v1/twins/") is None
    found = match("HEAD", "/v1/twins/a")
    assert found is not None and found.action.name == "get_twin_profile"


def _doc() -> dict[str, Any]:
    return openapi.document()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the document's components beside it, for jsonschema."""
    return {**schema, "components": doc["components"]}


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_document_lists_every_status_with_a_schema(action: Action) -> None:
    doc = _doc()
    op = doc["paths"][action.path][action.method.lower()]
    assert op["operationId"] == action.name and op["security"] == [{"bearer": []}]
    statuses = {int(s) for s in op["responses"]}
    assert statuses == {action.status, *action.statuses}
    members = dict(action.problem_members)
    for status in action.statuses:
        content = op["responses"][str(status)]["content"]
        problem = {"$ref": "#/components/schemas/ProblemDetails"}
        if status in members:  # a problem with extra members: both schemas
            problem = {"allOf": [problem, {
                "$ref": f"#/components/schemas/{members[status].__name__}"}]}
            if status == 409 and action.writes and "header" in action.idempotency:
                # or the plain idempotency-key-reused problem
                problem = {"anyOf": [problem, {"$ref": "#/components/schemas/ProblemDetails"}]}
        assert content[PROBLEM_CONTENT_TYPE]["schema"] == problem
    assert ("requestBody" in op) == (action.request is not None)
    path_params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
    assert path_params == {seg[1:-1] for seg in action.path.split("/") if seg.startswith("{")}


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_examples_round_trip_and_validate(action: Action) -> None:
    doc = _doc()
    op = doc["paths"][action.path][action.method.lower()]
    pairs = [(action.response, action.example_response,
              op["responses"][str(action.status)]["content"])]
    if action.request is not None:
        pairs.append((action.request, action.example_request, op["requestBody"]["content"]))
    for tp, example, content in pairs:
        if tp is bytes:
            assert OCTETS in content or "*/*" in content
            continue
        assert example is not None, f"{action.name} documents no example"
        decoded = msgspec.convert(example, tp, strict=True)
        assert msgspec.convert(msgspec.to_builtins(decoded), tp, strict=True) == decoded
        for media in content.values():
            schema = _resolve(doc, media["schema"])
            jsonschema.validate(example, schema)
            assert media["example"] == example


def test_document_has_bearer_auth_and_problem_schema() -> None:
    doc = _doc()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    problem = doc["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance",
                                        "request_id"}


def test_request_cost_prices_by_the_matching_action() -> None:
    from mbwire.rules import request_cost

    assert request_cost("GET", "/v1/twins/a", b"") == 1
    assert request_cost("GET", "/nowhere", b"") == 1


def test_an_action_for_superusers_refuses_everyone_else() -> None:
    from mbwire.errors import Forbidden
    from mbwire.rules import check_caller
    from mbwire.types import Principal

    ingest = Action(name="ingest", method="POST", path="/v1/knowledge", summary="", writes=True,
                    caller="superuser")
    check_caller(ingest, Principal(sub="a", tier="internal"))
    check_caller(ingest, Principal(sub="a", tier="free", role="admin"))
    with pytest.raises(Forbidden):
        check_caller(ingest, Principal(sub="a", tier="enterprise", role="sre"))
    check_caller(BY_NAME["create_twin"], Principal(sub="a", tier="free"))
