"""Thin client for the emulator's control API (``/_emulator/*``), usable from any process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ControlError(RuntimeError):
    """The control API refused a request; the message is its explanation."""


class Control:
    """``Control("http://127.0.0.1:5055").add_fault(kind="throttle", service="sagemaker")``."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.base = endpoint_url.rstrip("/") + "/_emulator"
        self.timeout = timeout

    def _call(self, method: str, route: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.base}/{route}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                pass
            raise ControlError(f"{method} /_emulator/{route}: HTTP {exc.code}: {detail}") from None

    def health(self) -> bool:
        """True if an emulator answers at this URL."""
        return bool(self._call("GET", "health").get("ok"))

    def state(self) -> dict[str, Any]:
        """Settings, fault rules, counters and resource statuses, for debugging."""
        return self._call("GET", "state")

    def add_fault(self, rule: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Add one fault rule (as a dict or keyword fields); returns it with its id."""
        return self._call("POST", "faults", {**(rule or {}), **fields})["rule"]

    def faults(self) -> list[dict[str, Any]]:
        """Every rule, used-up ones included (``remaining: 0``)."""
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        """Drop every fault rule."""
        self._call("DELETE", "faults")

    def set_training_map(self, value: float, name_prefix: str = "") -> None:
        """Training jobs whose name starts with ``name_prefix`` will report validation:mAP ``value``."""
        self._call("POST", "training", {"name_prefix": name_prefix, "map": value})

    def clear_training_map(self) -> None:
        """Back to the default name-derived mAP."""
        self._call("DELETE", "training")

    def set_transition_seconds(self, seconds: float) -> None:
        """Timeline length for jobs and endpoints created from now on."""
        self._call("POST", "config", {"transition_seconds": seconds})

    def set_time_scale(self, scale: float | None) -> None:
        """Emulated AWS seconds per real second; None derives it from transition_seconds again."""
        self._call("POST", "config", {"time_scale": scale})

    def set_missing_key_status(self, status: int) -> None:
        """What GET/HEAD of a missing key answers: 403 AccessDenied (the default: a principal without
        unconditional s3:ListBucket, as the project's role) or 404 NoSuchKey (full ListBucket)."""
        self._call("POST", "config", {"missing_key_status": status})

    def set_duration(self, kind: str, seconds: float, name_prefix: str = "") -> None:
        """Resources of ``kind`` named ``name_prefix…`` created from now on last ``seconds`` of emulated time."""
        self._call("POST", "durations", {"kind": kind, "name_prefix": name_prefix, "seconds": seconds})

    def clear_durations(self) -> None:
        """Back to each resource's default emulated duration."""
        self._call("DELETE", "durations")

    def reset(self) -> None:
        """Empty all AWS state and drop fault rules and mAP overrides."""
        self._call("POST", "reset")
