"""S3 conditional writes are atomic: moto 5.2.5 checks ``If-None-Match`` / ``If-Match`` and then writes, unlocked.

AWS: "If multiple conditional writes occur for the same object name, the first write operation to
finish succeeds" and the others fail with ``412 Precondition Failed`` (S3 User Guide, "How to
prevent object overwrites with conditional writes"; botocore ``PutObjectRequest.IfNoneMatch`` /
``IfMatch``, ``DeleteObjectRequest.IfMatch``). Moto enforces both headers on PutObject and
DeleteObject, but its check (``get_object``) and its write are separate steps of a threaded
server, so two writers that both check before either writes could both succeed. Here every
PutObject and DeleteObject of one key runs its check and its write under that key's lock (striped
over a fixed set of locks), so the condition holds at the moment of the write, as on AWS.

Installed through ``patches.PATCHES``; like every patch there it acts only on requests the
emulator's server is handling (``patching._on()``).
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

from moto.s3.responses import S3Response

from . import patching

_STRIPES = [threading.Lock() for _ in range(64)]


def key_lock(bucket: str, key: str) -> threading.Lock:
    """The lock every write of ``s3://bucket/key`` holds from its precondition check to its write."""
    return _STRIPES[zlib.crc32(f"{bucket}/{key}".encode()) % len(_STRIPES)]


def _locked(name: str) -> Any:
    def wrapper(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        original = patching._orig(S3Response, name)
        if not patching._on():
            return original(self, *args, **kwargs)
        with key_lock(self.bucket_name, self.parse_key_name()):
            return original(self, *args, **kwargs)

    wrapper.__name__ = name
    return wrapper


PATCHES: list[tuple[type, str, Any]] = [
    (S3Response, "put_object", _locked("put_object")),
    (S3Response, "delete_object", _locked("delete_object")),
]
