import numpy as np
import pytest

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
