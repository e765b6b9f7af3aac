"""A builder (arguments in, a ``Call`` out) as a method of a client or of one of its resources:
the same signature (a ``ParamSpec``, so type checkers and IDEs see it), sent through the
client's ``_call`` (retries, the consistency token, the typed errors)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from memorybank_client._calls import Call

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=Callable[..., Any])


class SyncCaller(ABC):
    """What sends a ``Call``: the client itself, or one of its resources."""

    @abstractmethod
    def _call(self, call: Call[T]) -> T: ...


class AsyncCaller(ABC):
    @abstractmethod
    async def _call(self, call: Call[T]) -> T: ...


class SyncResource(SyncCaller):
    """A group of a client's methods (``mb.twins``): calls go through the client."""

    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def _call(self, call: Call[T]) -> T:
        return self._client._call(call)


class AsyncResource(AsyncCaller):
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def _call(self, call: Call[T]) -> T:
        return await self._client._call(call)


def bind(build: Callable[P, Call[T]]) -> Callable[Concatenate[Any, P], T]:
    def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = self._call(build(*args, **kwargs))
        return result

    return _like(method, build)


def abind(build: Callable[P, Call[T]]) -> Callable[Concatenate[Any, P],
                                                   Coroutine[Any, Any, T]]:
    async def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await self._call(build(*args, **kwargs))
        return result

    return _like(method, build)


def _like(method: M, build: Callable[..., Any]) -> M:
    """``method`` named, documented and (for ``help()`` and ``inspect``) signed as ``build``."""
    sig = inspect.signature(build)
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__name__, method.__doc__ = build.__name__, build.__doc__
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[self, *sig.parameters.values()], return_annotation=inspect.Signature.empty)
    return method
