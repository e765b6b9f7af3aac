"""The SDK's exceptions are built from the server's error tree (``mbwire.errors``): every public
Problem class there, found by iterating the module, has its SDK counterpart of the same name,
status, problem ``type`` and parent, exported from ``memorybank_client``, so a class the server
adds is covered without touching this file."""

from __future__ import annotations

import httpx
import pytest

import memorybank_client as mbc
from mbwire import errors as wire
from memorybank_client import errors

PROBLEMS = sorted((obj for name, obj in vars(wire).items() if not name.startswith("_")
                   and isinstance(obj, type) and issubclass(obj, wire.Problem)),
                  key=lambda cls: cls.__name__)


def _public_parent(cls: type[wire.Problem]) -> type[wire.Problem]:
    return next(base for base in cls.__mro__[1:]
                if base is wire.Problem or base in PROBLEMS)


def _answer(problem: wire.Problem, status: int | None = None) -> httpx.Response:
    body = problem.body(instance="/v1/twins/ada", request_id="req-1")
    return httpx.Response(status or problem.status, json=body,
                          headers={**problem.headers(), "Content-Type": wire.PROBLEM_CONTENT_TYPE})


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda cls: cls.__name__)
def test_every_server_problem_has_its_sdk_exception(problem: type[wire.Problem]) -> None:
    sdk = errors.COUNTERPARTS[problem]
    name = "ProblemError" if problem is wire.Problem else problem.__name__
    assert sdk.__name__ == name and sdk.problem is problem
    assert getattr(mbc, name) is sdk and name in mbc.__all__
    assert getattr(errors, name) is sdk and name in errors.__all__
    assert sdk.status == problem.status
    assert sdk.type_uri == wire.PROBLEM_BASE + problem.slug
    if problem is not wire.Problem:
        assert sdk.__bases__ == (errors.COUNTERPARTS[_public_parent(problem)],)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda cls: cls.__name__)
def test_a_server_answer_maps_to_its_sdk_exception(problem: type[wire.Problem]) -> None:
    raised = problem("why", current_version=3)
    error = errors.from_response(_answer(raised))
    assert type(error) is errors.COUNTERPARTS[problem]
    assert isinstance(error, mbc.ProblemError)
    assert (error.status, error.type, error.title, error.detail, error.request_id) == (
        problem.status, raised.type, problem.title, "why", "req-1")
    assert error.body["current_version"] == 3
    assert error.retry_after == getattr(raised, "retry_after", None)


def test_a_type_the_sdk_does_not_know_maps_by_status_to_the_first_class_of_it() -> None:
    unknown = {"type": "https://memorybank.dev/problems/new-thing", "title": "New", "status": 503}
    assert type(errors.from_response(httpx.Response(503, json=unknown))) is mbc.Unavailable
    assert type(errors.from_response(httpx.Response(409, json=unknown))) is mbc.Conflict
    assert type(errors.from_response(httpx.Response(418, json=unknown))) is mbc.ProblemError
    # A type whose status disagrees with the answer's is not trusted over the status.
    behind = wire.ReplicaBehind("lagging")
    assert type(errors.from_response(_answer(behind, status=404))) is mbc.NotFound


def test_catching_at_the_level_callers_care_about() -> None:
    error = errors.from_response(_answer(wire.ReplicaBehind("lagging", retry_after=4)))
    assert isinstance(error, mbc.Unavailable) and isinstance(error, mbc.ProblemError)
    assert error.retry_after == 4
    conflict = errors.from_response(_answer(wire.VersionConflict("stale")))
    assert isinstance(conflict, mbc.Conflict) and not isinstance(conflict, mbc.Unavailable)


def test_a_class_the_server_adds_needs_no_sdk_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone(wire.Problem):
        status, title, slug = 410, "Gone", "gone"

    monkeypatch.setattr(wire, "Gone", Gone, raising=False)
    made = errors._counterparts()
    assert made[Gone].__name__ == "Gone" and made[Gone].status == 410
    assert made[Gone].__bases__ == (mbc.ProblemError,)
