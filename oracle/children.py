"""Child processes that do not outlive their launcher, and records that find them again.

Two mechanisms, because neither covers every way a launcher ends:

* :func:`die_with_parent`: on Linux, ``prctl(PR_SET_PDEATHSIG)`` set in the child between
  fork and exec asks the kernel to signal the child when its parent exits, however it
  exits: SIGKILL and a crash included, where no handler of the parent runs. (Precisely:
  when the parent *thread* that forked it ends, so spawn from the main thread.)
* :class:`Recorded`: a child's pid with its start time as the kernel counts it
  (``/proc/PID/stat`` field 22), written to a file, so that another process (``mira devnet
  down``) can stop the children later, and a pid reused by an unrelated process is never
  signalled: its start time differs.

Each child runs in a session of its own (``start_new_session``), so it is the leader of its
process group and signalling the group reaches whatever it started in turn.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``sig`` when this
    process ends. None where the platform has no such call (then only the records and
    ``mira devnet down`` stop the children)."""
    if _LIBC is None:
        return None
    # Resolved here, in the parent: the child, between fork and exec, must take no lock that
    # another thread of the parent may have held at the fork (dlsym's would be one), so it
    # only makes the system calls prctl, getppid and kill.
    prctl = _LIBC.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # the parent may have died between fork and prctl: then no signal will come
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None without procfs or if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no procfs: trust kill(0)
    return fields[0] != "Z"


@dataclass(frozen=True)
class Recorded:
    """A process as recorded when it was started."""

    pid: int
    started: int | None  # start_time(pid) then; None without procfs
    what: str = ""

    @classmethod
    def of(cls, pid: int, what: str = "") -> Recorded:
        return cls(pid, start_time(pid), what)

    @classmethod
    def from_json(cls, raw: Any) -> Recorded:
        return cls(int(raw["pid"]), None if raw["started"] is None else int(raw["started"]),
                   str(raw.get("what", "")))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def alive(self) -> bool:
        """Still running, and still the process that was recorded (not a reused pid)."""
        if not pid_alive(self.pid):
            return False
        return self.started is None or start_time(self.pid) == self.started

    def __str__(self) -> str:
        return f"{self.what} (pid {self.pid})" if self.what else f"pid {self.pid}"


def _signal_group(proc: Recorded, sig: int) -> None:
    if proc.alive():  # checked right before: never a reused pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def stop_all(procs: Iterable[Recorded], timeout: float = 10.0) -> list[Recorded]:
    """SIGTERM the process group of each live recorded process, SIGKILL what is left after
    ``timeout``; return those still running after that (normally none)."""
    live = [p for p in procs if p.alive()]
    for p in live:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in live:
        _signal_group(p, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(p.alive() for p in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in live if p.alive()]
