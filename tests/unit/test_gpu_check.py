"""benchmarks/gpu_check.py: every GPU check imports and skips cleanly without a GPU, and the checks' own
code runs on CPU at tiny sizes (on a GPU node the same script measures the GPU paths)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(tmp_path, *args):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True,
                          timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    return done, (json.loads(out.read_text()) if out.exists() else None)


def test_without_a_gpu_every_check_is_skipped_and_the_script_exits_0(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the checks run instead")
    done, results = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(results["checks"]) == {"embed", "kmeans", "proxy", "doremi", "pipeline_serve"}
    assert {r["status"] for r in results["checks"].values()} == {"skipped"}
    assert "no CUDA GPU" in results["checks"]["proxy"]["why"]


def test_the_proxy_and_kmeans_checks_run_on_cpu_at_tiny_sizes(tmp_path):
    done, results = _run(tmp_path, "--allow-cpu", "--tiny", "--only", "proxy,kmeans")
    assert done.returncode == 0, done.stdout + done.stderr
    proxy, kmeans = results["checks"]["proxy"], results["checks"]["kmeans"]
    assert proxy["status"] == "ok" and proxy["eager_tokens_per_s"] > 0
    assert kmeans["faiss_fit_s"] >= 0  # faiss ran; cuML is measured where it is installed, else skipped
    assert kmeans["status"] in ("ok", "skipped") and ("cuML" in kmeans.get("why", "cuML"))


def test_an_unknown_check_is_refused_by_name(tmp_path):
    done, _ = _run(tmp_path, "--only", "proxy,warp_drive")
    assert done.returncode == 2 and "warp_drive" in done.stderr


@pytest.mark.gpu
def test_every_gpu_path_passes_on_a_gpu(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: benchmarks/gpu_check.py runs these on a GPU node")
    done, results = _run(tmp_path)
    assert done.returncode == 0, json.dumps(results, indent=1)
