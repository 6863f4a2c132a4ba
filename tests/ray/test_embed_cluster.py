import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from climb_ray.artifacts import RunDir
from climb_ray.config_io import load_config
from climb_ray.embed import Embedder
from climb_ray.stages.pipeline import run_pipeline

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FAST = ["embed.max_tokens=64", "embed.threads=2", "embed.num_actors=1"]


def embeddings(path):
    table = pq.read_table(path)
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
    return table.column("doc_id").to_pylist(), vectors, table


def test_ray_data_pipeline_gives_the_plain_embedders_vectors_and_skips_broken_rows(ray_session, tmp_path):
    corpus = tmp_path / "c.jsonl"
    good = [{"id": f"d{i}", "text": f"Document {i} talks about rivers, towns and the weather of the coast."}
            for i in range(12)]
    with open(corpus, "wb") as f:
        for row in good[:6]:
            f.write((json.dumps(row) + "\n").encode())
        f.write(b'{"id": "bin", "text": "\xff\xfe\x00binary"}\n{"id": "empty", "text": ""}\n')
        f.write(b'{"id": "nofield", "body": "text under another key"}\n{"id": "num", "text": 7}\n')
        for row in good[6:]:
            f.write((json.dumps(row) + "\n").encode())
    cfg = load_config(None, [f"corpus.paths=[{corpus}]", f"run_dir={tmp_path}/run", *FAST])
    report = run_pipeline(cfg, until="embed")
    corpus_info, embed_info = (r.info for r in report.results)
    assert corpus_info["skipped"] == 4 and corpus_info["documents"] == 12
    assert embed_info["documents"] == 12
    ids, vectors, table = embeddings(tmp_path / "run" / "embed")
    plain = Embedder(max_tokens=64).embed([row["text"] for row in good])
    order = [ids.index(row["id"]) for row in good]
    assert sorted(ids) == sorted(row["id"] for row in good)
    assert np.min(np.sum(vectors[order] * plain, axis=1)) > 0.999
    assert set(table.column_names) >= {"doc_id", "embedding", "n_tokens", "quality", "text_head"}


def test_the_static_encoder_runs_in_the_same_pipeline_with_the_plain_embedders_vectors(ray_session, tmp_path,
                                                                                     monkeypatch):
    from climb_ray.static_embed import StaticEmbedder, load_static_model
    from tests.unit.test_static_embed import tiny_encoder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the driver distils into it
    texts = ["In the beginning God created the heaven and the earth.", "Return a new sorted list from items.",
             "and the earth"]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    model = tiny_encoder(tmp_path / "bert")
    cfg = load_config(None, [f"corpus.paths=[{corpus}]", f"run_dir={tmp_path}/run", "embed.encoder=static",
                             f"embed.model={model}", "embed.static_fit_docs=0", *FAST])
    info = run_pipeline(cfg, until="embed").results[1].info
    assert info["documents"] == 3 and info["encoder"] == "static"
    ids, vectors, table = embeddings(tmp_path / "run" / "embed")
    plain = StaticEmbedder(load_static_model(model), max_tokens=64)
    order = [ids.index(f"d{i}") for i in range(3)]
    assert np.allclose(vectors[order], plain.embed(texts), atol=1e-6)
    assert table.column("n_tokens").to_numpy()[order].tolist() == [len(x) for x in plain.token_ids(texts)]


def test_the_static_encoder_fitted_to_the_encoder_on_a_sample_embeds_every_chunk_with_the_cached_fit(
        ray_session, tmp_path, monkeypatch):
    from model2vec import StaticModel

    from climb_ray.static_embed import StaticEmbedder
    from tests.unit.test_static_embed import WORDS, tiny_encoder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 6)) for _ in range(12)]
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for part in range(3):  # three files: three chunks
        (corpus / f"part{part}.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": texts[i]}) + "\n"
                                                          for i in range(4 * part, 4 * part + 4)))
    cfg = load_config(None, [f"corpus.paths=[{corpus}]", f"run_dir={tmp_path}/run", "embed.encoder=static",
                             f"embed.model={tiny_encoder(tmp_path / 'bert')}", "embed.static_fit_docs=8",
                             "embed.chunk_docs=4", *FAST])
    info = run_pipeline(cfg, until="embed").results[1].info
    assert info["documents"] == 12 and info["chunks"] == 3
    fits = list((tmp_path / "cache" / "climb_ray" / "model2vec").glob("fit-*"))
    assert len(fits) == 1  # one fit for the run, on 8 of its documents
    ids, vectors, _ = embeddings(tmp_path / "run" / "embed")
    fitted = StaticEmbedder(StaticModel.from_pretrained(str(fits[0])), max_tokens=64)
    order = [ids.index(f"d{i}") for i in range(12)]
    assert vectors.shape == (12, 32) and np.allclose(vectors[order], fitted.embed(texts), atol=1e-5)


def encoder_actors(ray) -> int:
    """Encoder actors this Ray has started so far (alive or gone); from the GCS (ray.util.state needs the
    dashboard, which the tests' Ray runs without)."""
    return sum(a["ActorClassName"].startswith("MapWorker(MapBatches(EncodeActor")
               for a in ray._private.state.actors().values())


def test_a_killed_embed_stage_resumes_without_re_embedding_finished_chunks(ray_session, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for part in range(3):
        with open(folder / f"part{part}.jsonl", "w") as f:
            for i in range(5):
                f.write(json.dumps({"text": f"Part {part}, line {i}: the ships came into the harbour."}) + "\n")
    overrides = [f"corpus.paths=[{folder}]", f"run_dir={tmp_path}/run", "embed.chunk_docs=5", *FAST]
    before = encoder_actors(ray_session)
    first = run_pipeline(load_config(None, overrides), until="embed").results[1].info
    assert first["chunks"] == 3 and first["chunks_reused"] == 0
    assert encoder_actors(ray_session) - before == 1  # the three chunks in one pass: one pool (of one), started once
    for part in range(3):  # each chunk's folder holds its own file's documents
        assert sorted(embeddings(tmp_path / "run" / "embed" / f"chunk-0000{part}")[0]) == [
            f"part{part}.jsonl:{i}" for i in range(5)]
    run = RunDir(str(tmp_path / "run"))
    kept = {name: os.stat(tmp_path / "run" / "embed" / "chunk-00000" / name).st_mtime_ns
            for name in run.listdir("embed/chunk-00000")}
    # as if killed while writing the last chunk: no stage marker, no chunk marker
    run.fs.rm(run.path("embed/_DONE"))
    run.fs.rm(run.path("embed/chunk-00002/_SUCCESS"))
    again = run_pipeline(load_config(None, overrides), until="embed").results[1]
    assert not again.skipped and again.info["chunks_reused"] == 2
    assert {n: os.stat(tmp_path / "run" / "embed" / "chunk-00000" / n).st_mtime_ns for n in kept} == kept
    ids, _, table = embeddings(tmp_path / "run" / "embed")
    assert len(ids) == 15 and "chunk" not in table.column_names  # chunk 2's first files were cleared, not kept
    # as if killed after the last chunk's marker, before the stage's: nothing to embed, no pool started
    run.fs.rm(run.path("embed/_DONE"))
    before = encoder_actors(ray_session)
    last = run_pipeline(load_config(None, overrides), until="embed").results[1]
    assert last.info["chunks_reused"] == 3 and encoder_actors(ray_session) == before


def test_a_corpus_file_changed_after_the_corpus_stage_stops_the_embed_stage_naming_it(ray_session, tmp_path):
    from climb_ray.artifacts import StageChangedError

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"Line {i} about the sea and the ships."}) + "\n" for i in range(4)))
    overrides = [f"corpus.paths=[{corpus}]", f"run_dir={tmp_path}/run", *FAST]
    run_pipeline(load_config(None, overrides), until="corpus")
    with open(corpus, "a") as f:
        f.write(json.dumps({"text": "A fifth line, added later."}) + "\n")
    with pytest.raises(StageChangedError, match=r"chunk 0 \(c.jsonl\) gave 5 documents where the corpus stage "
                                                r"counted 4: the corpus changed since; rerun with --redo corpus"):
        run_pipeline(load_config(None, overrides), until="embed")
    assert not (tmp_path / "run" / "embed" / "chunk-00000" / "_SUCCESS").exists()


def test_super_clusters_recover_the_hidden_sources_of_the_demo_corpus(ray_session, full_demo_corpus, tmp_path):
    """The demo settings (k=50) with as many super-clusters as sources; MiniLM at 64 tokens (the demo's
    128 takes twice as long, and 64 already separates the sources)."""
    demo_corpus = full_demo_corpus
    overrides = [f"corpus.paths=[{demo_corpus}]", f"run_dir={tmp_path}/run", "cluster.n_super_clusters=5",
                 "embed.max_tokens=64"]
    cfg = load_config(ROOT_DEMO, overrides)
    info = run_pipeline(cfg, until="cluster").results[-1].info
    assert info["super_clusters"] == 5
    run_folder = tmp_path / "run" / "cluster"
    assigned = pq.read_table(run_folder / "assignments").to_pandas()
    sources = {json.loads(line)["id"]: json.loads(line)["source"] for line in open(demo_corpus)}
    assigned["source"] = assigned.doc_id.map(sources)
    table = assigned.groupby(["super_cluster", "source"]).size().unstack(fill_value=0)
    purity = table.max(axis=1).sum() / table.values.sum()
    assert purity >= 0.9, table
    report = json.loads((run_folder / "clusters.json").read_text())
    assert sum(s["documents"] for s in report["super_clusters"]) == len(assigned)
    assert all(len(s["top_terms"]) > 0 and len(s["examples"]) == 3 for s in report["super_clusters"])
    assert (run_folder / "clusters.png").read_bytes()[:4] == b"\x89PNG"
    assert np.load(run_folder / "centroids.npy").shape == (50, 384)


from tests.conftest import ROOT  # noqa: E402

ROOT_DEMO = ROOT / "climb_ray" / "configs" / "demo.yaml"
