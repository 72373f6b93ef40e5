"""The one definition of each validator and allowed-value set the pipeline checks its input with.

Pure: no Airflow, no AWS. Every check raises :class:`ConfigError`, whose message starts with the
param (field) name, so the UI log names what to fix. The param specs (``core/params.py``) and
``PipelineConfig`` (``core/config.py``) both build on these, and so do the stages that check a
value of their own (a URI, a bucket, a resource name).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# plugins/sagemaker_vision/core/validate.py -> the project root holds include/.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
INCLUDE_DIR = Path(os.environ.get("SAGEMAKER_VISION_INCLUDE_DIR", PROJECT_ROOT / "include"))

# AWS's rule for SageMaker resource names (jobs, models, endpoint configs, endpoints).
SAGEMAKER_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
SAGEMAKER_NAME_RE = re.compile(SAGEMAKER_NAME_PATTERN)
SAGEMAKER_NAME_MAX = 63
# S3 user guide, "Naming Amazon S3 objects": a key is at most 1,024 bytes of UTF-8 (no model shape).
# The one definition in the package (s3_sync and labels import it; the emulator keeps its own).
S3_KEY_MAX_BYTES = 1024
# Characters no key the pipeline writes or a manifest refers to may hold (s3_sync skips such files,
# the manifest converters refuse such image paths): C0 controls and DEL (ASCII 0-31 and 127, which
# that page lists as needing special handling, and XML 1.0 cannot carry most of them in a listing),
# C1 controls, and the Unicode line and paragraph separators. None can reach training: SageMaker's
# S3Uri pattern is a Java regex whose "." matches no line terminator (\n \r U+0085 U+2028 U+2029),
# so such a key is no valid source-ref in a manifest.
UNSAFE_KEY_CHAR_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# S3 bucket naming rules (general purpose buckets), minus the legacy dotted forms.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_LIKE_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# The same rule as one JSON-schema pattern (ECMA and Python regex alike), for the trigger form:
# no "..", not an IPv4 address, then BUCKET_RE.
BUCKET_PATTERN = r"^(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# IAM role ARNs: role names (and paths) are ASCII letters, digits and +=,.@_-.
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-/]+$"
ROLE_ARN_RE = re.compile(ROLE_ARN_PATTERN)
# SageMaker work team ARNs, as Ground Truth takes them (the kind tells the public workforce apart).
WORKTEAM_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"workteam/(?P<kind>private-crowd|vendor-crowd|public-crowd)/(?P<name>[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62})$"
)
INSTANCE_TYPE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")

# ---- the one definition of each allowed-value set --------------------------------------------
LABEL_BACKENDS = ("import", "ground_truth", "label_studio")
# What validate_images does with a corrupt, oversized or misnamed image (the first is the default).
BAD_IMAGE_POLICIES = ("fail", "skip")
# Every endpoint type the pipeline deploys; REALTIME_ENDPOINT_TYPES are those InvokeEndpoint serves
# (deployment guardrails and the A/B split are defined for them; async has its own path).
ENDPOINT_TYPES = ("serverless", "provisioned", "async")
REALTIME_ENDPOINT_TYPES = ("serverless", "provisioned")
DEPLOYMENT_POLICIES = ("all_at_once", "canary", "linear")
# Serverless inference: memory 1024-6144 MB in 1 GB steps (ServerlessConfig.MemorySizeInMB),
# concurrency 1-200 per endpoint.
SERVERLESS_MEMORY_MB: tuple[int, ...] = tuple(range(1024, 6145, 1024))
SERVERLESS_MAX_CONCURRENCY = (1, 200)
# HumanTaskConfig.NumberOfHumanWorkersPerDataObject is 1..9.
MAX_WORKERS_PER_OBJECT = 9
# Why an empty or public-crowd gt_workteam_arn is refused (config and the Ground Truth builders).
MTURK_CLOSED = (
    "the public workforce (Amazon Mechanical Turk) closed on 2026-09-30, and Ground Truth is closed "
    "to new customers. Give the ARN of a private or vendor work team your account already has "
    "(arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team>), or label with "
    "label_backend=label_studio"
)
# Bounding-box labeling (Ground Truth's template, and so the Label Studio config) allows 10 classes.
MAX_LABEL_CLASSES = 10


class ConfigError(ValueError):
    """A bad param. The message starts with the param (field) name, so the UI log shows it."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def validate_sagemaker_name(value: object, field_name: str) -> str:
    """Check a SageMaker resource name: <= 63 chars, alphanumerics and inner hyphens."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, "is required")
    if len(value) > SAGEMAKER_NAME_MAX:
        raise ConfigError(field_name, f"{value!r} is {len(value)} characters; SageMaker allows at most 63")
    if not SAGEMAKER_NAME_RE.match(value):
        raise ConfigError(
            field_name,
            f"{value!r} must match {SAGEMAKER_NAME_RE.pattern} (letters, digits and inner hyphens only)",
        )
    return value


def unsafe_key_character(text: str) -> str | None:
    """Why ``text`` (a key or part of one) holds a character S3 or a manifest cannot carry, or None."""
    bad = UNSAFE_KEY_CHAR_RE.search(text)
    if bad is None:
        return None
    return (f"contains the control character U+{ord(bad.group()):04X}, which a manifest's source-ref "
            "(SageMaker's S3Uri) cannot carry")


def s3_key_problem(key: str) -> str | None:
    """Why ``key`` is no key S3 or a manifest can carry (not UTF-8, over 1,024 bytes, a control
    character: :data:`UNSAFE_KEY_CHAR_RE`), or None when it is one."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a local name that is not UTF-8 (os.walk keeps its bytes as surrogates)
        return "is not valid UTF-8, and S3 keys are UTF-8"
    if size > S3_KEY_MAX_BYTES:
        return f"makes a {size}-byte key; S3 keys are at most {S3_KEY_MAX_BYTES} bytes (UTF-8)"
    return unsafe_key_character(key)


def validate_bucket(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not BUCKET_RE.match(value) or ".." in value or IP_LIKE_RE.match(value):
        raise ConfigError(
            field_name,
            f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit)",
        )
    return value


def parse_s3_uri(value: object, field_name: str, *, folder: bool = False) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key); the key may be empty. The one URI parser.

    The bucket must be a valid bucket name and the key may hold no empty segment (``//``).
    ``folder=True`` reads the key as a folder prefix: leading slashes dropped, a trailing "/" added
    (so ``s3://b/raw`` never matches ``s3://b/raw2/...``); an empty key stays empty.
    """
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ConfigError(field_name, f"{value!r} is not an s3:// URI")
    bucket, _, key = value[5:].partition("/")
    validate_bucket(bucket, field_name)
    if folder:
        key = key.lstrip("/")
        if key and not key.endswith("/"):
            key += "/"
    if "//" in key:
        raise ConfigError(field_name, f"{value!r} has an empty path segment ('//')")
    return bucket, key


def validate_prefix(value: str | None, field_name: str) -> str:
    """An S3 key prefix inside the project bucket, without leading or trailing slashes."""
    value = (value or "").strip("/")
    if not value or "//" in value or any(c in value for c in "\\{}^%`[]\"<>~#|"):
        raise ConfigError(field_name, f"{value!r} is not a usable S3 key prefix")
    return value


def validate_instance_type(value: object, field_name: str) -> str:
    """An ``ml.<family>.<size>`` SageMaker instance type (not checked against a price or a GPU list)."""
    if not isinstance(value, str) or not INSTANCE_TYPE_RE.match(value):
        raise ConfigError(field_name, f"{value!r} is not a SageMaker instance type such as ml.g4dn.xlarge")
    return value


def validate_role_arn(value: object, field_name: str = "role_arn") -> str:
    role_arn = value if isinstance(value, str) else ""
    if not ROLE_ARN_RE.match(role_arn):
        raise ConfigError(
            field_name,
            f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>); "
            "set the SageMaker execution role",
        )
    return role_arn


def resolve_local_path(value: str) -> Path:
    """Relative local paths are relative to the project root (where include/ lives)."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


# Local image_source folders must lie inside one of these: the project's include/ and the folders
# named (absolute paths, os.pathsep-separated) by this environment variable, set on every worker.
IMAGE_ROOTS_ENV = "SAGEMAKER_VISION_IMAGE_ROOTS"


def image_roots() -> tuple[str, ...]:
    """The real paths (symlinks resolved) a local ``image_source`` may lie in: include/ first."""
    roots = [str(INCLUDE_DIR)]
    for entry in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep):
        entry = entry.strip()
        if entry and not os.path.isabs(entry):
            raise ConfigError("image_source", f"${IMAGE_ROOTS_ENV} entry {entry!r} is not an absolute path")
        if entry:
            roots.append(entry)
    return tuple(dict.fromkeys(os.path.realpath(r) for r in roots))


def check_local_image_source(value: str) -> str:
    """Refuse a local ``image_source`` outside the allowed roots (``..`` never; symlinks resolved).

    Anyone who can trigger the DAG sets this param, so without the check any folder the worker can
    read (``/etc``, a home directory) could be copied into the bucket.
    """
    roots = image_roots()
    allowed = f"allowed roots: {', '.join(roots)} (add folders to ${IMAGE_ROOTS_ENV})"
    if "\0" in value:
        raise ConfigError("image_source", f"{value!r} contains a NUL character")
    if any(part == ".." for part in value.replace("\\", "/").split("/")):
        raise ConfigError("image_source", f"{value!r} may not contain '..' segments; {allowed}")
    real = os.path.realpath(resolve_local_path(value))
    if not any(os.path.commonpath([root, real]) == root for root in roots):
        raise ConfigError("image_source", f"{value!r} resolves to {real}, outside the {allowed}")
    return value
