"""The CLI run in fresh processes, as a user runs it."""

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e
# a small but real search: 2 + 2 proxies of 4 steps
QUICK_SEARCH = ["search.schedule=[2,2]", "proxy.steps=4", "target.max_docs=20", "search.n_candidates=2000",
                "predictor.num_rounds=50"]


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0]


def test_bad_config_value_is_one_line_exit_2_and_starts_no_ray(tmp_path):
    proc = run_cli(["run", "cluster.k_init=-3", f"run_dir={tmp_path}/run"])
    assert_one_line_error(proc, "cluster.k_init=-3")
    assert "Ray" not in proc.stdout + proc.stderr


def test_missing_text_field_is_one_line_exit_2(ray_session, tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": 1, "content": "hello"}\n')
    address = ray_session.get_runtime_context().gcs_address
    proc = run_cli(["corpus", "scan", f"corpus.paths=[{tmp_path}/d.jsonl]", f"run_dir={tmp_path}/run"],
                   env={"RAY_ADDRESS": address})
    assert_one_line_error(proc, "d.jsonl", "'text'", "corpus.text_field")


def test_compare_with_an_unknown_method_is_one_line_exit_2_and_starts_no_ray(tmp_path):
    proc = run_cli(["compare", "--config", "demo", "compare.methods=[climb,doremi,magic]", f"run_dir={tmp_path}/run"])
    assert_one_line_error(proc, "compare.methods=['climb', 'doremi', 'magic']", "climb, regmix, random, optuna, doremi")
    assert "Ray" not in proc.stdout + proc.stderr


def test_a_corpus_mixing_integer_and_string_labels_is_one_line_exit_2(ray_session, tmp_path):
    rows = [{"text": "first", "domain": 3}, {"text": "second", "domain": "news"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    address = ray_session.get_runtime_context().gcs_address
    proc = run_cli(["corpus", "scan", f"corpus.paths=[{tmp_path}/d.jsonl]", "corpus.label_field=domain",
                    f"run_dir={tmp_path}/run"], env={"RAY_ADDRESS": address})
    assert_one_line_error(proc, "d.jsonl", "integer labels (e.g. 3)", "string labels (e.g. 'news')")


@pytest.mark.slow
def test_demo_builds_its_corpus_and_runs_on_a_local_ray_with_auth_on(tmp_path):
    """Run from a user's folder with the demo's relative paths (data/..., runs/demo), as `make demo` does."""
    env = {"RAY_ADDRESS": "", "RAY_AUTH_MODE": ""}  # as a user's shell: auth on, no cluster
    args = ["demo", "--docs-per-source", "40", *QUICK_SEARCH]
    proc = run_cli(args, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    (tmp_path / "run").symlink_to(tmp_path / "runs" / "demo")
    (tmp_path / "demo.jsonl").symlink_to(tmp_path / "data" / "demo_corpus.jsonl")
    (tmp_path / "target.jsonl").symlink_to(tmp_path / "data" / "demo_target.jsonl")
    assert "started a local Ray" in out
    assert all(f"{stage}: done in " in out for stage in ("embed", "cluster", "tokens", "search", "export"))
    assert "Token authentication is enabled" not in proc.stderr  # Ray's notice: its log files, not the terminal
    assert f"run folder {tmp_path}/runs/demo" in out
    assert "explore the predictor: climb-ray serve --config demo" in out  # then the URL and a curl line
    assert "curl -s -X POST http://127.0.0.1:8000/v1/predict" in out
    assert "embed     done: " in out and "cluster   done: 6 super-clusters from k=50" in out
    assert "tokens    done: " in out and (tmp_path / "run" / "tokens" / "meta.json").is_file()
    assert "search    done: 4 proxy trials in 2 iteration(s) (0 failed), method climb" in out
    assert "export    done: " in out and "-> export/part-*.parquet, manifest.json" in out
    manifest = json.loads((tmp_path / "run" / "export" / "manifest.json").read_text())
    assert manifest["max_epochs"] == 2 and all(c["epochs"] <= 2 + 1e-9 for c in manifest["clusters"].values())
    best = json.loads((tmp_path / "run" / "search" / "best_mixture.json").read_text())
    assert len(best["weights"]) == 6 and best["trials"] == 4
    assert sum(1 for _ in open(tmp_path / "target.jsonl")) == 200
    assert (tmp_path / "run" / "cluster" / "clusters.png").is_file()
    documents = sum(1 for _ in open(tmp_path / "demo.jsonl"))
    assert 150 <= documents <= 200
    assert f"corpus    done: {documents} documents" in out

    again = run_cli(args, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "demo corpus: " in again.stdout and "already done, skipped" in again.stdout
    assert "started a local Ray" not in again.stdout  # nothing to do: no Ray needed


def test_serve_on_a_run_without_a_search_is_one_line_exit_2_and_starts_no_ray(tmp_path):
    proc = run_cli(["serve", f"run_dir={tmp_path}/run"])
    assert_one_line_error(proc, "predictor.txt is missing", "climb-ray search")
    assert "Ray" not in proc.stdout


def test_serve_starts_a_local_ray_with_auth_on_serves_with_a_token_until_ctrl_c(tmp_path):
    """As a user: `climb-ray serve` on a finished run, the printed curl line works, Ctrl-C stops it;
    with serve.direct_ingress the replica's own port answers too, with the same token check."""
    import os
    import signal
    import subprocess
    import time

    import requests

    from tests.conftest import CLI, ROOT, free_port, make_served_run

    run = make_served_run(tmp_path / "run")
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "", "CLIMB_API_TOKEN": "t0ken"}
    proc = subprocess.Popen(CLI + ["serve", f"run_dir={run}", f"serve.port={port}", "resources.include_dashboard=false",
                                   "serve.direct_ingress=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    lines = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if "serving until Ctrl-C" in line:
                break
        out = "".join(lines)
        assert "serving until Ctrl-C" in out, out
        url = f"http://127.0.0.1:{port}"
        assert f"web page      {url}/" in out and "bearer token  required: $CLIMB_API_TOKEN" in out
        assert f"curl -s -H \"Authorization: Bearer $CLIMB_API_TOKEN\" -X POST {url}/v1/predict" in out
        body = {"weights": {"sc01": 1.0}}
        assert requests.post(f"{url}/v1/predict", json=body, timeout=30).status_code == 401
        r = requests.post(f"{url}/v1/predict", json=body, headers={"Authorization": "Bearer t0ken"}, timeout=30)
        assert r.status_code == 200 and r.json()["weights"]["sc01"] == 1.0
        assert "<html" in requests.get(f"{url}/", timeout=30).text.lower()
        (direct,) = [line.split()[1].rstrip("/") for line in lines if line.strip().startswith("direct ")]
        assert direct.startswith("http://127.0.0.1:") and direct != url  # the replica's port, on loopback
        assert requests.post(f"{direct}/v1/predict", json=body, timeout=30).status_code == 401
        r = requests.post(f"{direct}/v1/predict", json=body, headers={"Authorization": "Bearer t0ken"}, timeout=30)
        assert r.status_code == 200 and r.json()["weights"]["sc01"] == 1.0
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, rest
        assert "stopping the server" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_proxy_trains_and_scores_one_mixture_and_refuses_bad_weights_in_one_line(ray_session, demo_corpus, tmp_path):
    target = demo_corpus.parent / "demo_target.jsonl"
    common = ["--config", "demo", f"corpus.paths=[{demo_corpus}]", f"target.paths=[{target}]",
              f"run_dir={tmp_path}/run", "embed.max_tokens=64", "cluster.k_init=20", "cluster.n_super_clusters=4",
              "tokens.vocab_size=1024", "proxy.steps=10", "target.max_docs=50"]
    env = {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    proc = run_cli(["proxy", "--weights", "prior", "--json", str(tmp_path / "r.json"), *common], env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert f"proxy: score {result['score']:.4f} (higher is better)" in proc.stdout
    assert result["score"] == -result["targets"][0]["loss"] and sum(result["sequences"].values()) == 10 * 16
    assert "sc03" in proc.stdout and "passes" in proc.stdout

    for weights, named in [("0.5,0.5", "mixture has 2 weights, clusters are 4"),
                           ("sc07=1", "unknown cluster 'sc07'"),
                           ("0.1,0.1,0.1,-1", "mixture[3] = -1.0: the weight of sc03")]:
        assert_one_line_error(run_cli(["proxy", "--weights", weights, *common], env=env), named)
    no_target = run_cli(["proxy", "--weights", "uniform", *common, "target.paths=[]"], env=env)
    assert_one_line_error(no_target, "target.paths=[]: name the target files")
    # a target without text: refused on the driver before any trial, and the fixed command then runs
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    bad_target = run_cli(["search", *common, f"target.paths=[{tmp_path}/bad.jsonl]", "search.schedule=[2]"], env=env)
    assert_one_line_error(bad_target, "bad.jsonl", "target.text_field")
    assert not (tmp_path / "run" / "search").exists()
    whole_run = run_cli(["run", *common, "target.paths=[]"], env=env)
    assert_one_line_error(whole_run, "target.paths=[]")

