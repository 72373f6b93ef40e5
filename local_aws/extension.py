"""Process-wide state of the emulator's SageMaker extension, and the clock that drives it.

Moto answers every SageMaker call synchronously and finishes everything at once. The extension
gives jobs and endpoints a timeline instead: each run remembers when it started and is moved
forward (a) whenever a client reads it and (b) by a background ticker, so side effects such as
a labeling job's output manifest appear in S3 even if nobody polls. Both paths call the same
idempotent ``refresh`` functions under one lock.

Per-resource state lives on the moto backend instance (``backend._local_aws``), so a moto
reset, which rebuilds backends, drops it with the resources it describes.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends

if TYPE_CHECKING:
    from .answer_key import AnswerKey
    from .endpoints import EndpointRun
    from .labeling import LabelingJob
    from .training import TrainingRun

from .faults import FaultBook


@dataclass
class BackendState:
    """The extension's view of one (account, region) SageMaker backend."""

    training: dict[str, TrainingRun] = field(default_factory=dict)
    endpoints: dict[str, EndpointRun] = field(default_factory=dict)
    labeling: dict[str, LabelingJob] = field(default_factory=dict)


_STATE_ATTR = "_local_aws"


def state_of(backend: SageMakerModelBackend) -> BackendState:
    """The extension state attached to ``backend`` (created on first use)."""
    return backend.__dict__.setdefault(_STATE_ATTR, BackendState())


class Extension:
    """Settings, fault rules and scheduled side effects shared by all backends."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.transition_seconds = 2.0
        # Explicit emulated-seconds-per-real-second; None derives it from transition_seconds.
        self._time_scale: float | None = None
        # (kind, name_prefix, emulated seconds) set through the control API; the latest match wins.
        self.duration_rules: list[tuple[str, str, float]] = []
        self.answer_key: AnswerKey | None = None
        # (name_prefix, mAP) pairs set through the control API; the latest match wins.
        self.map_rules: list[tuple[str, float]] = []
        # What GET/HEAD of a missing key answers (local_aws/s3_rules.py): 403 models the project's
        # role (s3:ListBucket only under a prefix condition), 404 a principal with full ListBucket.
        self.missing_key_status = MISSING_KEY_STATUS
        self.counters: Counter[str] = Counter()
        self._tasks: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        # What a tick advances, in order; registered by ``patches.install`` (training, endpoints,
        # labeling), so this module needs none of them at run time.
        self.refreshers: list[Callable[[Extension, SageMakerModelBackend], None]] = []
        self._ticker: threading.Thread | None = None
        self._stop_ticker = threading.Event()

    # -- configuration -------------------------------------------------------------------
    def configure(self, transition_seconds: float, answer_key: AnswerKey) -> None:
        """Set the timeline length and the sample-data answer key."""
        if transition_seconds < 0:
            raise ValueError("transition_seconds must be >= 0")
        with self.lock:
            self.transition_seconds = float(transition_seconds)
            self.answer_key = answer_key

    def key(self) -> AnswerKey:
        """The loaded answer key (the emulator must be started)."""
        if self.answer_key is None:
            raise RuntimeError("local_aws extension used before Emulator.start()")
        return self.answer_key

    def clear(self) -> None:
        """Forget fault rules, mAP overrides, pending side effects and counters."""
        with self.lock:
            self.faults.clear()
            self.map_rules.clear()
            self.duration_rules.clear()
            self._time_scale = None
            self.missing_key_status = MISSING_KEY_STATUS
            self._tasks.clear()
            self.counters.clear()

    # -- time ---------------------------------------------------------------------------
    @staticmethod
    def now() -> float:
        """Monotonic real seconds; timelines never jump with the wall clock."""
        return time.monotonic()

    @property
    def time_scale(self) -> float:
        """Emulated AWS seconds per real second (inf: everything is instant).

        Resources last realistic *emulated* durations (a training job its hour, a labeling job
        its days); the clock compresses them. By default one ``transition_seconds`` of real time
        stands for ``REFERENCE_TRANSITION`` emulated seconds.
        """
        if self._time_scale is not None:
            return self._time_scale
        return REFERENCE_TRANSITION / self.transition_seconds if self.transition_seconds > 0 else float("inf")

    def set_time_scale(self, scale: float | None) -> None:
        """Fix the time scale (emulated s per real s), or None to derive it from transition_seconds."""
        if scale is not None and not scale > 0:
            raise ValueError("time_scale must be > 0")
        with self.lock:
            self._time_scale = None if scale is None else float(scale)

    def emulated_duration(self, kind: str, name: str, default: float) -> float:
        """Emulated seconds a ``kind`` resource called ``name`` lasts: an override, else ``default``."""
        with self.lock:
            for rule_kind, prefix, seconds in reversed(self.duration_rules):
                if rule_kind == kind and name.startswith(prefix):
                    return seconds
        return default

    def real_seconds(self, emulated: float) -> float:
        """Real seconds that ``emulated`` AWS seconds take at the current time scale."""
        scale = self.time_scale
        return 0.0 if scale == float("inf") else emulated / scale

    def emulated_since(self, started: float) -> float:
        """Emulated seconds elapsed since the real monotonic instant ``started``."""
        scale = self.time_scale
        return float("inf") if scale == float("inf") else (self.now() - started) * scale

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` under the lock once ``delay`` seconds have passed (at the next tick)."""
        with self.lock:
            heapq.heappush(self._tasks, (self.now() + max(delay, 0.0), next(self._seq), fn))

    def tick(self) -> None:
        """Advance every live run and run due tasks. Safe to call from any thread."""
        with self.lock:
            for backend in self.backends():
                for refresh in self.refreshers:
                    refresh(self, backend)
            now = self.now()
            while self._tasks and self._tasks[0][0] <= now:
                _, _, fn = heapq.heappop(self._tasks)
                fn()

    def start_ticker(self, interval: float) -> None:
        """Tick in a daemon thread every ``interval`` seconds until stop_ticker()."""
        self.stop_ticker()
        self._stop_ticker.clear()

        def loop() -> None:
            while not self._stop_ticker.wait(interval):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - a bad tick must not kill the clock
                    self.counters["ticker_errors"] += 1
                    traceback.print_exc()

        self._ticker = threading.Thread(target=loop, name="local_aws-ticker", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        """Stop the ticker thread, if running."""
        if self._ticker is not None:
            self._stop_ticker.set()
            self._ticker.join(timeout=5)
            self._ticker = None

    # -- lookups ------------------------------------------------------------------------
    @staticmethod
    def backends() -> Iterator[SageMakerModelBackend]:
        """Every SageMaker backend moto has instantiated so far."""
        for account in list(sagemaker_backends.values()):
            yield from list(account.values())

    def training_map(self, job_name: str, default: float) -> float:
        """The validation:mAP a job reports: an override set for its name, else ``default``
        (``training.fake_map`` of the job's data and epochs)."""
        with self.lock:
            for prefix, value in reversed(self.map_rules):
                if job_name.startswith(prefix):
                    return value
        return default

    def snapshot(self) -> dict[str, Any]:
        """Debug view for ``GET /_emulator/state``."""
        with self.lock:
            resources: dict[str, Any] = {}
            for backend in self.backends():
                st = state_of(backend)
                where = f"{backend.account_id}/{backend.region_name}"
                resources[where] = {
                    "training_jobs": {n: r.job.training_job_status for n, r in st.training.items()},
                    "endpoints": {n: r.endpoint.endpoint_status for n, r in st.endpoints.items()},
                    "labeling_jobs": {n: j.status for n, j in st.labeling.items()},
                }
            return {
                "transition_seconds": self.transition_seconds,
                "faults": self.faults.rules(),
                "training_map": [{"name_prefix": p, "map": v} for p, v in self.map_rules],
                "time_scale": self.time_scale,
                "missing_key_status": self.missing_key_status,
                "durations": [{"kind": k, "name_prefix": p, "seconds": v} for k, p, v in self.duration_rules],
                "pending_tasks": len(self._tasks),
                "counters": dict(self.counters),
                "resources": resources,
            }


# S3 API Reference, GetObject / HeadObject "Permissions": without s3:ListBucket a missing key is
# 403 AccessDenied, with it 404 NoSuchKey. The project's role has no unconditional ListBucket.
MISSING_KEY_STATUS = 403

# Emulated seconds that one real ``transition_seconds`` stands for, unless a time_scale is set:
# with the default 2 s, ten emulated minutes pass per two real seconds (scale 300).
REFERENCE_TRANSITION = 600.0

DURATION_KINDS = ("training", "training_spot_wait", "endpoint_create", "endpoint_update", "labeling", "async_inference")

# One per process: moto's backends are process-global too.
EXTENSION = Extension()
