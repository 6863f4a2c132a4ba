"""Each stage's typed result: written as JSON into its _DONE marker, read back the same, and old markers
(written before a field existed) still described."""

import dataclasses

from climb_ray.artifacts import RunDir, run_stage
from climb_ray.stages.pipeline import ORDER, RESULTS, describe
from climb_ray.stages.export import ExportResult
from climb_ray.stages.tokens import TokensResult


def test_every_stage_has_a_result_that_reads_back_what_it_wrote():
    assert list(RESULTS) == ORDER
    for cls in RESULTS.values():
        assert dataclasses.fields(cls), cls
        assert cls.from_json(cls().to_json()) == cls()
    tokens = TokensResult(tokenizer="bpe", vocab_size=300, clusters=2, tokens=50, documents=9, parts=4, dtype="uint16")
    assert TokensResult.from_json({**tokens.to_json(), "a_later_key": 1}) == tokens


def test_run_stage_keeps_a_typed_result_as_json_in_the_marker(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    made = ExportResult(rows=5, tokens=40, budget=50, shards=1, weights={"a": 1.0})
    first = run_stage(run, "export", {}, lambda: made)
    again = run_stage(run, "export", {}, lambda: ExportResult(rows=99))
    assert first.info == again.info == run.read_json("export/_DONE")["info"] == made.to_json() and again.skipped
    assert describe("export", again.info) == made.describe() and "5 rows, 40 tokens (budget 50)" in made.describe()


def test_markers_from_before_a_field_existed_are_still_described():
    tokens = {"tokenizer": "bpe", "vocab_size": 300, "clusters": 2, "tokens": 50, "documents": 9, "dtype": "uint16"}
    assert "(2 parts, uint16)" in describe("tokens", tokens)  # before parts: one per cluster
    export = {"rows": 5, "shards": 1, "shards_reused": 0, "token_ids": False, "tokens": 40, "budget": 50,
              "weights": {"a": 1.0}}
    assert "export/part-*.parquet, manifest.json" in describe("export", export)  # before export.format
    embed = {"documents": 10, "chunks": 2, "chunks_reused": 1, "model": "m", "max_tokens": 8}
    assert describe("embed", embed) == "10 documents embedded with m (2 chunk(s), 1 reused) -> embed/"
