import json
import time
import uuid

import pytest

from climb_ray.artifacts import RunDir, StageChangedError, run_stage


@pytest.fixture(params=["local", "file_uri", "memory"])
def run(request, tmp_path):
    """The same run-folder code on a local path, a file:// URI and an in-memory fsspec store."""
    uri = {"local": str(tmp_path / "run"), "file_uri": f"file://{tmp_path}/run",
           "memory": f"memory://climb-test-{uuid.uuid4().hex}/run"}[request.param]
    return RunDir(uri)


def test_write_is_atomic_and_leaves_no_temp_files(run):
    run.write_json("search/best_mixture.json", {"w": [0.5, 0.5]})
    run.write_json("search/best_mixture.json", {"w": [0.25, 0.75]})
    assert run.read_json("search/best_mixture.json") == {"w": [0.25, 0.75]}
    assert run.listdir("search") == ["best_mixture.json"]


def test_url_opens_the_same_file(run, tmp_path):
    run.write_text("config.yaml", "seed: 1\n")
    url = run.url("config.yaml")
    import fsspec

    with fsspec.open(url, "r") as f:
        assert f.read() == "seed: 1\n"


def test_a_stage_with_a_marker_is_skipped_on_rerun(run):
    calls = []

    def work():
        calls.append(1)
        run.write_text("corpus/stats.json", "{}")
        time.sleep(0.05)
        return {"documents": 3}

    first = run_stage(run, "corpus", {"corpus": {"text_field": "text"}}, work)
    second = run_stage(run, "corpus", {"corpus": {"text_field": "text"}}, work)
    assert (first.skipped, second.skipped) == (False, True)
    assert second.info == {"documents": 3} and len(calls) == 1
    marker = json.loads(run.read_bytes("corpus/_DONE"))
    assert marker["depends"] == {"corpus": {"text_field": "text"}}
    assert 0.05 <= marker["seconds"] < 30  # the stage's wall time (the scale benchmark reads it)


def test_a_stage_killed_before_its_marker_runs_again(run):
    def killed():
        run.write_text("corpus/stats.json", "{partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(run, "corpus", {}, killed)
    assert not run.is_done("corpus")
    result = run_stage(run, "corpus", {}, lambda: {"documents": 1})
    assert not result.skipped and run.is_done("corpus")


def test_a_done_stage_with_other_settings_is_refused_then_redone_on_request(run):
    run_stage(run, "corpus", {"corpus": {"text_field": "text"}}, lambda: {"n": 1})
    with pytest.raises(StageChangedError, match="corpus.*--redo corpus"):
        run_stage(run, "corpus", {"corpus": {"text_field": "body"}}, lambda: {"n": 2})
    redone = run_stage(run, "corpus", {"corpus": {"text_field": "body"}}, lambda: {"n": 2}, redo=True)
    assert not redone.skipped and redone.info == {"n": 2}


def test_a_killed_stage_resumes_only_with_the_settings_it_started_with(run):
    def killed():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(run, "search", {"proxy.steps": 40}, killed)
    with pytest.raises(StageChangedError, match="started with other settings \\(proxy.steps\\).*--redo search"):
        run_stage(run, "search", {"proxy.steps": 2000}, lambda: {"n": 1})
    assert run_stage(run, "search", {"proxy.steps": 40}, lambda: {"n": 1}).info == {"n": 1}
    assert run_stage(run, "search", {"proxy.steps": 2000}, lambda: {"n": 2}, redo=True).info == {"n": 2}


def test_a_redo_killed_while_clearing_never_leaves_a_marker_over_partial_files(run, monkeypatch):
    run_stage(run, "embed", {}, lambda: {"documents": 2})
    for name in ("a.parquet", "b.parquet"):
        run.write_text(f"embed/{name}", "rows")
    real, removed = type(run.fs).rm, []

    def killed_half_way(self, path, recursive=False, *args, **kwargs):
        removed.append(str(path))
        if recursive:  # the folder: one file goes, then the kill (an object store deletes in no set order)
            real(self, run.path("embed", "a.parquet"))
            raise KeyboardInterrupt
        return real(self, path, recursive, *args, **kwargs)

    monkeypatch.setattr(type(run.fs), "rm", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        run_stage(run, "embed", {}, lambda: {"documents": 3}, redo=True)
    monkeypatch.undo()
    assert removed[0].endswith("embed/_DONE")
    assert run.exists("embed", "b.parquet") and not run.is_done("embed")  # partial, and known to be
    assert run_stage(run, "embed", {}, lambda: {"documents": 3}).info == {"documents": 3}


def test_a_field_added_since_a_run_was_made_reads_as_its_old_behaviour(run):
    """A marker without proxy.init or cluster.merge_method (made before they existed): reused when the new
    field holds the value that reproduces it (proxy.init scratch, merge ward_documents), refused otherwise."""
    run_stage(run, "search", {"proxy.steps": 10}, lambda: {"n": 1})
    kept = run_stage(run, "search", {"proxy.steps": 10, "proxy.init": "scratch"}, lambda: {"n": 2})
    assert kept.skipped and kept.info == {"n": 1}
    with pytest.raises(StageChangedError, match="proxy.init"):
        run_stage(run, "search", {"proxy.steps": 10, "proxy.init": "pretrained"}, lambda: {"n": 2})
    run_stage(run, "cluster", {"cluster": {"k_init": 50}}, lambda: {"n": 1})
    assert run_stage(run, "cluster", {"cluster": {"k_init": 50, "merge_method": "ward_documents"}},
                     lambda: {"n": 2}).skipped
    with pytest.raises(StageChangedError, match="cluster"):  # the new default merges differently: a rebuild
        run_stage(run, "cluster", {"cluster": {"k_init": 50, "merge_method": "ward_kmeans"}}, lambda: {"n": 2})


def test_a_run_that_continued_a_checkpoint_before_proxy_init_existed_reads_as_pretrained(run):
    run_stage(run, "search", {"proxy.init_from": "/models/gpt"}, lambda: {"n": 1})
    assert run_stage(run, "search", {"proxy.init_from": "/models/gpt", "proxy.init": "pretrained"},
                     lambda: {"n": 2}).skipped


def test_a_changed_stage_names_each_changed_field_with_its_old_and_new_value(run):
    run_stage(run, "tokens", {"tokens": {"sample": "all", "vocab_size": 4096}, "seed": 0}, lambda: {"n": 1})
    with pytest.raises(StageChangedError, match=r"other settings \(tokens\): tokens.sample: 'all' -> 'auto'; "
                                                r"use a new run_dir, or --redo tokens"):
        run_stage(run, "tokens", {"tokens": {"sample": "auto", "vocab_size": 4096}, "seed": 0}, lambda: {"n": 2})
