"""The run folder on an S3-compatible object store: moto's S3 server on loopback, reached through
s3fs with AWS_ENDPOINT_URL, as a user's run_dir=s3://bucket/... is. No Ray here: the whole
pipeline as a Ray job on the same server is in tests/e2e/test_ray_cluster.py."""

import json

import pytest

from tests.conftest import make_served_run


@pytest.fixture(scope="module")
def bucket(s3_bucket):
    return s3_bucket["url"]


def test_the_run_folder_writes_reads_lists_and_clears_stages_on_s3(bucket):
    from climb_ray.artifacts import RunDir, StageChangedError, run_stage

    run = RunDir(f"{bucket}/runs/one")
    assert run.url("search") == "s3://climb/runs/one/search"
    run.write_json("corpus/stats.json", {"documents": 3})
    assert run.read_json("corpus/stats.json") == {"documents": 3} and run.listdir("corpus") == ["stats.json"]
    assert not any(".tmp-" in name for name in run.listdir("corpus"))  # the temp name was renamed away
    calls = []
    first = run_stage(run, "embed", {"embed.model": "m"}, lambda: calls.append(1) or {"n": 1})
    again = run_stage(run, "embed", {"embed.model": "m"}, lambda: calls.append(1) or {"n": 1})
    assert not first.skipped and again.skipped and calls == [1]
    with pytest.raises(StageChangedError, match="embed.model"):
        run_stage(run, "embed", {"embed.model": "other"}, lambda: {})
    run.clear_stage("embed")
    assert not run.exists("embed") and run.listdir("embed") == []


def test_the_predictor_of_a_run_folder_on_s3_loads_for_serving(bucket, tmp_path):
    import fsspec

    from climb_ray.adapters.ray_serve import user_config
    from climb_ray.served_model import ServedModel

    local = make_served_run(tmp_path / "run")
    fs = fsspec.filesystem("s3")
    fs.put(str(local), "climb/runs/served", recursive=True)
    model = ServedModel.load(f"{bucket}/runs/served")
    here = ServedModel.load(str(local))
    assert model.info["version"] == here.info["version"] and model.info["source"].startswith("s3://climb/")
    assert [m["score"] for m in model.measured] == [m["score"] for m in here.measured]
    config = user_config(f"{bucket}/runs/served")
    assert config["run_dir"] == "s3://climb/runs/served"  # URIs are kept as they are, not made local paths
    assert config["predictor_sha256"] == json.loads((local / "search" / "predictor.json").read_text())["model_sha256"]
