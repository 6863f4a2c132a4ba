"""cluster.yaml checked by Ray's own cluster-launcher schema, the KubeRay RayJob manifest against
the operator's field names, and the job scripts against the CLI they call."""

import json
import copy
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

# Field names of KubeRay's ray.io/v1 API (ray-operator/apis/ray/v1/rayjob_types.go and
# raycluster_types.go, json tags), for the parts the manifest uses.
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "deletionPolicy",
               "entrypoint", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy",
               "metadata", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes", "submissionMode",
               "submitterConfig", "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
RAYCLUSTER_SPEC = {"autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions", "headGroupSpec",
                   "headServiceAnnotations", "managedBy", "rayVersion", "suspend", "workerGroupSpecs", "upgradeStrategy"}
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template", "resources", "labels"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts", "rayStartParams",
                "replicas", "scaleStrategy", "suspend", "template", "resources", "labels"}


def launcher_config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_cluster_launcher_schema_and_says_what_we_need():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = launcher_config()
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs first
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and "GPU" not in head["resources"]
    assert types["worker.gpu"]["min_workers"] == 0 and types["worker.cpu"]["min_workers"] == 0
    assert config["docker"]["image"].endswith("/climb-ray:0.1.0-gpu")  # docker/Dockerfile's GPU variant
    assert types["worker.cpu"]["docker"]["worker_image"].endswith("/climb-ray:0.1.0")  # its CPU variant
    assert config["setup_commands"] == []  # the image holds climb_ray: nodes install nothing at start
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])


def test_the_schema_check_above_would_catch_a_misspelt_field():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = launcher_config()
    config["available_node_types"]["worker.gpu"]["min_wrkers"] = 0
    with pytest.raises(jsonschema.ValidationError, match="min_wrkers"):
        validate_config(prepare_config(config))


def test_the_rayjob_manifest_uses_kuberay_field_names_and_runs_the_pipeline_job():
    job = yaml.safe_load((ROOT / "jobs" / "k8s" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC, set(cluster) - RAYCLUSTER_SPEC
    assert set(cluster["headGroupSpec"]) <= HEAD_GROUP
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
        assert group["minReplicas"] == 0
    assert cluster["rayVersion"] == "2.60.0" and spec["entrypoint"].startswith("python jobs/pipeline.py")
    assert set(yaml.safe_load(spec["runtimeEnvYAML"])) == {"working_dir"}  # no pip: the image holds the packages


@pytest.mark.parametrize("stage", ["pipeline", "embed", "cluster", "tokens", "search", "export", "serve", "doremi",
                                   "compare"])
def test_each_job_script_documents_its_submit_line_and_reaches_the_cli(stage):
    script = ROOT / "jobs" / f"{stage}.py"
    doc = script.read_text().split('"""')[1]
    assert "ray job submit" in doc and f"python jobs/{stage}.py" in doc and "--entrypoint-resources '{\"climb_driver\": 1}'" in doc
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd="/", timeout=60)
    command = "run" if stage == "pipeline" else stage
    assert proc.returncode == 0 and f"usage: climb-ray {command}" in proc.stdout, proc.stderr


def test_job_drivers_ask_for_a_resource_only_the_head_declares():
    """`--entrypoint-resources '{"climb_driver": 1}'` keeps a driver on the head only if no other node
    type has climb_driver (with entrypoint resources Ray may place a driver on any node)."""
    launcher = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    types = launcher["available_node_types"]
    assert types[launcher["head_node_type"]]["resources"]["climb_driver"] >= 1
    assert all("climb_driver" not in t["resources"] for name, t in types.items() if name != launcher["head_node_type"])
    # Ray's token authentication on every node, with the token made on the user's machine
    assert launcher["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    starts = launcher["head_start_ray_commands"][-1], launcher["worker_start_ray_commands"][-1]
    assert all("RAY_AUTH_MODE=token ray start" in command for command in starts)
    spec = yaml.safe_load((ROOT / "jobs" / "k8s" / "rayjob.yaml").read_text())["spec"]
    assert json.loads(spec["entrypointResources"]) == {"climb_driver": 1}
    head_resources = spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["resources"]
    assert json.loads(json.loads(head_resources))["climb_driver"] >= 1  # KubeRay's quoted-JSON form
    assert all("resources" not in g["rayStartParams"] for g in spec["rayClusterSpec"]["workerGroupSpecs"])


def gpu_extra() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]


def test_gpu_workers_run_the_image_with_the_gpu_extra_the_paper_preset_needs():
    """The paper preset clusters with cuML: the GPU workers (where the k-means task runs) run the image built
    with the gpu extra (the Dockerfile's default), the CPU ones its CPU variant; no pod installs at start."""
    import re

    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    from climb_ray.config_io import load_config

    assert load_config(ROOT / "jobs" / "configs" / "paper.yaml").cluster.backend == "cuml"
    assert all(req.startswith("cuml-cu12") for req in gpu_extra())  # the -gpu images are CUDA 12
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "gpu" in re.search(r"ARG EXTRAS=([\w,]+)", dockerfile).group(1).split(",")
    assert re.search(r"ARG BASE=rayproject/ray:[\d.]+-py\d+-gpu", dockerfile)
    config = AutoscalingConfig(launcher_config(), skip_content_hash=True)  # what the autoscaler runs per type
    for node_type in ("worker.gpu", "worker.cpu"):
        assert not any("pip install" in c for c in config.get_worker_setup_commands(node_type))
    groups = yaml.safe_load((ROOT / "jobs" / "k8s" / "rayjob.yaml").read_text())["spec"]["rayClusterSpec"]
    images = {g["groupName"]: g["template"]["spec"]["containers"][0]["image"] for g in groups["workerGroupSpecs"]}
    assert images["gpu"].endswith("/climb-ray:0.1.0-gpu") and images["cpu"].endswith("/climb-ray:0.1.0")
    for group in [*groups["workerGroupSpecs"], groups["headGroupSpec"]]:
        assert "args" not in group["template"]["spec"]["containers"][0]


def submitted_overrides(text: str, script: str) -> list[str]:
    """The key=value arguments after `python jobs/SCRIPT.py --config jobs/configs/paper.yaml` in a documented
    command (continued with backslashes, possibly in # comments)."""
    import shlex

    rest = text[text.index(f"python jobs/{script}.py --config jobs/configs/paper.yaml"):]
    lines = []
    for line in rest.splitlines():
        lines.append(line.lstrip("# ").rstrip("\\ "))
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(" ".join(lines))[4:]


@pytest.mark.parametrize("where, script", [("README.md", "pipeline"),
                                           ("cluster.yaml", "pipeline"), ("jobs/pipeline.py", "pipeline"),
                                           ("jobs/search.py", "search"), ("jobs/compare.py", "compare"),
                                           ("jobs/export.py", "export"), ("jobs/k8s/rayjob.yaml", "pipeline")])
def test_documented_cluster_commands_of_the_paper_preset_name_a_target(where, script):
    """The preset has no target: each documented command that searches names one, and leaving it out
    stops the run at once with one line naming target.paths."""
    from climb_ray.config import ConfigError
    from climb_ray.config_io import load_config
    from climb_ray.evaluate import check_targets

    text = (ROOT / where).read_text()
    if where.endswith("rayjob.yaml"):
        text = yaml.safe_load(text)["spec"]["entrypoint"]
    overrides = submitted_overrides(text, script)
    cfg = load_config(ROOT / "jobs" / "configs" / "paper.yaml", overrides)
    assert cfg.target.paths and cfg.corpus.paths and cfg.run_dir.startswith("s3://")
    untargeted = load_config(ROOT / "jobs" / "configs" / "paper.yaml",
                             [o for o in overrides if not o.startswith("target.paths=")])
    with pytest.raises(ConfigError, match=r"^target.paths=\[\]: name the target files"):
        check_targets(untargeted.target)
