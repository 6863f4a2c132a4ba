import numpy as np
import pytest

from climb_ray.config import ConfigError
from climb_ray.embed import Embedder, resolve_model

TEXTS = ["In the beginning God created the heaven and the earth.",
         "Return a new sorted list from the items in iterable.",
         "The bushfire forced hundreds of residents to leave their homes. " * 40,  # longer than max_tokens
         "x"]


@pytest.fixture(scope="module")
def embedder():
    return Embedder("all-MiniLM-L6-v2", max_tokens=64, batch_size=2)


def test_vectors_match_sentence_transformers_with_the_same_model(embedder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    reference.max_seq_length = 64
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    ours = embedder.embed(TEXTS)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    assert np.min(np.sum(ours * expected, axis=1)) > 0.999


def test_rows_are_unit_length_and_order_independent_of_batching(embedder):
    ours = embedder.embed(TEXTS)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    reversed_ = embedder.embed(TEXTS[::-1])[::-1]
    assert np.allclose(ours, reversed_, atol=1e-5)


def test_long_documents_are_cut_to_max_tokens_but_counted_whole(embedder):
    ids = embedder.token_ids(TEXTS)
    assert len(ids[2]) > 64
    assert len(embedder._cut(ids[2])) == 64 and embedder._cut(ids[2])[-1] == ids[2][-1]


def test_packaged_alias_resolves_to_a_local_folder():
    import os

    assert os.path.isdir(resolve_model("all-MiniLM-L6-v2"))
    assert resolve_model("some-org/some-encoder") == "some-org/some-encoder"


def test_any_transformers_encoder_in_a_local_folder_works(tmp_path):
    """A BERT made here from a config (random weights) loads by path like any other encoder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    tiny = Embedder(str(tmp_path), max_tokens=512, batch_size=3)
    vectors = tiny.embed(TEXTS)
    assert tiny.max_tokens == 64  # capped at the model's own limit
    assert vectors.shape == (4, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # a plain transformers folder (no sentence-transformers config) is mean-pooled
    assert np.min(np.sum(vectors * mean_pooled(str(tmp_path), TEXTS, 64), axis=1)) > 0.9999


def mean_pooled(path: str, texts: list[str], max_tokens: int) -> np.ndarray:
    """The embedder before sentence-transformers: AutoModel, mean over real tokens, L2 norm."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    weights = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1).numpy()


def tiny_bert(folder, hidden: int = 32) -> str:
    """A 1-layer BERT with random weights and MiniLM's tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_minilm_vectors_are_those_of_the_mean_pooling_embedder_before(embedder):
    old = mean_pooled(resolve_model("all-MiniLM-L6-v2"), TEXTS, 64)
    assert np.min(np.sum(embedder.embed(TEXTS) * old, axis=1)) > 0.999


def test_a_cls_pooled_model_gives_its_cls_vectors_not_the_mean(tmp_path):
    """A model whose sentence-transformers config pools the [CLS] token (as BGE does)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoModel, AutoTokenizer

    bert = tiny_bert(tmp_path / "bert")
    SentenceTransformer(modules=[Transformer(bert), Pooling(32, pooling_mode="cls")]).save(str(tmp_path / "st"))
    ours = Embedder(str(tmp_path / "st"), max_tokens=64, batch_size=3).embed(TEXTS)
    tokenizer, model = AutoTokenizer.from_pretrained(bert), AutoModel.from_pretrained(bert).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        cls = torch.nn.functional.normalize(model(**batch).last_hidden_state[:, 0], dim=-1).numpy()
    assert np.min(np.sum(ours * cls, axis=1)) > 0.9999
    assert np.max(np.sum(ours * mean_pooled(bert, TEXTS, 64), axis=1)) < 0.99  # not the mean


def test_the_dense_head_and_document_prompt_of_the_model_are_used(tmp_path):
    """A model with a dense head (32 -> 16) and query/passage prompts (as e5's): documents get the passage
    prompt; n_tokens leaves the prompt out."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    modules = [Transformer(tiny_bert(tmp_path / "bert")), Pooling(32), Dense(32, 16)]
    prompts = {"query": "query: ", "passage": "passage: "}
    SentenceTransformer(modules=modules, prompts=prompts).save(str(tmp_path / "st"))
    reference = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    tiny = Embedder(str(tmp_path / "st"), max_tokens=64, batch_size=3)
    ours = tiny.embed(TEXTS[:2])
    assert tiny.dim == 16 and tiny.prompt == "passage: " and tiny.prompt_tokens == 2  # "passage", ":"
    expected = reference.encode(TEXTS[:2], prompt_name="passage", normalize_embeddings=True)
    assert np.min(np.sum(ours * expected, axis=1)) > 0.9999
    plain = reference.encode(TEXTS[:2], normalize_embeddings=True)  # no prompt
    assert np.max(np.sum(ours * plain, axis=1)) < 0.9999
    own = [len(x) for x in reference.tokenizer(TEXTS[:2])["input_ids"]]
    assert [len(x) - tiny.prompt_tokens for x in tiny.token_ids(TEXTS[:2])] == own


def test_a_model_with_its_own_code_loads_only_with_trust_remote_code(tmp_path):
    """A folder whose config.json maps AutoModel to a modeling file beside it (as stella_en_400M_v5 does),
    asking for xformers' attention: without xformers installed it runs without."""
    import json

    folder = tiny_bert(tmp_path / "custom")
    (tmp_path / "custom" / "custom.py").write_text(  # stella's modeling code asserts xformers is there likewise
        "import importlib.util\nfrom transformers import BertConfig, BertModel\n\n\n"
        "class CustomConfig(BertConfig):\n    model_type = 'custom_bert'\n\n\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n\n"
        "    def __init__(self, config):\n"
        "        assert not config.use_memory_efficient_attention or importlib.util.find_spec('xformers'), "
        "'please install xformers'\n"
        "        super().__init__(config)\n")
    config = json.loads((tmp_path / "custom" / "config.json").read_text())
    config["model_type"] = "custom_bert"
    config["use_memory_efficient_attention"] = config["unpad_inputs"] = True  # as stella's config.json
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel"}
    (tmp_path / "custom" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="embed.trust_remote_code=true"):
        Embedder(folder, max_tokens=64)
    trusted = Embedder(folder, max_tokens=64, trust_remote_code=True)
    assert type(trusted.model[0].auto_model).__name__ == "CustomModel"
    assert trusted.embed(TEXTS[:1]).shape == (1, 32)
