"""The run folder's lease: one writer at a time, on a local path and an fsspec store."""

import json
import socket
import subprocess
import sys
import time
import uuid

import pytest

from climb_ray.artifacts import RunDir
from climb_ray.lease import LEASE, RunLease, RunLocked, pid_space


@pytest.fixture(params=["local", "memory"])
def run_dir(request, tmp_path):
    return {"local": str(tmp_path / "run"), "memory": f"memory://lease-{uuid.uuid4().hex}/run"}[request.param]


def test_a_second_writer_is_refused_naming_the_holder_and_gets_in_after_release(run_dir):
    with RunLease(run_dir, "climb-ray search") as first:
        with pytest.raises(RunLocked) as err:
            RunLease(run_dir, "climb-ray run").acquire()
        message = str(err.value)
        assert "climb-ray search" in message and socket.gethostname() in message and "\n" not in message
        assert RunDir(run_dir).read_json(LEASE)["owner"] == first.owner
    assert not RunDir(run_dir).exists(LEASE)
    with RunLease(run_dir, "climb-ray run"):
        pass


def test_a_lease_whose_heartbeat_expired_is_taken_over(run_dir):
    RunDir(run_dir).write_json(LEASE, {"owner": "gone", "what": "climb-ray run", "host": "another-host", "pid": 1,
                                       "heartbeat": time.time() - 200, "ttl_s": 120})
    with RunLease(run_dir, "climb-ray run") as lease:
        assert RunDir(run_dir).read_json(LEASE)["owner"] == lease.owner
    RunDir(run_dir).write_json(LEASE, {"owner": "alive", "what": "climb-ray run", "host": "another-host", "pid": 1,
                                       "heartbeat": time.time() - 10, "ttl_s": 120})
    with pytest.raises(RunLocked, match="another-host"):
        RunLease(run_dir, "climb-ray run").acquire()


def test_a_dead_process_on_this_host_does_not_hold_the_folder(tmp_path):
    """A killed driver resubmitted at once: its pid is gone, so the lease is stale without waiting."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = str(tmp_path / "run")
    dead = {"owner": "killed", "what": "climb-ray run", "host": socket.gethostname(), "pid": int(gone.stdout),
            "pid_space": pid_space(), "heartbeat": time.time(), "ttl_s": 120}
    RunDir(run_dir).write_json(LEASE, {**dead, "pid_space": "another-container"})  # its pids are not ours
    with pytest.raises(RunLocked):
        RunLease(run_dir, "climb-ray run").acquire()
    RunDir(run_dir).write_json(LEASE, dead)
    with RunLease(run_dir, "climb-ray run"):
        pass


def test_the_heartbeat_renews_the_lease_while_the_command_works(tmp_path):
    run_dir = str(tmp_path / "run")
    with RunLease(run_dir, "climb-ray run", ttl_s=0.6):
        first = RunDir(run_dir).read_json(LEASE)["heartbeat"]
        time.sleep(1.0)  # longer than the TTL: without renewals another writer could take the folder
        assert RunDir(run_dir).read_json(LEASE)["heartbeat"] > first
        with pytest.raises(RunLocked):
            RunLease(run_dir, "climb-ray run").acquire()


def test_the_cli_refuses_a_second_driver_in_one_line(tmp_path, capsys):
    from climb_ray.cli import main

    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        RunDir(run_dir).write_json(LEASE, {"owner": "x", "what": "climb-ray demo", "host": socket.gethostname(),
                                           "pid": holder.pid, "heartbeat": time.time(), "ttl_s": 120})
        code = main(["search", "--config", "demo", f"run_dir={run_dir}"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("climb-ray: error: run_dir") and "climb-ray demo" in err
        assert err.count("\n") == 1
        assert json.loads(RunDir(run_dir).read_bytes(LEASE))["owner"] == "x"  # the holder's lease is untouched
    finally:
        holder.kill()


def test_a_command_whose_lease_was_taken_stops_instead_of_writing_on(tmp_path):
    import signal

    run_dir = str(tmp_path / "run")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with RunLease(run_dir, "climb-ray run", ttl_s=0.6) as lease:
                RunDir(run_dir).write_json(LEASE, {"owner": "another", "what": "climb-ray search", "host": "h",
                                                   "pid": 1, "heartbeat": time.time(), "ttl_s": 120})
                time.sleep(5)
        assert lease.lost and RunDir(run_dir).read_json(LEASE)["owner"] == "another"  # not ours to remove
    finally:
        signal.signal(signal.SIGINT, previous)
