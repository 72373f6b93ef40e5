"""S3 rules moto 5.2.5 does not enforce: ETags that are not MD5s, and SSE-C.

Installed through ``patches.PATCHES``; like every patch there, each wrapper acts only on requests
the emulator's server is handling (``patching._on()``), so ``mock_aws`` users get stock moto.

What AWS does, and this module makes the emulator do:

* **ETags.** botocore's ``s3`` model, ``Object.ETag``: objects created by PUT, POST or Copy and
  encrypted with SSE-S3 or not at all have ETags that are the MD5 of their data; objects
  encrypted with **SSE-C or SSE-KMS** have ETags that are **not** an MD5 digest; objects created
  by multipart upload are never an MD5, whatever the encryption. Moto 5.2.5 already gives
  multipart objects ``md5-of-part-md5s-N`` (not an MD5 of the data), but gives SSE-KMS objects the
  MD5 of their data and knows nothing of SSE-C. Here an SSE-KMS or SSE-C object gets a fresh
  random ETag on every write (its ``-N`` suffix kept for multipart), the strictest reading of
  "not an MD5": a client can compare it with nothing but the ETag of the same write.
* **SSE-C** (S3 user guide, "Using server-side encryption with customer-provided keys (SSE-C)"
  and "Specifying server-side encryption with customer-provided keys"): a write with SSE-C
  headers must send all three (algorithm ``AES256``, a base64 256-bit key, its base64 MD5),
  else ``400 InvalidArgument``. Every GET and HEAD of an SSE-C object must send the same key
  (``400 InvalidRequest`` without it, ``403 AccessDenied`` with another), a copy from one must
  send it as ``x-amz-copy-source-server-side-encryption-customer-*``, and each UploadPart of an
  SSE-C multipart upload must repeat it. SSE-C headers on a GET or HEAD of an object that is not
  SSE-C are refused with ``400 InvalidRequest``. Responses echo the algorithm and key MD5.
* **SSE-C is blocked on new buckets** ("Blocking or unblocking SSE-C for a general purpose
  bucket": since April 2026 new general purpose buckets block SSE-C writes, rejected with
  ``403 AccessDenied``, until the bucket's default encryption sets
  ``BlockedEncryptionTypes: {EncryptionType: [NONE]}``).
* **Key names** ("Naming Amazon S3 objects", ``object-keys.html``): a key is at most 1,024 bytes
  of UTF-8, prefix included. Moto takes any length; here a longer key gets ``400 KeyTooLongError``
  (S3 API Reference, "Error responses") on every object request.
* **In-progress multipart uploads are listed as AWS lists them** (botocore ``s3`` model,
  ``ListMultipartUploads``): only keys under ``prefix``, sorted by key and then by initiation time,
  at most ``max-uploads`` (default and maximum 1,000) per response with ``IsTruncated``,
  ``NextKeyMarker`` and ``NextUploadIdMarker`` for the next page, and each upload's real
  ``Initiated`` time (moto 5.2.5 reports every upload as initiated on 2010-11-10 and never pages).
* **Multipart checksums** ("Checking object integrity"; botocore ``CopyPartResult``,
  ``CompletedPart``): an UploadPartCopy into an upload created with a checksum algorithm answers
  with the part's checksum (moto sends none, so a managed copy could not complete on AWS's terms);
  CompleteMultipartUpload of a composite-checksum upload must list every part's checksum, else
  ``400 InvalidRequest`` (AWS's message, quoted in boto/s3transfer#241); HeadObject with
  ``ChecksumMode`` reports a composite checksum as ``<base64>-<parts>`` with
  ``x-amz-checksum-type``, as GetObject does (moto's HEAD sent it bare, as if of the whole data).
* **Server-side copies keep a readable checksum.** Moto copies a multipart source's composite
  checksum value onto the single-part copy without its type, so a GET with checksum validation
  fails on the copy (issue 9, item 14). A copy here gets the full-object checksum of its data.
* **A missing key is 403 AccessDenied, not 404** (S3 API Reference, GetObject / HeadObject,
  "Permissions": 404 only with ``s3:ListBucket`` on the bucket). The project's role has ListBucket
  only under an ``s3:prefix`` condition, which a GET/HEAD does not carry, so GET and HEAD of a
  missing key answer 403 (HEAD without a body). ``POST /_emulator/config {"missing_key_status": 404}``
  (``Control.set_missing_key_status``) models a principal with full ListBucket; reset restores 403.
  The package tells "missing" from "denied" with ``sagemaker_vision.hooks.s3.key_missing`` (a ListObjectsV2 of
  the key).

Not enforced (the emulator is plain HTTP): AWS refuses SSE-C over HTTP altogether.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import escape

from moto.core.responses import ActionResult
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeKey, S3Backend
from moto.s3.responses import S3Response

from . import patching
from .extension import EXTENSION as EXT

SSE_C = "x-amz-server-side-encryption-customer-"
COPY_SSE_C = "x-amz-copy-source-server-side-encryption-customer-"
_INITIATED = "_local_aws_initiated"  # when CreateMultipartUpload made a FakeMultipart
MAX_UPLOADS = 1000  # ListMultipartUploads: at most, and by default, 1,000 uploads per response
_ATTR = "_local_aws_sse_c"  # base64 key MD5 on a FakeKey or FakeMultipart written with SSE-C
MAX_KEY_BYTES = 1024
_SUB_RESOURCES = ("acl", "tagging", "legal-hold", "retention", "attributes", "restore", "select")
_state = threading.local()


class _Error(S3ClientError):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(code, message)
        self.code, self.message, self.status = code, message, status


def _invalid_argument(message: str) -> _Error:
    return _Error("InvalidArgument", message, 400)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for k in headers.keys():
            if k.lower() == name:
                return headers[k]
    return value


def customer_key(headers: Any, prefix: str = SSE_C) -> str | None:
    """The base64 key MD5 of a request's SSE-C headers, or None when it sends none; checks all three."""
    alg, key, md5 = (_header(headers, prefix + p) for p in ("algorithm", "key", "key-md5"))
    if alg is None and key is None and md5 is None:
        return None
    if alg is None or key is None or md5 is None:
        raise _invalid_argument(f"Requests specifying Server Side Encryption with Customer provided keys must "
                                f"provide all of {prefix}algorithm, {prefix}key and {prefix}key-MD5.")
    if alg != "AES256":
        raise _invalid_argument(f"The encryption method specified is not supported ({prefix}algorithm: {alg!r}).")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise _invalid_argument("The secret key was invalid for the specified algorithm.")
    if base64.b64encode(hashlib.md5(raw).digest()).decode() != md5:
        raise _invalid_argument("The calculated MD5 hash of the key did not match the hash that was provided.")
    return md5


def _check_read(obj: Any, given: str | None, what: str) -> None:
    stored = getattr(obj, _ATTR, None)
    if stored is None:
        if given is not None:
            raise _Error("InvalidRequest", f"The encryption parameters are not applicable to this object ({what}).",
                         400)
        return
    if given is None:
        raise _Error("InvalidRequest", f"The object was stored using a form of Server Side Encryption. The correct "
                     f"parameters must be provided to retrieve the object ({what}).", 400)
    if given != stored:
        raise _Error("AccessDenied", f"Access Denied: the SSE-C key does not match the one {what} was written with.",
                     403)


def _check_not_blocked(backend: S3Backend, bucket_name: str) -> None:
    try:
        rule = (backend.get_bucket(bucket_name).encryption or {}).get("Rule") or {}
    except S3ClientError:
        return  # moto's own NoSuchBucket follows
    blocked = (rule.get("BlockedEncryptionTypes") or {}).get("EncryptionType", "SSE-C")
    types = blocked if isinstance(blocked, list) else [blocked]
    if types != ["NONE"]:
        raise _Error("AccessDenied", f"SSE-C writes are blocked for bucket {bucket_name!r}: new general purpose "
                     "buckets block SSE-C until PutBucketEncryption sets BlockedEncryptionTypes "
                     "EncryptionType [NONE].", 403)


def _copy_source(headers: Any) -> tuple[str, str, str | None] | None:
    raw = _header(headers, "x-amz-copy-source")
    if not raw:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    parsed = urlparse(raw)
    bucket, _, key = unquote(parsed.path).lstrip("/").partition("/")
    return bucket, key, parse_qs(parsed.query).get("versionId", [None])[0]


def _with_headers(response: Any, md5: str | None) -> Any:
    if md5 is None or not (isinstance(response, tuple) and len(response) == 3 and isinstance(response[1], dict)):
        return response
    status, headers, body = response
    headers = {**headers, SSE_C + "algorithm": "AES256", SSE_C + "key-MD5": md5}
    return status, headers, body


def _key_response(self: S3Response, request: Any, full_url: str) -> Any:
    original = patching._orig(S3Response, "_key_response")
    if not patching._on():
        return original(self, request, full_url)
    try:
        return _checked_key_response(self, original, request, full_url)
    except _Error as exc:  # moto would send every unknown code as 400; AccessDenied is 403
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{exc.code}</Code>'
                f"<Message>{escape(exc.message)}</Message></Error>")
        return exc.status, {"Content-Type": "application/xml"}, body


def _checked_key_response(self: S3Response, original: Any, request: Any, full_url: str) -> Any:
    method = request.method
    query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
    headers = request.headers
    bucket_name = self.parse_bucket_name_from_url(request, full_url)
    key_name = self.parse_key_name()
    if len(key_name.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _Error("KeyTooLongError", f"Your key is too long: {len(key_name.encode('utf-8', 'surrogatepass'))} "
                     f"bytes; the maximum is {MAX_KEY_BYTES} bytes of UTF-8.", 400)
    if method in ("GET", "HEAD", "PUT", "POST") and not any(q in query for q in _SUB_RESOURCES):
        given = customer_key(headers)
        dest = given
        obj: Any = None
        if method in ("GET", "HEAD") and "uploadId" not in query:
            try:
                obj = self.backend.get_object(bucket_name, key_name,
                                              version_id=(query.get("versionId") or [""])[0] or None)
            except S3ClientError:
                obj = None
            if obj is not None:
                _check_read(obj, given, f"s3://{bucket_name}/{key_name}")
                dest = getattr(obj, _ATTR, None)
            elif _refuse_missing(self.backend, bucket_name, query):
                if method == "HEAD":  # a HEAD error has no body: botocore reports the code "403"
                    return 403, {}, ""
                raise _Error("AccessDenied", "Access Denied", 403)
        elif method == "PUT":
            source = _copy_source(headers)
            if source is not None:
                try:
                    src = self.backend.get_object(source[0], source[1], version_id=source[2])
                except S3ClientError:
                    src = None
                if src is not None:
                    _check_read(src, customer_key(headers, COPY_SSE_C), f"copy source s3://{source[0]}/{source[1]}")
            if "uploadId" in query:  # UploadPart / UploadPartCopy: the upload's key, every part
                upload = _multipart(self.backend, bucket_name, query["uploadId"][0])
                expected = getattr(upload, _ATTR, None) if upload is not None else None
                if upload is not None and expected != given:
                    raise _Error("InvalidRequest", "The multipart upload was initiated with "
                                 f"{'SSE-C' if expected else 'no SSE-C'}; every UploadPart must send the same "
                                 "customer key headers.", 400)
            elif given is not None:
                _check_not_blocked(self.backend, bucket_name)
        elif method == "POST":
            if "uploads" in query and given is not None:
                _check_not_blocked(self.backend, bucket_name)
            if "uploadId" in query:  # CompleteMultipartUpload: the object inherits the upload's key
                upload = _multipart(self.backend, bucket_name, query["uploadId"][0])
                dest = getattr(upload, _ATTR, None) if upload is not None else None
                _check_part_checksums(self.backend, bucket_name, query["uploadId"][0], self.body)
        _state.dest = dest if method in ("PUT", "POST") else None
        _state.copy = method == "PUT" and "uploadId" not in query and _copy_source(headers) is not None
        try:
            response = original(self, request, full_url)
        finally:
            _state.dest = None
            _state.copy = False
        if method == "POST" and "uploads" in query and given is not None:
            _mark_new_upload(self.backend, bucket_name, response, given)
        if method == "HEAD" and "partNumber" not in query and _header(headers, "x-amz-checksum-mode") == "ENABLED":
            response = _qualified_checksum(response, obj)
        if method == "PUT" and "uploadId" in query and _copy_source(headers) is not None:
            response = _part_copy_checksum(self.backend, bucket_name, query, response)
        return _with_headers(response, dest)
        return _with_headers(response, dest)
    return original(self, request, full_url)


def _refuse_missing(backend: S3Backend, bucket_name: str, query: dict[str, Any]) -> bool:
    """Whether GET/HEAD of a key that is not there answers 403 AccessDenied rather than 404.

    S3 API Reference, GetObject and HeadObject, "Permissions": a missing key is 404 only for a
    principal with ``s3:ListBucket`` on the bucket, else 403. A GET/HEAD carries no ``s3:prefix``,
    so the project's prefix-conditioned ListBucket does not count: 403, unless the control API
    (``missing_key_status``) models a principal with full ListBucket. A missing bucket stays
    moto's 404 NoSuchBucket; a request for a version id keeps moto's answer.
    """
    if EXT.missing_key_status != 403 or (query.get("versionId") or [None])[0] is not None:
        return False
    try:
        backend.get_bucket(bucket_name)
    except S3ClientError:
        return False
    return True


def _upload_algorithm(upload: Any) -> tuple[str | None, str]:
    """(checksum algorithm, checksum type) an upload was created with; CRC64NVME is full-object only."""
    algorithm = (upload.metadata.get("x-amz-checksum-algorithm") or "").upper() or None
    default = "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    return algorithm, (upload.metadata.get("x-amz-checksum-type") or default).upper()


def _part_copy_checksum(backend: S3Backend, bucket_name: str, query: dict[str, Any], response: Any) -> Any:
    """UploadPartCopy into an upload with a checksum algorithm answers with the copied part's checksum."""
    upload = _multipart(backend, bucket_name, query["uploadId"][0])
    algorithm = _upload_algorithm(upload)[0] if upload is not None else None
    if not (algorithm and isinstance(response, tuple) and len(response) == 3):
        return response
    from moto.s3.utils import compute_checksum

    try:
        part = upload.parts[int(query.get("partNumber", ["0"])[0])]
    except (KeyError, ValueError):
        return response
    status, headers, body = response
    text = body.decode() if isinstance(body, bytes) else str(body)
    if "</CopyPartResult>" not in text:
        return response
    value = compute_checksum(part.value, algorithm).decode()
    part.checksum_value, part.checksum_algorithm = value, algorithm
    text = text.replace("</CopyPartResult>", f"<Checksum{algorithm}>{value}</Checksum{algorithm}></CopyPartResult>")
    headers = {**headers, "content-length": str(len(text.encode()))}
    return status, headers, text


def _check_part_checksums(backend: S3Backend, bucket_name: str, upload_id: str, body: Any) -> None:
    """CompleteMultipartUpload of a composite-checksum upload must give each part's checksum."""
    upload = _multipart(backend, bucket_name, upload_id)
    if upload is None:
        return  # moto's own NoSuchUpload follows
    algorithm, kind = _upload_algorithm(upload)
    if not algorithm or kind != "COMPOSITE":
        return
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    for part in re.findall(r"<Part>(.*?)</Part>", text, flags=re.S):
        number = re.search(r"<PartNumber>\s*(\d+)\s*</PartNumber>", part)
        if f"<Checksum{algorithm}>" not in part:
            raise _Error("InvalidRequest", f"The upload was created using a {algorithm.lower()} checksum. The "
                         "complete request must include the checksum for each part. It was missing for part "
                         f"{number.group(1) if number else '?'} in the request.", 400)


def _qualified_checksum(response: Any, obj: Any) -> Any:
    """HeadObject says what GetObject says: a composite checksum as ``<base64>-<parts>`` with its type.

    Moto's HEAD sends a multipart object's checksum-of-checksums bare and without
    ``x-amz-checksum-type``, so it reads as the checksum of the whole data, which it is not.
    """
    algorithm = getattr(obj, "checksum_algorithm", None)
    if not (algorithm and obj.checksum_value and isinstance(response, tuple) and len(response) == 3
            and isinstance(response[1], dict)):
        return response
    status, headers, body = response
    value = obj.checksum_value
    if obj.checksum_type == "COMPOSITE" and obj.checksum_parts:
        value = f"{value}-{obj.checksum_parts}"
    headers = {k: v for k, v in headers.items() if k.lower() != f"x-amz-checksum-{algorithm.lower()}"}
    headers[f"x-amz-checksum-{algorithm.lower()}"] = value
    if obj.checksum_type:
        headers["x-amz-checksum-type"] = obj.checksum_type
    return status, headers, body


def _multipart(backend: S3Backend, bucket_name: str, upload_id: str) -> Any:
    try:
        return backend.get_bucket(bucket_name).multiparts.get(upload_id)
    except S3ClientError:
        return None


def _mark_new_upload(backend: S3Backend, bucket_name: str, response: Any, md5: str) -> None:
    body = response[2] if isinstance(response, tuple) and len(response) == 3 else response
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    match = re.search(r"<UploadId>([^<]+)</UploadId>", body if isinstance(body, str) else "")
    upload = _multipart(backend, bucket_name, match.group(1)) if match else None
    if upload is not None:
        setattr(upload, _ATTR, md5)


def _put_object(self: S3Backend, bucket_name: str, key_name: str, value: bytes, *args: Any, **kwargs: Any) -> FakeKey:
    key = patching._orig(S3Backend, "put_object")(self, bucket_name, key_name, value, *args, **kwargs)
    if not patching._on():
        return key
    sse_c = getattr(_state, "dest", None)
    if sse_c is not None:
        setattr(key, _ATTR, sse_c)
    if sse_c is not None or str(key.encryption or "").startswith("aws:kms"):
        given = kwargs.get("etag") or ""
        suffix = given[given.rfind("-"):].rstrip('"') if "-" in given else ""
        key._etag = secrets.token_hex(16) + suffix
    return key


def _copy_object(self: S3Backend, src_key: FakeKey, dest_bucket_name: str, dest_key_name: str, *args: Any,
                 **kwargs: Any) -> None:
    patching._orig(S3Backend, "copy_object")(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
    if not patching._on():
        return
    new = self.get_object(dest_bucket_name, dest_key_name)
    if new is not None and new.checksum_value and new.checksum_algorithm:
        # One CopyObject makes a single-part object: its checksum is that of its whole data.
        from moto.s3.utils import compute_checksum

        new.checksum_value = compute_checksum(new.value, new.checksum_algorithm.upper()).decode()
        new.checksum_type = "FULL_OBJECT"
        new.checksum_parts = None


def _create_multipart_upload(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
    upload = patching._orig(S3Backend, "create_multipart_upload")(self, *args, **kwargs)
    setattr(upload, _INITIATED, datetime.now(UTC))  # an attribute only: stock moto ignores it
    return upload


def _initiated(upload: Any) -> datetime:
    return getattr(upload, _INITIATED, None) or datetime.fromtimestamp(0, UTC)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _list_multipart_uploads(self: S3Response) -> Any:
    """ListMultipartUploads with prefix, AWS's order, real ``Initiated`` and pages of max-uploads."""
    original = patching._orig(S3Response, "list_multipart_uploads")
    query = self.querystring
    if not patching._on() or "delimiter" in query:  # the package never groups uploads by delimiter
        return original(self)

    def first(name: str) -> str:
        value = (query.get(name) or [""])[0]
        return value.decode() if isinstance(value, bytes) else value

    prefix, key_marker, id_marker = first("prefix"), first("key-marker"), first("upload-id-marker")
    try:
        limit = min(int(first("max-uploads") or MAX_UPLOADS), MAX_UPLOADS)
    except ValueError:
        raise _invalid_argument("max-uploads must be an integer from 1 to 1,000.") from None
    if limit < 1:
        raise _invalid_argument("max-uploads must be an integer from 1 to 1,000.")
    uploads = sorted((u for u in self.backend.list_multipart_uploads(self.bucket_name).values()
                      if u.key_name.startswith(prefix)), key=lambda u: (u.key_name, _initiated(u)))
    if key_marker:
        after_id = [u for u in uploads if u.key_name == key_marker]
        ids = [u.id for u in after_id]
        rest = after_id[ids.index(id_marker) + 1:] if id_marker and id_marker in ids else []
        uploads = rest + [u for u in uploads if u.key_name > key_marker]
    page, truncated = uploads[:limit], len(uploads) > limit
    owner = {"ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", "DisplayName": "webfile"}
    result: dict[str, Any] = {
        "Bucket": self.bucket_name, "KeyMarker": key_marker, "UploadIdMarker": id_marker, "Prefix": prefix,
        "MaxUploads": limit, "IsTruncated": truncated,
        "Uploads": [{
            "Key": u.key_name, "UploadId": u.id, "Initiator": owner, "Owner": owner, "StorageClass": "STANDARD",
            "Initiated": _iso(_initiated(u)),
            "ChecksumAlgorithm": u.metadata.get("x-amz-checksum-algorithm"),
            "ChecksumType": u.metadata.get("x-amz-checksum-type"),
        } for u in page],
    }
    if truncated:
        result["NextKeyMarker"], result["NextUploadIdMarker"] = page[-1].key_name, page[-1].id
    self.data["Action"] = "ListMultipartUploads"
    return self.serialized(ActionResult(result))


PATCHES: list[tuple[type, str, Any]] = [
    (S3Response, "_key_response", _key_response),
    (S3Backend, "put_object", _put_object),
    (S3Backend, "copy_object", _copy_object),
    (S3Backend, "create_multipart_upload", _create_multipart_upload),
    (S3Response, "list_multipart_uploads", _list_multipart_uploads),
]
