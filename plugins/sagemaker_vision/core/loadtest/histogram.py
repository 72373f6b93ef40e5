"""Mergeable latency histograms for the fanned-out load test (HdrHistogram), and a step built on one.

Pure: no Airflow, no AWS call. Every worker records its successful requests' latencies in one
:class:`hdrh.histogram.HdrHistogram` per step and ships it in HdrHistogram's own wire format
(``encode()``: a compressed, base64 "histoblob"); the reduce adds them (``add``: bucket counts add
up, so the merge is exact -- the merged percentiles are those of ONE histogram that had recorded
every sample itself).

Range and precision, the same for every worker so any two histograms add bucket by bucket:
values are integer microseconds from :data:`LOWEST_US` (1 µs) to :data:`HIGHEST_US` (the
longest request timeout, 60 s), at :data:`SIGNIFICANT_DIGITS` (3) significant digits. Two
latencies are *equivalent* (share a bucket) when they differ by less than 1 part in 1,024 of
their magnitude (HdrHistogram rounds 3 digits up to 2,048 sub-buckets, half of them per
power of two): e.g. 50 ms is recorded in a bucket 32 µs wide (49.984-50.015 ms), 1 s in one
512 µs wide. A percentile is reported as the highest value equivalent to the sample at its
rank, so it reads at most 0.1 % (1/1,024) above the exact sample, never below it. A success
slower than :data:`HIGHEST_US` (possible only past the client timeout's grace) is recorded as
:data:`HIGHEST_US` and counted in ``clamped``.

Percentile rank: HdrHistogram's, ``count = round_half_up(p / 100 * total)`` (at least 1); the
in-process engines' :func:`~sagemaker_vision.core.loadtest.model.percentile` is nearest-rank on
exact samples (``ceil``). Both are reported as such; the merge test compares histogram with
histogram.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from sagemaker_vision.core.loadtest.model import MAX_REQUEST_TIMEOUT_S, StepResult

LOWEST_US = 1
HIGHEST_US = int(MAX_REQUEST_TIMEOUT_S * 1_000_000)
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0)


class HistogramError(ValueError):
    """An encoded histogram that cannot be read, or that does not have this package's range."""


# HdrHistogram's V2 wire format: an 8-byte header (cookie, length), then a zlib stream that
# inflates to a 40-byte payload header (cookie, payload length, normalizing offset, significant
# figures, lowest, highest, conversion ratio) and the counts, each a ZigZag LEB128 varint of at
# most 9 bytes. A histogram of our range inflates to at most wire_limits()[0] bytes and encodes
# to at most wire_limits()[1] characters: anything bigger is refused before hdrh inflates it
# (its zlib.decompress is unbounded: a small bomb could inflate to gigabytes).
_EXTERNAL_HEADER = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">IIIIqqd")


@functools.cache
def wire_limits() -> tuple[int, int]:
    """(most bytes a payload of our range inflates to, most characters its encoding takes)."""
    counts = new_histogram().counts_len
    payload = _PAYLOAD_HEADER.size + 9 * counts
    # zlib.h's deflateBound() for the default settings and the zlib wrapper, plus 1 KiB for other
    # zlib builds; base64 is 4/3. The largest real histogram encodes ~7% under this (its counts are
    # positive and its varints' continuation bits repeat, so zlib always shrinks them a little).
    compressed = payload + (payload >> 12) + (payload >> 14) + (payload >> 25) + 13 + 6 + 1024
    return payload, 4 * math.ceil((_EXTERNAL_HEADER.size + compressed) / 3)


def _check_wire(text: str, where: str) -> None:
    """Refuse an encoding too long, or one that inflates past ours or to another range, before hdrh allocates."""
    max_payload, max_chars = wire_limits()
    if len(text) > max_chars:
        raise HistogramError(f"{where}: {len(text)} characters, more than any histogram of this package's range "
                             f"encodes to ({max_chars})")
    try:
        raw = base64.b64decode(text, validate=True)
        inflater = zlib.decompressobj()
        payload = inflater.decompress(raw[_EXTERNAL_HEADER.size:], max_payload + 1)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise HistogramError(f"{where}: not an encoded HdrHistogram ({type(exc).__name__}: {exc})") from None
    if len(payload) > max_payload or inflater.unconsumed_tail:
        raise HistogramError(f"{where}: inflates to more than {max_payload} bytes, more than any histogram "
                             "of this package's range")
    if len(payload) < _PAYLOAD_HEADER.size:
        raise HistogramError(f"{where}: not an encoded HdrHistogram (its payload has no header)")
    _, _, _, digits, lowest, highest, _ = _PAYLOAD_HEADER.unpack_from(payload)
    if (lowest, highest, digits) != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        raise HistogramError(f"{where}: range {lowest}..{highest} µs at {digits} digits is not this package's "
                             f"{LOWEST_US}..{HIGHEST_US} µs at {SIGNIFICANT_DIGITS} digits; it cannot be merged")


def new_histogram() -> HdrHistogram:
    """An empty histogram with the package's range (1 µs .. 60 s) and precision (3 digits)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_us(latency_ms: float) -> int:
    """A latency in ms as the integer microseconds recorded (rounded, at least 1 µs)."""
    if not isinstance(latency_ms, int | float) or isinstance(latency_ms, bool) or not math.isfinite(latency_ms) \
            or latency_ms < 0:
        raise ValueError(f"a latency must be a finite number of ms >= 0, got {latency_ms!r}")
    return max(LOWEST_US, round(latency_ms * 1000))


def record_all(histogram: HdrHistogram, latencies_ms: Iterable[float]) -> int:
    """Record every latency (ms); returns how many were above the range and recorded as its top."""
    clamped = 0
    for latency in latencies_ms:
        value = to_us(latency)
        if value > HIGHEST_US:
            value, clamped = HIGHEST_US, clamped + 1
        if not histogram.record_value(value):  # cannot happen inside the range; never drop a sample silently
            raise HistogramError(f"could not record {value} µs")
    return clamped


def from_latencies(latencies_ms: Iterable[float]) -> tuple[HdrHistogram, int]:
    """A new histogram of ``latencies_ms`` and the count clamped to its top."""
    histogram = new_histogram()
    return histogram, record_all(histogram, latencies_ms)


def encode(histogram: HdrHistogram) -> str:
    """HdrHistogram's wire format (compressed, base64) as text for a JSON envelope."""
    return histogram.encode().decode("ascii")


def decode(text: Any, where: str = "histogram") -> HdrHistogram:
    """The histogram ``text`` encodes; :class:`HistogramError` naming ``where`` when it is not one of ours."""
    if not isinstance(text, str) or not text:
        raise HistogramError(f"{where}: must be a non-empty string (HdrHistogram's base64 encoding), "
                             f"got {type(text).__name__}")
    _check_wire(text, where)
    try:
        histogram = HdrHistogram.decode(text.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error, zlib.error, TypeError, ValueError) as exc:
        raise HistogramError(f"{where}: not an encoded HdrHistogram ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # hdrh's own HdrCookieException / HdrLengthException derive from Exception
        raise HistogramError(f"{where}: not an encoded HdrHistogram ({type(exc).__name__}: {exc})") from None
    return histogram


def merge(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram holding every count of ``histograms`` (exact: counts add bucket by bucket)."""
    total = new_histogram()
    for histogram in histograms:
        total.add(histogram)
    return total


def value_ms(histogram: HdrHistogram, p: float) -> float | None:
    """The ``p``-th percentile latency in ms (HdrHistogram's rank), or None when it holds nothing."""
    if not 0 < p <= 100:
        raise ValueError(f"p must be in (0, 100], got {p}")
    if histogram.get_total_count() == 0:
        return None
    return histogram.get_value_at_percentile(p) / 1000.0


def summary_ms(histogram: HdrHistogram) -> dict[str, float | None]:
    """p50/p90/p95/p99/max in ms (rounded to the µs), None for an empty histogram."""
    empty = histogram.get_total_count() == 0
    out: dict[str, float | None] = {f"p{p:g}_ms": value_ms(histogram, p) for p in PERCENTILES}
    out["max_ms"] = None if empty else histogram.get_max_value() / 1000.0
    return {k: None if v is None else round(v, 3) for k, v in out.items()}


@dataclass(frozen=True)
class HistogramStep(StepResult):
    """A :class:`StepResult` whose latencies are a histogram (the reduce's merged step), not samples.

    Every percentile, the max and the mean come from ``histogram``; ``latencies_ms`` stays empty.
    ``workers`` names how many workers' shares were merged into it.
    """

    histogram: HdrHistogram = field(default_factory=new_histogram, repr=False, compare=False)
    workers: int = 1
    clamped: int = 0

    def percentile_ms(self, p: float) -> float | None:
        return value_ms(self.histogram, p)

    @property
    def max_ms(self) -> float | None:
        return None if self.histogram.get_total_count() == 0 else self.histogram.get_max_value() / 1000.0

    @property
    def mean_ms(self) -> float | None:
        return None if self.histogram.get_total_count() == 0 else self.histogram.get_mean_value() / 1000.0

    @property
    def request_rate_rps(self) -> float:
        """All requests (successes and errors) per second of the step's wall time across workers."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "request_rate_rps": round(self.request_rate_rps, 3),
                "merged_workers": self.workers, "latency_over_range": self.clamped,
                "percentile_method": f"HdrHistogram, {SIGNIFICANT_DIGITS} significant digits (<= 0.1 % above)"}
