"""Process groups, signals and ports for the local tools (`make airflow`, `make demo`).

Each component starts in a session of its own (so a terminal's Ctrl-C or hang-up reaches only
the launcher, which then stops them in order), and is stopped as a whole group: SIGTERM to the
group and to every descendant found under it, SIGKILL to whatever is left after the grace period.
Signals only set a flag (:class:`StopFlag`); every wait polls it, so no exception can land between
a fork and the bookkeeping of the child it made.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import psutil

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP once installed; the first signal's number is kept. A
    second one sets ``hurry`` and, unless ``cleaning`` is set, raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.cleaning = False  # set while stopping the children: then a signal only hurries it
        self.hurry = False

    def install(self) -> StopFlag:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            return
        self.hurry = True  # a second signal: no grace period, SIGKILL at once
        if not self.cleaning:
            # ... and interrupt a step that does not poll the flag; the caller's `finally` still
            # stops every group it started.
            raise KeyboardInterrupt

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a stop signal came meanwhile."""
        deadline = time.monotonic() + seconds
        while not self and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return bool(self)


def say(*args: object, **kwargs: object) -> None:
    """print() that survives a closed terminal (after SIGHUP, writing to it raises EIO)."""
    try:
        print(*args, flush=True, **kwargs)  # type: ignore[call-overload]
    except (OSError, ValueError):
        pass


def launch(cmd: list[str], env: dict[str, str], log: IO[bytes] | None = None) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new session and process group (pgid == pid)."""
    out = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def group_members(pgid: int) -> list[psutil.Process]:
    """Every live process whose process group is ``pgid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def tree(procs: Iterable[subprocess.Popen]) -> dict[int, psutil.Process]:
    """The group members and descendants of each started process, by pid (leaders included)."""
    found: dict[int, psutil.Process] = {}
    for popen in procs:
        for member in group_members(popen.pid):
            found[member.pid] = member
        try:
            leader = psutil.Process(popen.pid)
            found[leader.pid] = leader
            for child in leader.children(recursive=True):  # also those that left the group
                found[child.pid] = child
        except psutil.Error:
            pass
    return found


def _signal_all(procs: Iterable[subprocess.Popen], found: dict[int, psutil.Process], sig: int) -> None:
    for popen in procs:
        try:
            os.killpg(popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in found.values():
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 20.0,
                hurry: Callable[[], bool] = lambda: False) -> list[int]:
    """SIGTERM every process group (and descendants) of ``procs``, SIGKILL what outlives ``grace``
    (or is still alive when ``hurry()`` turns true).

    Returns the pids that were still alive after SIGKILL (empty when everything stopped). The
    leaders are reaped, so none is left a zombie.
    """
    procs = list(procs)
    found = tree(procs)
    _signal_all(procs, found, signal.SIGTERM)
    alive = list(found.values())
    deadline = time.monotonic() + grace
    while alive and not hurry() and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(alive, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
    # Workers forked during the grace period belong to the same groups: look again.
    found = {p.pid: p for p in alive} | tree(procs)
    if found:
        _signal_all(procs, found, signal.SIGKILL)
        psutil.wait_procs(list(found.values()), timeout=5)
    for popen in procs:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    survivors = [pid for pid, proc in tree(procs).items() if _alive(proc)]
    return survivors


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def port_holder(port: int, host: str = "127.0.0.1") -> str | None:
    """Who holds TCP ``port`` (as a listener), as "pid N (command line)"; None when it is free."""
    listeners = []
    try:
        listeners = [c for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    except psutil.Error:
        pass
    for conn in listeners:
        if conn.pid is not None:
            try:
                cmdline = " ".join(psutil.Process(conn.pid).cmdline()) or "?"
            except psutil.Error:
                cmdline = "?"
            return f"pid {conn.pid} ({cmdline})"
    if listeners:
        return "a process of another user (its pid is not visible to this one)"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"an unknown process ({exc.strerror})"
    return None


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a component's log, for a message printed at once."""
    try:
        text = path.read_bytes()[-20_000:].decode(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])
