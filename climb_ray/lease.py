"""One writer per run folder: a lease object `<run_dir>/_LEASE.json` (local path or object store).

A command that writes the run folder (run, demo, a stage, search, export, doremi, compare, proxy)
takes the lease first and renews its heartbeat every TTL/6 seconds while it works. A second
command on the same folder stops with a line naming the holder, unless the lease is stale: its
heartbeat is older than its TTL (the holder died without releasing it; clocks are assumed to
agree within a minute, as NTP keeps them), or its holder ran on this host, in this pid namespace,
and its process is gone (a killed driver, resubmitted at once). A command whose lease another
took (after its heartbeat stalled for a TTL) stops rather than write on. The lease is written, then read back after a pause:
of two drivers starting together, the one whose write landed last keeps it.
"""

from __future__ import annotations

import _thread
import os
import signal
import socket
import threading
import time
import uuid

from climb_ray import log
from climb_ray.artifacts import RunDir

LOG = log.get(__name__)

LEASE = "_LEASE.json"
TTL_S = 120.0  # a lease whose heartbeat is older than this is stale
SETTLE_S = 0.5  # pause between writing the lease and reading it back


def pid_space() -> str:
    """This machine's boot and pid namespace: a pid means the same process only where these match
    (containers may share a host name but not their pids)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


class RunLocked(RuntimeError):
    """Another command holds the run folder's lease; the message names it."""


class RunLease:
    """`with RunLease(run_dir, "climb-ray run"):` holds the run folder for the block."""

    def __init__(self, run_dir: str, what: str, *, ttl_s: float = TTL_S):
        self.run, self.what, self.ttl_s = RunDir(run_dir), what, float(ttl_s)
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.lost = False  # set when another command took the lease while this one held it

    # -- the lease object --------------------------------------------------------------------------
    def _record(self) -> dict:
        job = os.environ.get("RAY_JOB_SUBMISSION_ID") or os.environ.get("RAY_JOB_ID") or ""
        return {"owner": self.owner, "what": self.what, "host": socket.gethostname(), "pid": os.getpid(),
                "pid_space": pid_space(), "job": job, "started_at": self._started, "heartbeat": time.time(),
                "ttl_s": self.ttl_s}

    def holder(self) -> dict | None:
        try:
            return self.run.read_json(LEASE)
        except (FileNotFoundError, ValueError):  # none, or a half-written one from another store
            return None

    def _stale(self, held: dict) -> bool:
        if time.time() - float(held.get("heartbeat", 0)) > float(held.get("ttl_s", TTL_S)):
            return True
        same_pids = held.get("pid_space") == pid_space() != ""  # this machine's boot and pid namespace
        if same_pids and held.get("host") == socket.gethostname() and held.get("pid") != os.getpid():
            try:
                os.kill(int(held["pid"]), 0)
            except ProcessLookupError:
                return True  # a dead process on this host
            except (PermissionError, ValueError, TypeError, KeyError):
                return False
            try:  # a killed process its parent has not reaped yet is dead too
                with open(f"/proc/{int(held['pid'])}/stat") as stat:
                    return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
            except (OSError, IndexError):
                return False
        return False

    def _refuse(self, held: dict) -> RunLocked:
        age = time.time() - float(held.get("heartbeat", 0))
        job = f", Ray job {held['job']}" if held.get("job") else ""
        return RunLocked(
            f"run_dir {self.run.url()} is in use by {held.get('what', '?')} (host {held.get('host', '?')}, pid "
            f"{held.get('pid', '?')}{job}, last heartbeat {age:.0f} s ago); wait for it to finish or stop it: its "
            f"lease ({self.run.url(LEASE)}) expires {float(held.get('ttl_s', TTL_S)):.0f} s after its last heartbeat")

    def acquire(self) -> None:
        held = self.holder()
        if held and held.get("owner") != self.owner and not self._stale(held):
            raise self._refuse(held)
        self._started = time.time()
        self.run.write_json(LEASE, self._record())
        time.sleep(SETTLE_S)
        held = self.holder()
        if not held or held.get("owner") != self.owner:  # another driver wrote after us: it keeps the folder
            raise self._refuse(held or {})
        self._beat = threading.Thread(target=self._heartbeat, name="climb-ray-lease", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 6):
            try:
                held = self.holder()
                if held and held.get("owner") != self.owner:  # taken: writing on would mix two runs' files
                    self.lost = True
                    LOG.error(f"this command lost the run folder's lease and stops: "
                              f"{self._refuse(held)}")
                    if callable(signal.getsignal(signal.SIGINT)):
                        _thread.interrupt_main()  # KeyboardInterrupt in the main thread: the command unwinds
                    else:  # SIGINT ignored (a background job): nothing else would stop it
                        os.kill(os.getpid(), signal.SIGTERM)
                    return
                self.run.write_json(LEASE, self._record())
            except OSError as err:  # a storage hiccup: the next beat tries again, well before the TTL
                LOG.warning(f"could not renew the run folder's lease ({err})")

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        held = self.holder()
        if held and held.get("owner") == self.owner:
            self.run.fs.rm(self.run.path(LEASE))

    def __enter__(self) -> "RunLease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
