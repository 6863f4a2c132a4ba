"""export.format megatron and hf on a run folder made up to its token shards (4 super-clusters),
opened with megatron-core and Hugging Face datasets."""

import json
import shlex
from datetime import datetime, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from climb_ray.artifacts import RunDir, StageChangedError
from tests.conftest import tokens_config
from tests.ray.test_export_stage import export

pytestmark = [pytest.mark.ray, pytest.mark.slow]
WEIGHTS = ["export.weights=0.5,0.3,0.2,0", "export.token_budget=20000", "export.format=megatron"]


def corpus_texts(run, three_files) -> dict:
    """doc_id -> text of the run's corpus, read as the corpus stage reads it."""
    from climb_ray.corpus import SkipCounts, iter_records
    from climb_ray.stages.corpus import corpus_files

    corpus = tokens_config(three_files, run).corpus
    return {d: t for f in corpus_files(RunDir(str(run)))
            for d, t, _ in iter_records(f["file"], f["name"], corpus, SkipCounts())}


def test_megatron_datasets_hold_each_clusters_documents_with_the_runs_token_ids_and_the_blend_its_weights(
        finished, three_files, tmp_path):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="megatron-core (the test extra)")
    from megatron.core.datasets.utils import get_blend_from_list
    from tokenizers import Tokenizer

    run, result = export(finished, three_files, tmp_path, *WEIGHTS)
    blend = json.loads((run / "export" / "blend.json").read_text())
    prefixes = {name: str(run / "export" / name) for name in ("sc00", "sc01", "sc02")}
    assert blend["data_path"] == [0.5, prefixes["sc00"], 0.3, prefixes["sc01"], 0.2, prefixes["sc02"]]
    fragment = (run / "export" / "data_path.txt").read_text()
    assert get_blend_from_list(shlex.split(fragment)[1:]) == (list(prefixes.values()), [0.5, 0.3, 0.2])
    assert not list((run / "export").glob("sc03.*"))  # weight 0: neither written nor in the blend
    assert blend["train_tokens"] == 20000 and blend["dtype"] == "uint16"

    meta = json.loads((run / "tokens" / "meta.json").read_text())
    docs = pq.read_table(run / "tokens" / "docs")
    tok, texts = Tokenizer.from_file(str(run / "tokens" / "tokenizer.json")), corpus_texts(run, three_files)
    for i, (name, prefix) in enumerate(prefixes.items()):
        dataset = indexed.IndexedDataset(prefix)
        mine = [(d, n) for d, s, n in zip(*(docs.column(c).to_pylist() for c in ("doc_id", "super_cluster",
                                                                                "n_tokens"))) if s == i]
        assert len(dataset) == len(mine) == meta["documents"][name]  # every document once, each its own sequence
        assert dataset.sequence_lengths.tolist() == [n for _, n in mine]
        assert list(dataset.document_indices) == list(range(len(mine) + 1))
        for k in (0, len(mine) // 2, len(mine) - 1):
            ids = tok.encode(texts[mine[k][0]], add_special_tokens=False).ids + [meta["eot_id"]]  # --append-eod
            assert dataset[k].tolist() == ids, (name, k)
    megatron_trains_from(blend, tok, texts[mine[0][0]])
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["megatron"]["blend"] == "blend.json" and [s["prefix"] for s in manifest["shards"]] == list(prefixes)
    assert abs(manifest["clusters"]["sc00"]["tokens"] - 0.5 * 20000) <= max(docs.column("n_tokens").to_pylist())
    assert result.info["shards"] == 3 and result.info["rows"] == sum(meta["documents"][n] for n in prefixes)


def megatron_trains_from(blend: dict, tok, text: str) -> None:
    """Megatron-Core's tokenizer loads export/tokenizer/ and its blended GPT dataset samples the blend."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list
    from megatron.core.tokenizers import MegatronTokenizer

    megatron_tok = MegatronTokenizer.from_pretrained(blend["tokenizer"],
                                                     metadata_path={"library": "huggingface", "model_type": "gpt"})
    assert megatron_tok.eod == blend["eod_id"] and megatron_tok.tokenize(text) == tok.encode(text, add_special_tokens=False).ids
    config = GPTDatasetConfig(random_seed=1, sequence_length=64, blend=get_blend_from_list(blend["data_path"]),
                              split="100,0,0", tokenizer=megatron_tok, reset_position_ids=False,
                              reset_attention_mask=False, eod_mask_loss=False)
    samples = blend["train_tokens"] // 64
    train = BlendedMegatronDatasetBuilder(GPTDataset, [samples, 0, 0], lambda: True, config).build()[0]
    shares = np.bincount(train.dataset_index[:samples], minlength=3) / samples
    assert shares == pytest.approx(blend["data_path"][::2], abs=0.01)
    assert len(train[samples - 1]["tokens"]) == 64


class Killed(Exception):
    pass


def test_a_killed_megatron_export_resumes_with_the_clusters_it_lacks_and_a_format_change_needs_overwrite(
        finished, three_files, tmp_path, monkeypatch):
    from climb_ray import megatron

    whole, _ = export(finished, three_files, tmp_path / "whole", *WEIGHTS)
    convert, calls = megatron.convert_shard, []

    def dies_on_the_second(*args):
        calls.append(args)
        if len(calls) == 2:
            raise Killed()
        return convert(*args)

    monkeypatch.setattr(megatron, "convert_shard", dies_on_the_second)
    with pytest.raises(Killed):
        export(finished, three_files, tmp_path / "killed", *WEIGHTS)
    monkeypatch.setattr(megatron, "convert_shard", convert)
    run, result = export(finished, three_files, tmp_path / "killed", *WEIGHTS)
    assert result.info["shards_reused"] == 1
    for name in ("sc00.bin", "sc00.idx", "sc01.bin", "sc01.idx", "sc02.bin", "sc02.idx"):
        assert (run / "export" / name).read_bytes() == (whole / "export" / name).read_bytes(), name
    with pytest.raises(StageChangedError, match=r"export.format.*--overwrite"):
        export(finished, three_files, tmp_path / "killed", *WEIGHTS[:-1], "export.format=parquet")


def test_hf_export_opens_with_datasets_load_dataset_and_its_card_names_the_mixture(finished, three_files, tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is missing (the test extra)")
    run, result = export(finished, three_files, tmp_path, "export.weights=sc00=0.6,sc02=0.4",
                         "export.token_budget=20000", "export.format=hf", "export.write_token_ids=true",
                         "export.shard_mb=0.02")
    folder = run / "export"
    shards = sorted(folder.glob("part-*.parquet"))
    assert len(shards) > 1 and list(folder.glob("tokens-*.bin"))  # the card's data_files name the Parquet only
    loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    table = pq.read_table(shards)
    assert loaded.num_rows == table.num_rows == result.info["rows"]
    assert set(loaded.column_names) == {"text", "cluster", "doc_id"}
    assert loaded["doc_id"] == table.column("doc_id").to_pylist()  # the shards' order: shuffled across clusters
    assert set(loaded["cluster"]) == {"sc00", "sc02"}

    card = (folder / "README.md").read_text()
    _, header, body = card.split("---\n", 2)
    assert yaml.safe_load(header)["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "part-*.parquet"}]}]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert str(run) in body and f"`{run / 'config.yaml'}`" in body and "export.weights=sc00=0.6,sc02=0.4" in body
    assert f"budget of {20000:,}" in body and f"{datetime.now(timezone.utc):%Y-%m-%d}" in body
    assert f"| sc00 | 0.6000 | {manifest['clusters']['sc00']['tokens']:,} |" in body
    assert "| sc01 | 0.0000 | 0 |" in body


def test_climb_ray_export_format_from_the_command_line(ray_session, finished, three_files, demo_corpus, tmp_path):
    import shutil

    from tests.conftest import run_cli, tokens_overrides
    from tests.e2e.test_cli_e2e import assert_one_line_error

    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    args = ["export", "--config", "demo", *tokens_overrides(three_files, run), "export.max_epochs=0",
            f"target.paths=[{demo_corpus.parent / 'demo_target.jsonl'}]", "export.token_budget=20000"]
    env = {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    proc = run_cli([*args, "--weights", "0.5,0.3,0.2,0", "--format", "megatron"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "3 Megatron indexed dataset(s) of" in proc.stdout and "blend.json, data_path.txt" in proc.stdout
    assert (run / "export" / "data_path.txt").read_text().startswith(f"--data-path 0.5 {run}/export/sc00 0.3 ")
    assert_one_line_error(run_cli([*args, "export.format=arrow"], env=env), "export.format='arrow'",
                          "parquet, hf, megatron")
