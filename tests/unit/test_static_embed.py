"""Static embeddings (embed.encoder=static): distilled once from a sentence-transformers model, then cached."""

import numpy as np
import pytest

from climb_ray.config import ConfigError
from climb_ray.config_io import load_config
from climb_ray.static_embed import StaticEmbedder, load_static_model, static_model_folder

WORDS = "in the beginning god created heaven and earth return a new sorted list from items iterable".split()
TEXTS = ["In the beginning God created the heaven and the earth.",
         "Return a new sorted list from the items in iterable.",
         "qqq zzz",  # no known token
         ""]


def tiny_encoder(folder) -> str:
    """A 1-layer BERT with random weights and a vocabulary of WORDS (distils in about a second)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(tokens)})
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """(source model folder, cache folder, distilled model folder)."""
    root = tmp_path_factory.mktemp("static")
    source = tiny_encoder(root / "bert")
    return source, root / "cache", static_model_folder(source, cache_dir=root / "cache")


def test_a_second_call_loads_the_cached_model_without_distilling_again(distilled, monkeypatch):
    import model2vec.distill

    source, cache, folder = distilled
    assert [p.name for p in cache.iterdir()] == [folder.rsplit("/", 1)[1]]  # no half-written copy left

    def distill_again(**kwargs):
        raise AssertionError("distilled a second time")

    monkeypatch.setattr(model2vec.distill, "distill", distill_again)
    assert static_model_folder(source, cache_dir=cache) == folder
    assert load_static_model(source, cache_dir=cache).dim == 32


def test_a_source_model_saved_again_in_place_is_a_new_distillation(tmp_path):
    import os

    from climb_ray.static_embed import cache_key

    (tmp_path / "model.safetensors").write_bytes(b"12345678")
    before = cache_key(str(tmp_path), 32)
    assert cache_key(str(tmp_path), 32) == before and cache_key(str(tmp_path), 16) != before
    stat = (tmp_path / "model.safetensors").stat()
    os.utime(tmp_path / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, new save
    assert cache_key(str(tmp_path), 32) != before


def test_a_folder_holding_a_static_model_is_used_as_it_is(distilled, tmp_path):
    folder = distilled[2]
    assert static_model_folder(folder, cache_dir=tmp_path) == folder and list(tmp_path.iterdir()) == []


def test_vectors_are_model2vecs_own_and_unit_length(distilled):
    static = load_static_model(distilled[2])
    embedder = StaticEmbedder(static, max_tokens=64)
    ours = embedder.embed(TEXTS)
    assert ours.shape == (4, 32) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours[:2], axis=1), 1.0, atol=1e-5)
    assert not ours[2:].any()  # a text without a known token gets a zero row
    expected = static.encode(TEXTS[:2], normalize=True)
    assert np.min(np.sum(ours[:2] * expected, axis=1)) > 0.999
    assert embedder.prompt_tokens == 0


def test_long_texts_are_cut_to_max_tokens_but_counted_whole(distilled):
    embedder = StaticEmbedder(load_static_model(distilled[2]), max_tokens=3)
    ids = embedder.token_ids([TEXTS[0] * 50])
    assert len(ids[0]) == 50 * 11  # "in the beginning god created the heaven and the earth ."
    head = StaticEmbedder(load_static_model(distilled[2]), max_tokens=64).embed_ids([ids[0][:3]])
    assert np.allclose(embedder.embed_ids(ids), head, atol=1e-6)


def test_a_model_that_cannot_be_found_is_a_one_line_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="embed.model='no-such-org/no-such-model': cannot distill") as err:
        static_model_folder("no-such-org/no-such-model", cache_dir=tmp_path)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []


def test_the_encoder_is_transformer_or_static():
    assert load_config(None, ["embed.encoder=static"]).embed.encoder == "static"
    assert load_config(None, []).embed.encoder == "transformer"
    with pytest.raises(ConfigError, match="embed.encoder='fast': must be one of transformer, static"):
        load_config(None, ["embed.encoder=fast"])


def test_a_run_embedded_before_the_encoder_setting_existed_is_kept_and_a_switch_is_a_change(tmp_path):
    from climb_ray.artifacts import RunDir, StageChangedError, run_stage
    from climb_ray.stages.pipeline import stage_depends

    run, cfg = RunDir(str(tmp_path / "run")), load_config(None, [])
    old = {key: value for key, value in stage_depends(cfg, "embed").items() if key != "embed.encoder"}
    run_stage(run, "embed", old, lambda: {"n": 1})
    assert run_stage(run, "embed", stage_depends(cfg, "embed"), lambda: {"n": 2}).skipped
    static = load_config(None, ["embed.encoder=static"])
    with pytest.raises(StageChangedError, match="embed.encoder"):
        run_stage(run, "embed", stage_depends(static, "embed"), lambda: {})


def test_fitting_to_the_encoder_maps_document_vectors_onto_its_own():
    from climb_ray.static_embed import fit_to_encoder

    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 8))
    ids = [list(rng.integers(0, 50, rng.integers(1, 20))) for _ in range(200)] + [[]]
    truth = rng.normal(size=(8, 12))  # an encoder that is a linear map of the mean token vector, plus an offset
    targets = np.stack([table[x].mean(0) @ truth + 0.5 if x else np.zeros(12) for x in ids])
    fitted = fit_to_encoder(table, ids, targets, ridge=1e-9)
    assert fitted.shape == (50, 12) and fitted.dtype == np.float32
    ours = np.stack([fitted[x].sum(0) for x in ids[:-1]])  # the static encoder's sum, as StaticEmbedder takes it
    cosine = np.sum(ours * targets[:-1], 1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(targets[:-1], axis=1)
    assert cosine.mean() > 0.95  # the encoder's vectors are normalised before the fit, so not exactly
    plain = np.stack([table[x].sum(0) for x in ids[:-1]]) @ rng.normal(size=(8, 12))  # any other map is worse
    assert np.mean(np.sum(plain * targets[:-1], 1) / np.linalg.norm(plain, axis=1)
                   / np.linalg.norm(targets[:-1], axis=1)) < 0.9


def test_a_fitted_model_is_cached_by_its_documents_and_embeds_like_the_encoder(distilled, tmp_path):
    from climb_ray.static_embed import fitted_static_model

    source, _, folder = distilled
    static = load_static_model(folder)
    calls = []
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 8)) for _ in range(40)]
    directions = np.random.default_rng(2).normal(size=(len(WORDS), 6))

    def encode(batch):  # a stand-in encoder with 6 dimensions: the mean of its words' directions
        calls.append(len(batch))
        return np.stack([np.mean([directions[WORDS.index(w)] for w in t.split()], 0) for t in batch])

    fitted = fitted_static_model(static, texts, encode, source=folder, max_tokens=64, cache_dir=tmp_path)
    assert fitted.dim == 6 and calls == [40]
    assert fitted_static_model(static, texts, encode, source=folder, max_tokens=64, cache_dir=tmp_path).dim == 6
    assert calls == [40]  # the second call found the fit in the cache
    fitted_static_model(static, texts[:39], encode, source=folder, max_tokens=64, cache_dir=tmp_path)
    assert calls == [40, 39] and len([p for p in tmp_path.iterdir() if p.name.startswith("fit-")]) == 2
    ours = StaticEmbedder(fitted, max_tokens=64).embed(texts)
    theirs = encode(texts)
    assert np.mean(np.sum(ours * theirs, 1) / np.linalg.norm(theirs, axis=1)) > 0.9


def test_the_fit_sample_is_registered_and_old_static_runs_keep_their_unfitted_vectors():
    from climb_ray.config import ADDED_FIELDS
    from climb_ray.stages.pipeline import DEPENDS

    assert load_config(None, []).embed.static_fit_docs == 1000 and ADDED_FIELDS["embed.static_fit_docs"] == 0
    assert all("embed.static_fit_docs" in DEPENDS[stage] for stage in ("embed", "cluster", "tokens", "search"))
    with pytest.raises(ConfigError, match="embed.static_fit_docs=-1"):
        load_config(None, ["embed.static_fit_docs=-1"])


def test_the_fit_sample_is_recorded_only_for_the_static_encoder_so_older_transformer_runs_still_match(tmp_path):
    from climb_ray.artifacts import RunDir, StageChangedError, run_stage
    from climb_ray.stages.pipeline import stage_depends

    cfg = load_config(None, [])
    assert "embed.static_fit_docs" not in stage_depends(cfg, "embed")
    static = load_config(None, ["embed.encoder=static"])
    assert stage_depends(static, "embed")["embed.static_fit_docs"] == 1000
    run = RunDir(str(tmp_path / "run"))  # a transformer run made before the setting existed
    run_stage(run, "embed", stage_depends(cfg, "embed"), lambda: {"n": 1})
    assert run_stage(run, "embed", stage_depends(cfg, "embed"), lambda: {"n": 2}).skipped
    old_static = RunDir(str(tmp_path / "static"))  # a static run made before it: its vectors were unfitted
    run_stage(old_static, "embed", {k: v for k, v in stage_depends(static, "embed").items()
                                    if k != "embed.static_fit_docs"}, lambda: {"n": 1})
    unfitted = load_config(None, ["embed.encoder=static", "embed.static_fit_docs=0"])
    assert run_stage(old_static, "embed", stage_depends(unfitted, "embed"), lambda: {"n": 2}).skipped
    with pytest.raises(StageChangedError, match="embed.static_fit_docs"):
        run_stage(old_static, "embed", stage_depends(static, "embed"), lambda: {})


def test_a_fit_sample_without_a_known_token_is_a_one_line_error_naming_the_setting():
    from climb_ray.static_embed import fit_to_encoder

    with pytest.raises(ConfigError, match=r"embed.static_fit_docs: none of the 2 sampled documents"):
        fit_to_encoder(np.ones((4, 3), np.float32), [[], []], np.ones((2, 5)))
