"""climb_ray on multi-node Ray clusters, all on this machine: a head and two worker nodes of
ray.cluster_utils.Cluster (encoder actors spread, a worker node lost mid-search, a killed job driver
resubmitted), and a `ray start --head` with token authentication running the demo pipeline through
`ray job submit`, its run folder on moto's S3 server.

Each test starts its drivers in fresh processes (the CLI, or Ray's job server), as users do; the
clusters are their own Ray instances beside the test session's."""

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import CLI, ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
VENV_BIN = str(Path(sys.executable).parent)  # `python` in a job's entrypoint is this environment's
# the same small run in every test: 300 documents, 4 super-clusters, 4 + 4 proxies of 30 steps
STAGES = ["--config", "demo", "embed.max_tokens=64", "embed.num_actors=2", "embed.threads=1", "cluster.k_init=20",
          "cluster.n_super_clusters=4", "tokens.vocab_size=1024"]
SEARCH = ["search.schedule=[4,4]", "proxy.steps=30", "target.max_docs=20", "search.n_candidates=2000",
          "predictor.num_rounds=50"]


def data_args(corpus: Path) -> list[str]:
    return [f"corpus.paths=[{corpus}]", f"target.paths=[{corpus.parent / 'demo_target.jsonl'}]"]


def alive_on(cluster, node) -> list[str]:
    """Class names of the actors alive on a node (from the cluster's GCS)."""
    return [a["ActorClassName"] for a in cluster.global_state.actor_table(None).values()
            if a["Address"]["NodeID"] == node.node_id and a["State"] == "ALIVE"]


def finished_trials(run: Path) -> dict[str, str]:
    """result.json of every trial that reported, by path (Tune copies them into the run folder)."""
    pattern = str(run / "search" / "tune" / "climb" / "*" / "result.json")
    return {path: open(path).read() for path in glob.glob(pattern) if os.path.getsize(path) > 0}


def restore_session_kv() -> None:
    """Starting a node in this process points Ray's internal key-value client (a process global) at
    that node's GCS; point it back at the test session's Ray, which later tests use."""
    import ray
    from ray.experimental import internal_kv

    if ray.is_initialized():
        internal_kv._initialize_internal_kv(ray._private.worker.global_worker.gcs_client)
    else:
        internal_kv._internal_kv_reset()


@pytest.fixture(scope="module")
def nodes():
    """A head (no CPU for work; the job server; `climb_driver` for job drivers, as in cluster.yaml)
    and two worker nodes of 2 CPUs each."""
    from ray.cluster_utils import Cluster

    saved = dict(os.environ)
    os.environ.update({"RAY_AUTH_MODE": "disabled", "PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    for key in ("RAY_ADDRESS", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    dashboard = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "resources": {"climb_driver": 2}, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard, "dashboard_agent_listen_port": free_port()})
    workers = [cluster.add_node(num_cpus=2), cluster.add_node(num_cpus=2)]
    restore_session_kv()
    yield SimpleNamespace(cluster=cluster, workers=workers, dashboard=f"http://127.0.0.1:{dashboard}")
    cluster.shutdown()
    restore_session_kv()
    os.environ.clear()
    os.environ.update(saved)
    (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").unlink(missing_ok=True)  # Cluster wrote it


@pytest.fixture(scope="module")
def tokens_run(nodes, demo_corpus, tmp_path_factory):
    """The run folder up to the token shards, made on the 3-node cluster by `climb-ray tokens`;
    yields (run folder, node ids of the encoder actors)."""
    run = tmp_path_factory.mktemp("multinode") / "run"
    env = {**os.environ, "RAY_ADDRESS": nodes.cluster.address}
    proc = subprocess.run(CLI + ["tokens", *STAGES, *data_args(demo_corpus), f"run_dir={run}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"joined the Ray cluster at {nodes.cluster.address}" in proc.stdout
    encoders = {a["Address"]["NodeID"] for a in nodes.cluster.global_state.actor_table(None).values()
                if "EncodeActor" in a["ActorClassName"]}
    return run, encoders


def test_embedding_actors_are_spread_over_both_worker_nodes(nodes, tokens_run, demo_corpus):
    run, encoders = tokens_run
    assert encoders == {w.node_id for w in nodes.workers}  # one encoder actor on each worker
    done = json.loads((run / "embed" / "_DONE").read_text())
    assert done["info"]["documents"] == sum(1 for _ in open(demo_corpus))


def test_a_worker_node_removed_mid_search_has_its_trial_retried_elsewhere_and_every_trial_recorded(
        nodes, tokens_run, demo_corpus, tmp_path):
    import shutil

    import pandas as pd

    run = tmp_path / "run"
    shutil.copytree(tokens_run[0], run)
    env = {**os.environ, "RAY_ADDRESS": nodes.cluster.address}
    args = CLI + ["search", *STAGES, *data_args(demo_corpus), f"run_dir={run}", *SEARCH, "search.max_failures=2",
                  "proxy.cpus_per_trial=2", "proxy.threads=1"]  # a whole worker per proxy: both workers busy
    driver = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lost = nodes.workers[1]
    deadline = time.time() + 300
    while "ImplicitFunc" not in alive_on(nodes.cluster, lost):  # a proxy trial (Tune's actor) runs there
        assert driver.poll() is None and time.time() < deadline, "no trial reached the second worker"
        time.sleep(0.3)
    time.sleep(1.5)  # into its training
    nodes.cluster.remove_node(lost)  # as a pre-empted spot node goes
    nodes.workers[1] = nodes.cluster.add_node(num_cpus=2)  # and the autoscaler replaces it
    restore_session_kv()
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out[-3000:]
    assert "search    done: 8 proxy trials in 2 iteration(s) (0 failed)" in out
    trials = pd.read_parquet(run / "search" / "trials.parquet")
    assert sorted(trials["index"]) == list(range(8)) and (trials["status"] == "done").all()
    assert trials["score"].notna().all()
    errors = [open(p).read() for p in glob.glob(str(run / "search" / "tune" / "climb" / "*" / "error.txt"))]
    assert any(lost.node_id in text and "node has died" in text for text in errors), errors
    retried = [p for p in glob.glob(str(run / "search" / "tune" / "climb" / "*" / "error.txt"))]
    assert all(os.path.getsize(Path(p).parent / "result.json") > 0 for p in retried)  # the retry finished


def test_a_killed_job_driver_resubmitted_resumes_the_search_without_rerunning_finished_trials(
        nodes, tokens_run, demo_corpus, tmp_path):
    import shutil

    from ray.job_submission import JobStatus, JobSubmissionClient

    run = tmp_path / "run"
    shutil.copytree(tokens_run[0], run)
    client = JobSubmissionClient(nodes.dashboard)
    # The script by its path here, not through a working_dir: the three nodes share one machine and
    # one session folder, and each node's runtime-env agent unpacking the same working_dir there
    # pulled the files from under the running driver (a test artefact: real nodes have their own
    # disks; the `ray start` test below uses --working-dir as users do).
    entrypoint = " ".join(["python", str(ROOT / "jobs" / "search.py"), *STAGES, *data_args(demo_corpus),
                           f"run_dir={run}", *SEARCH])
    # Tune copies trial results into the run folder when it checkpoints the experiment; each second
    # here, so that the kill below lands between two checkpoints
    submit = dict(entrypoint=entrypoint, entrypoint_resources={"climb_driver": 1},
                  runtime_env={"env_vars": {"TUNE_GLOBAL_CHECKPOINT_S": "1"}})

    def wait(job, until, timeout=600):
        deadline = time.time() + timeout
        while (info := client.get_job_info(job)).status not in until:
            assert time.time() < deadline and not info.status.is_terminal(), (info.status, client.get_job_logs(job))
            time.sleep(0.5)
        return info

    first = client.submit_job(**submit)
    deadline = time.time() + 400
    while len(finished_trials(run)) < 2:
        assert not client.get_job_status(first).is_terminal() and time.time() < deadline, client.get_job_logs(first)
        time.sleep(0.5)
    info = client.get_job_info(first)
    head = nodes.cluster.head_node.node_id
    assert info.driver_node_id == head  # climb_driver kept the driver on the head
    os.kill(int(info.driver_info.pid), signal.SIGKILL)  # the driver dies, not the cluster
    assert wait(first, {JobStatus.FAILED}).status == JobStatus.FAILED
    before = finished_trials(run)
    assert 2 <= len(before) < 8, "the driver should be killed mid-search"

    second = client.submit_job(**submit)  # the same job again
    assert wait(second, {JobStatus.SUCCEEDED}).status == JobStatus.SUCCEEDED
    logs = client.get_job_logs(second)
    assert "search    done: 8 proxy trials in 2 iteration(s)" in logs and "best mixture:" in logs
    after = finished_trials(run)
    assert len(after) == 8
    assert all(after[path] == text for path, text in before.items())  # finished trials were not run again


@pytest.fixture
def token_head(tmp_path):
    """`ray start --head` with token authentication, as a user starts a cluster by hand (loopback
    dashboard, `climb_driver` for the job driver); yields (dashboard URL, the token)."""
    import secrets

    import requests

    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PATH": f"{VENV_BIN}:{env['PATH']}"})
    dashboard = free_port()
    head = subprocess.Popen(
        [f"{VENV_BIN}/ray", "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=2",
         "--resources", '{"climb_driver": 1}', "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.time() + 120
    while True:
        try:
            requests.get(url, timeout=2)
            break
        except requests.ConnectionError:
            assert head.poll() is None and time.time() < deadline, (tmp_path / "head.log").read_text()[-3000:]
            time.sleep(1)
    yield url, token
    head.send_signal(signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
    head.wait(timeout=60)
    (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").unlink(missing_ok=True)


def test_ray_job_submit_runs_the_demo_pipeline_with_auth_on_and_its_run_folder_on_s3(token_head, s3_bucket,
                                                                                     demo_corpus):
    import fsspec

    url, token = token_head
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
    base["PATH"] = f"{VENV_BIN}:{base['PATH']}"
    submit = [f"{VENV_BIN}/ray", "job", "submit", "--address", url, "--working-dir", ".",
              "--entrypoint-resources", '{"climb_driver": 1}', "--runtime-env-json",
              json.dumps({"env_vars": s3_bucket["env"]}), "--"]
    refused = subprocess.run(submit + ["python", "-c", "print(1)"], cwd=ROOT, env=base, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and "Missing authentication token" in refused.stdout + refused.stderr

    run_dir = f"{s3_bucket['url']}/runs/job"
    pipeline = ["python", "jobs/pipeline.py", "--config", "jobs/configs/demo.yaml", *data_args(demo_corpus),
                f"run_dir={run_dir}", "search.schedule=[2,2]", "proxy.steps=4", "target.max_docs=20",
                "search.n_candidates=2000", "predictor.num_rounds=50", *STAGES[2:]]
    proc = subprocess.run(submit + pipeline, cwd=ROOT, env={**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                          capture_output=True, text=True, timeout=600)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "succeeded" in logs, logs[-4000:]
    for line in ("ray       joined the Ray cluster at", "embed     done: 300 documents embedded",
                 "tokens    done: ", "search    done: 4 proxy trials in 2 iteration(s) (0 failed)", "best mixture:",
                 "export    done: "):
        assert line in logs, line
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    best = json.loads(fs.cat(f"{run_dir}/search/best_mixture.json"))
    assert len(best["weights"]) == 4 and abs(sum(best["weights"].values()) - 1) < 1e-6
    assert fs.glob(f"{run_dir}/embed/**/*.parquet") and fs.glob(f"{run_dir}/search/tune/climb/experiment_state-*")
    assert fs.glob(f"{run_dir}/export/part-*.parquet") and fs.exists(f"{run_dir}/export/manifest.json")
