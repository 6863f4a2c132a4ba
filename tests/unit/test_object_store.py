"""The run folder on an S3-compatible object store: moto's S3 server on loopback, reached through
s3fs with AWS_ENDPOINT_URL, as a user's run_dir=s3://bucket/... is. No Ray here (issue #7 adds
Ray Data and Tune on the same server)."""

import json

import pytest

from tests.conftest import free_port, make_served_run

moto_server = pytest.importorskip("moto.server", reason="moto[server] is missing (the test extra)")
pytest.importorskip("s3fs", reason="s3fs is missing (the s3 extra)")


@pytest.fixture(scope="module")
def bucket():
    """A fresh bucket on a moto S3 server bound to 127.0.0.1; yields its s3:// URL."""
    import os

    import boto3

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                             "AWS_ENDPOINT_URL")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    boto3.client("s3").create_bucket(Bucket="climb")
    import fsspec

    fsspec.filesystem("s3").invalidate_cache()
    yield "s3://climb"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
