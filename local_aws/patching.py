"""How the emulator patches moto: saved originals, the "serving" flag, install and uninstall.

The mechanism is separate from the patch lists (``patches``, ``s3_rules``, ``s3_conditional``) so
those modules import it without importing each other.

The patches act only on requests the emulator's server is handling (a thread-local flag set by
the middleware). Anything else in the process that drives moto -- e.g. a unit test using
``mock_aws`` while a session emulator runs -- gets moto's stock behaviour.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from moto.sagemaker.models import SageMakerModelBackend

Patch = tuple[type, str, Any]

_MISSING = object()
_lock = threading.Lock()
_saved: dict[tuple[type, str], Any] = {}


_local = threading.local()


def _orig(owner: type, name: str) -> Any:
    return _saved[(owner, name)]


@contextmanager
def serving() -> Iterator[None]:
    """Mark the current thread as handling an emulator request."""
    previous = getattr(_local, "on", False)
    _local.on = True
    try:
        yield
    finally:
        _local.on = previous


def _on() -> bool:
    return getattr(_local, "on", False)


def _only_when_serving(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Backend wrapper that defers to moto's original outside emulator requests."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: SageMakerModelBackend, *args: Any, **kwargs: Any) -> Any:
            if not _on():
                return _orig(SageMakerModelBackend, name)(self, *args, **kwargs)
            return fn(self, *args, **kwargs)

        return wrapper

    return decorate


def installed() -> bool:
    """Whether the patches are in place."""
    return bool(_saved)


def install(patches: Sequence[Patch]) -> None:
    """Apply every patch; a second call is a no-op."""
    with _lock:
        if _saved:
            return
        for owner, name, replacement in patches:
            _saved[(owner, name)] = owner.__dict__.get(name, _MISSING)
            setattr(owner, name, replacement)


def uninstall() -> None:
    """Restore moto exactly as it was (methods we added are removed again)."""
    with _lock:
        for (owner, name), original in _saved.items():
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        _saved.clear()
