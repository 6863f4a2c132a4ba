"""The export stage on Ray Data, on a run folder made up to its token shards (4 super-clusters)."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from climb_ray.artifacts import StageChangedError
from climb_ray.export import ExportError
from climb_ray.stages.pipeline import run_pipeline
from tests.conftest import tokens_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def export(finished, three_files, folder, *settings, skip=("search",), **kwargs):
    """Copy the finished run into `folder` (unless there) and export with these export.* settings."""
    run = folder / "run"
    if not run.exists():
        shutil.copytree(finished[0], run)
    cfg = tokens_config(three_files, run, "export.max_epochs=0", *settings)  # 0: search.max_epochs (15)
    report = run_pipeline(cfg, until="export", skip=skip, **kwargs)
    return run, report.results[-1]


def doc_tokens(run) -> dict:
    table = pq.read_table(run / "tokens" / "docs")
    return dict(zip(table.column("doc_id").to_pylist(), table.column("n_tokens").to_pylist()))


def rows(run):
    """Every exported row in order (doc_id, cluster, text), and each shard file's bytes."""
    shards = sorted((run / "export").glob("part-*.parquet"))
    table = pq.read_table(shards) if shards else None
    files = {p.name: p.read_bytes() for p in sorted((run / "export").iterdir()) if p.name != "_DONE"}
    return table, files


def test_tokens_per_cluster_match_the_weights_within_one_document(finished, three_files, tmp_path):
    total = sum(json.loads((finished[0] / "tokens" / "meta.json").read_text())["tokens"].values())
    budget = total // 2
    run, result = export(finished, three_files, tmp_path, "export.weights=0.4,0.3,0.2,0.1",
                         f"export.token_budget={budget}")
    table, _ = rows(run)
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    lengths = doc_tokens(run)
    docs = pq.read_table(run / "tokens" / "docs")
    for name, weight in zip(["sc00", "sc01", "sc02", "sc03"], [0.4, 0.3, 0.2, 0.1]):
        ids = [d for d, c in zip(table.column("doc_id").to_pylist(), table.column("cluster").to_pylist()) if c == name]
        tokens = sum(lengths[d] for d in ids)
        longest = max(n for n, s in zip(docs.column("n_tokens").to_pylist(), docs.column("super_cluster").to_pylist())
                      if f"sc{s:02d}" == name)
        assert abs(tokens - weight * budget) <= longest, name
        entry = manifest["clusters"][name]
        assert entry["tokens"] == tokens and entry["rows"] == len(ids) and entry["weight"] == pytest.approx(weight)
    assert manifest["rows"] == table.num_rows == result.info["rows"] and manifest["token_budget"] == budget
    assert set(table.column_names) == {"text", "cluster", "doc_id"}


def test_the_same_seed_gives_byte_identical_files_and_another_seed_another_order_with_the_same_counts(
        finished, three_files, tmp_path):
    total = sum(json.loads((finished[0] / "tokens" / "meta.json").read_text())["tokens"].values())
    settings = ["export.weights=prior", f"export.token_budget={2 * total}", "export.shard_mb=0.2"]  # 2 whole passes
    # the same export made again from nothing (--overwrite) in the same run folder, then another seed
    outputs = [rows(export(finished, three_files, tmp_path / name, *settings, f"export.seed={seed}", *more)[0])
               for name, seed, more in [("a", 7, []), ("a", 7, ["export.overwrite=true"]), ("c", 8, [])]]
    (first, files_a), (_, files_b), (other, files_c) = outputs
    assert len([n for n in files_a if n.startswith("part-")]) > 1  # several shards
    assert files_a == files_b  # manifest and every shard, byte for byte
    assert first.column("doc_id").to_pylist() != other.column("doc_id").to_pylist()  # shuffled differently
    counts = [json.loads(f["manifest.json"])["clusters"] for f in (files_a, files_c)]
    assert {n: (c["rows"], c["tokens"]) for n, c in counts[0].items()} == \
           {n: (c["rows"], c["tokens"]) for n, c in counts[1].items()}
    assert sorted(first.column("doc_id").to_pylist()) == sorted(other.column("doc_id").to_pylist())
    clusters = first.column("cluster").to_pylist()
    assert len(set(clusters[:20])) > 1  # clusters are interleaved, not one after another


def test_an_export_made_with_other_settings_is_refused_unless_overwrite(finished, three_files, tmp_path):
    run, first = export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=20000")
    _, again = export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=20000")
    assert again.skipped  # the same export: already done
    with pytest.raises(StageChangedError, match=r"export.token_budget.*--overwrite"):
        export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=30000")
    _, replaced = export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=30000",
                         "export.overwrite=true")
    assert not replaced.skipped and replaced.info["budget"] == 30000
    assert json.loads((run / "export" / "manifest.json").read_text())["token_budget"] == 30000
    with pytest.raises(ExportError, match="more than export.max_epochs=1"):  # refused before anything is removed
        export(finished, three_files, tmp_path, "export.weights=sc00=1", "export.token_budget=10000000",
               "export.max_epochs=1", "export.overwrite=true")
    assert json.loads((run / "export" / "manifest.json").read_text())["token_budget"] == 30000
    assert (run / "export" / "_DONE").exists() and list((run / "export").glob("part-*.parquet"))


class Killed(Exception):
    pass


def test_a_killed_export_rerun_writes_only_the_missing_shards_and_duplicates_nothing(finished, three_files,
                                                                                    tmp_path, monkeypatch):
    from climb_ray import export_writer

    settings = ["export.weights=0.25,0.25,0.25,0.25", "export.token_budget=150000", "export.shard_mb=0.1"]
    reference, _ = rows(export(finished, three_files, tmp_path / "whole", *settings)[0])
    flush = export_writer.ShardedWriter._flush

    def dies_after_three(self):
        if len(self.shards) == 3:
            raise Killed()
        flush(self)

    monkeypatch.setattr(export_writer.ShardedWriter, "_flush", dies_after_three)
    with pytest.raises(Killed):
        export(finished, three_files, tmp_path / "killed", *settings)
    monkeypatch.setattr(export_writer.ShardedWriter, "_flush", flush)
    run, result = export(finished, three_files, tmp_path / "killed", *settings)
    assert result.info["shards_reused"] == 3 and result.info["shards"] > 3
    table, files = rows(run)
    _, reference_files = rows(tmp_path / "whole" / "run")
    manifests = [json.loads(f.pop("manifest.json")) for f in (files, reference_files)]
    assert files == reference_files  # the same shards, byte for byte, as an export that was never killed
    for m in manifests:
        m["source"].pop("run_dir")  # the two run folders
    assert manifests[0] == manifests[1]


def test_token_id_shards_hold_each_rows_tokens_with_the_runs_tokenizer(finished, three_files, tmp_path):
    from tokenizers import Tokenizer

    run, result = export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=30000",
                         "export.write_token_ids=true", "export.shard_mb=0.05")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(run / "tokens" / "tokenizer.json"))
    total = 0
    for shard in manifest["shards"]:
        texts = pq.read_table(run / "export" / shard["file"]).column("text").to_pylist()
        ids = np.fromfile(run / "export" / shard["tokens_file"], dtype=np.uint16)
        starts = np.fromfile(run / "export" / shard["tokens_file"].replace(".bin", ".idx"), dtype=np.uint64)
        assert len(starts) == len(texts) == shard["rows"] and len(ids) == shard["tokens"]
        for i in (0, len(texts) - 1):
            end = int(starts[i + 1]) if i + 1 < len(starts) else len(ids)
            assert ids[int(starts[i]):end].tolist() == tok.encode(texts[i], add_special_tokens=False).ids + [0]
        total += len(ids)
    assert total == manifest["tokens"] == result.info["tokens"]


def test_a_mixture_past_the_epoch_cap_is_refused_before_anything_is_written(finished, three_files, tmp_path):
    with pytest.raises(ExportError, match=r"cluster sc0\d needs .* passes .* more than export.max_epochs=2: short by"):
        export(finished, three_files, tmp_path, "export.weights=sc00=1", "export.max_epochs=2",
               "export.token_budget=10000000")
    assert not list((tmp_path / "run" / "export").glob("part-*"))


def test_the_manifest_says_what_was_exported_and_from_where_and_nothing_about_when(finished, three_files, tmp_path):
    run, _ = export(finished, three_files, tmp_path, "export.weights=uniform", "export.token_budget=20000",
                    "export.seed=3")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert set(manifest) == {"format", "source", "seed", "token_budget", "max_epochs", "tokens", "rows", "clusters",
                             "shards"}  # no time or host: the same export gives the same bytes
    assert manifest["source"]["run_dir"] == str(run) and manifest["source"]["weights"] == "uniform"
    assert manifest["seed"] == 3 and manifest["max_epochs"] == 15  # search.max_epochs when export.max_epochs is 0
    assert sum(c["rows"] for c in manifest["clusters"].values()) == manifest["rows"]
    assert sum(s["rows"] for s in manifest["shards"]) == manifest["rows"]


@pytest.mark.parametrize("bins", [4, 65_536])
def test_the_plan_made_by_ray_data_tasks_equals_plan_cluster_over_every_document(finished, bins):
    from climb_ray.adapters.ray_export import key_histograms
    from climb_ray.artifacts import RunDir
    from climb_ray.export import copies, doc_key, plan_cluster, targets
    from climb_ray.stages.export import docs_files, plan_export

    run = RunDir(str(finished[0]))
    docs = pq.read_table(sorted((finished[0] / "tokens" / "docs").glob("*.parquet")))  # the reading order
    supers, lengths = docs.column("super_cluster").to_numpy(), docs.column("n_tokens").to_numpy()
    names, seed = ["sc00", "sc01", "sc02", "sc03"], 5
    keys = np.array([doc_key(d, seed) for d in docs.column("doc_id").to_pylist()])
    histograms = key_histograms(docs_files(run), seed, len(names), bins)
    assert histograms[0].sum() == lengths.sum() and histograms[1].sum() == len(keys)
    total = int(lengths.sum())
    for weights, budget in [([0.4, 0.3, 0.2, 0.1], total // 3), ([0.7, 0.1, 0.1, 0.1], 5 * total),
                            ([0.0, 0.5, 0.5, 0.0], 777)]:
        plans, rows = plan_export(run, names, histograms, np.array(weights), budget, seed, bins)
        wanted, expected = targets(np.array(weights), budget), 0
        for i, name in enumerate(names):
            member = supers == i
            reference = plan_cluster(name, weights[i], int(wanted[i]), keys[member], lengths[member])
            assert plans[i] == reference
            expected += sum(copies(reference, k) for k in keys[member])
        assert rows == expected


def test_rows_grouped_with_their_cluster_in_many_groups_give_the_same_export_as_in_one(finished, three_files,
                                                                                      tmp_path, monkeypatch):
    from climb_ray.adapters import ray_export

    total = sum(json.loads((finished[0] / "tokens" / "meta.json").read_text())["tokens"].values())
    settings = ["export.weights=0.4,0.3,0.2,0.1", f"export.token_budget={total // 3}", "export.write_token_ids=true"]
    one, _ = rows(export(finished, three_files, tmp_path / "one", *settings)[0])
    monkeypatch.setattr(ray_export, "GROUP_ROWS", 10)  # about 10 groups
    many, files = rows(export(finished, three_files, tmp_path / "many", *settings)[0])
    _, reference = rows(tmp_path / "one" / "run")
    manifests = [json.loads(f.pop("manifest.json")) for f in (files, reference)]
    assert files == reference and many.equals(one) and one.num_rows > 50
    for m in manifests:
        m["source"].pop("run_dir")
    assert manifests[0] == manifests[1]
