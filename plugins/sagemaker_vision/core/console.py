"""The parts of an AWS console URL that come from outside the link: checked or escaped, never trusted.

Pure: no Airflow, no AWS call. ``links/sagemaker.py`` builds its URLs with these.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# Commercial, China and GovCloud: the partitions BaseAwsLink knows a console domain for.
CONSOLE_DOMAINS = frozenset({"aws.amazon.com", "amazonaws.cn", "amazonaws-us-gov.com"})
REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")


def validate_region(region: Any) -> str:
    """``region`` if it looks like an AWS region (``eu-west-1``, ``us-gov-west-1``); ValueError otherwise."""
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise ValueError(f"{region!r} is not an AWS region")
    return region


def validate_console_domain(domain: Any) -> str:
    """``domain`` if it is the console domain of an AWS partition; ValueError otherwise."""
    if domain not in CONSOLE_DOMAINS:
        raise ValueError(f"{domain!r} is not an AWS console domain")
    return str(domain)


def console_escape(value: str) -> str:
    """A path or query value in the CloudWatch console's URL fragment: URL-encoded twice, ``%`` as ``$``.

    ``/aws/sagemaker/TrainingJobs`` becomes ``$252Faws$252Fsagemaker$252FTrainingJobs``, the form the
    console itself puts in its address bar (its own ``?`` and ``=`` are encoded once: ``$3F``, ``$3D``).
    """
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def path_quote(value: str) -> str:
    """A value as one URL path segment or fragment part: every reserved character percent-encoded."""
    return quote(value, safe="")
