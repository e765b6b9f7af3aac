"""Problem+json answers as exceptions, built from the server's error tree (``mbwire.errors``),
so callers catch at the level they care about. Each public ``Problem`` class of mbwire has its
counterpart here, of the same name, status and problem ``type``, under the counterpart of its
parent; a class the server adds appears here without an edit. Today::

    ProblemError                 any answer >= 400 (status, type, title, detail, request_id, body)
    ├── BadRequest               400
    ├── Unauthorized             401
    ├── Forbidden                403
    ├── NotFound                 404
    ├── MethodNotAllowed         405
    ├── Conflict                 409
    │   └── VersionConflict      409 version-conflict
    ├── PayloadTooLarge          413
    ├── UnsupportedMediaType     415
    ├── Unprocessable            422
    ├── RateLimited              429 (retry_after)
    ├── Unavailable              503 (retry_after)
    │   ├── ReplicaBehind        503 replica-behind
    │   └── UpstreamUnavailable  503 upstream-unavailable
    ├── Unimplemented            501
    └── UpstreamTimeout          504

An answer maps by its problem ``type`` when the status agrees, else by status to the first
class of that status (``Unavailable`` for a bare 503), else to ``ProblemError``. Connection
failures that outlast the retries surface as httpx's own ``httpx.TransportError``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import msgspec

from mbwire import errors as wire
from mbwire.errors import PROBLEM_BASE, Problem


class ProblemError(Exception):
    """An error answer. Class attributes come from the mbwire class it stands for (``problem``);
    instance attributes from the answer itself."""

    problem: ClassVar[type[Problem]] = Problem
    status: int = Problem.status
    type_uri: ClassVar[str] = PROBLEM_BASE + Problem.slug

    def __init__(self, status: int, body: dict[str, Any], *, retry_after: float | None = None,
                 ) -> None:
        self.status = status
        self.body = body
        self.type: str = str(body.get("type", "about:blank"))
        self.title: str = str(body.get("title", ""))
        self.detail: str = str(body.get("detail", self.title))
        self.request_id: str | None = body.get("request_id")
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}")


def _counterparts() -> dict[type[Problem], type[ProblemError]]:
    """One SDK class per public Problem class of mbwire, parents before children."""
    made: dict[type[Problem], type[ProblemError]] = {Problem: ProblemError}
    public = [obj for name, obj in vars(wire).items() if not name.startswith("_")
              and isinstance(obj, type) and issubclass(obj, Problem)]
    for cls in sorted(public, key=lambda c: len(c.__mro__)):
        if cls in made:
            continue
        parent = next(base for base in cls.__mro__[1:] if base in made)  # skips _Retryable
        made[cls] = type(cls.__name__, (made[parent],), {
            "__module__": __name__, "__qualname__": cls.__name__, "__doc__": cls.__doc__,
            "problem": cls, "status": cls.status, "type_uri": PROBLEM_BASE + cls.slug})
    return made


COUNTERPARTS = _counterparts()
_BY_TYPE = {sdk.type_uri: sdk for sdk in COUNTERPARTS.values()}
_BY_STATUS: dict[int, type[ProblemError]] = {}
for _sdk in COUNTERPARTS.values():  # parents first: a status maps to its shallowest class
    _BY_STATUS.setdefault(_sdk.status, _sdk)
globals().update({sdk.__name__: sdk for sdk in COUNTERPARTS.values()})
__all__ = ["COUNTERPARTS", "exception_class", "from_response", "retry_after",
           *(sdk.__name__ for sdk in COUNTERPARTS.values())]

if TYPE_CHECKING:  # what the checker knows of the made classes: each is a ProblemError
    BadRequest = ProblemError
    Conflict = ProblemError
    Forbidden = ProblemError
    NotFound = ProblemError
    PayloadTooLarge = ProblemError
    RateLimited = ProblemError
    ReplicaBehind = ProblemError
    Unauthorized = ProblemError
    Unavailable = ProblemError
    Unprocessable = ProblemError
    UnsupportedMediaType = ProblemError
    UpstreamTimeout = ProblemError

    def __getattr__(name: str) -> type[ProblemError]:  # a class mbwire adds later
        raise AttributeError(name)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the service sends delta-seconds), None when absent or unreadable."""
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def exception_class(status: int, problem_type: str) -> type[ProblemError]:
    """The class for an answer: by problem ``type`` when its status agrees, else by status."""
    by_type = _BY_TYPE.get(problem_type)
    if by_type is not None and by_type.status == status:
        return by_type
    return _BY_STATUS.get(status, ProblemError)


def from_response(response: httpx.Response) -> ProblemError:
    """The exception for an error answer; a body that is not problem+json (a proxy's HTML page)
    still maps by status, with a synthesised body."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        body = {"type": "about:blank", "title": response.reason_phrase,
                "status": response.status_code, "detail": response.text[:500]}
    if "request_id" not in body and "x-request-id" in response.headers:
        body["request_id"] = response.headers["x-request-id"]
    cls = exception_class(response.status_code, str(body.get("type", "")))
    return cls(response.status_code, body, retry_after=retry_after(response))
