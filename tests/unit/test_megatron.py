"""Megatron-Core indexed datasets and blends written by climb_ray.megatron, read by megatron-core itself."""

import fsspec
import numpy as np
import pytest

from climb_ray import tokens as tk
from climb_ray.megatron import command_line, convert_shard, data_path, megatron_dtype

pytestmark = pytest.mark.slow  # importing megatron-core takes ~15 s
indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset",
                              reason="megatron-core is missing (the test extra)")


def shards(folder, dtype, sizes, vocab, seed=0):
    """Token parts as the tokens stage writes them (tokens.PartWriter), two per cluster (the second empty
    for a cluster of one document): documents ending with id 0."""
    rng = np.random.default_rng(seed)
    fs, docs = fsspec.filesystem("file"), {}
    writers = [tk.PartWriter(fs, str(folder), stem, dtype) for stem in ("00000-00000", "00001-00000")]
    for name, n in sizes.items():
        docs[name] = [np.append(rng.integers(1, vocab, rng.integers(1, 90)), 0) for _ in range(n)]
        writers[0].add(name, docs[name][:n // 2 + 1])
        writers[1].add(name, docs[name][n // 2 + 1:])
    for writer in writers:
        writer.close()
    return docs


def parts(folder, name):
    return [str(folder / name / stem) for stem in ("00000-00000", "00001-00000")]


@pytest.mark.parametrize("dtype, vocab", [(np.uint16, 65_536), (np.uint32, 200_000)])
def test_a_clusters_converted_parts_are_byte_identical_to_megatrons_own_builder_and_read_back(tmp_path, dtype, vocab):
    docs = shards(tmp_path / "tokens", dtype, {"sc00": 300, "sc01": 1}, vocab)
    fs = fsspec.filesystem("file")
    for name, expected in docs.items():
        prefix = str(tmp_path / name)
        assert convert_shard(fs, parts(tmp_path / "tokens", name), prefix, dtype) == \
            (len(expected), sum(len(d) for d in expected))
        builder = indexed.IndexedDatasetBuilder(str(tmp_path / f"ref-{name}.bin"), dtype=megatron_dtype(dtype).type)
        for doc in expected:  # as tools/preprocess_data.py --append-eod: one sequence per document
            builder.add_document(doc, [len(doc)])
        builder.finalize(str(tmp_path / f"ref-{name}.idx"))
        for ext in ("bin", "idx"):
            assert (tmp_path / f"{name}.{ext}").read_bytes() == (tmp_path / f"ref-{name}.{ext}").read_bytes(), ext
        dataset = indexed.IndexedDataset(prefix)
        assert len(dataset) == len(expected) and list(dataset.document_indices) == list(range(len(expected) + 1))
        assert all(dataset[i].tolist() == expected[i].tolist() for i in range(len(expected)))
        assert dataset.index.dtype == (np.uint16 if vocab <= 65_536 else np.int32)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_blend_parses_with_megatrons_parser_without_zero_weights_and_megatron_samples_it(tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list
    from megatron.core.tokenizers import MegatronTokenizerBase

    docs = shards(tmp_path / "tokens", np.uint16, {"sc00": 200, "sc01": 80, "sc02": 30}, 1000)
    fs = fsspec.filesystem("file")
    prefixes = {name: str(tmp_path / "my data" / name) for name in docs}  # a space: the fragment quotes it
    fs.makedirs(str(tmp_path / "my data"))
    for name in docs:
        convert_shard(fs, parts(tmp_path / "tokens", name), prefixes[name], np.uint16)
    path = data_path({"sc00": 0.3, "sc01": 0.0, "sc02": 0.5}, prefixes)
    assert path == [0.375, prefixes["sc00"], 0.625, prefixes["sc02"]]
    import shlex

    blend = get_blend_from_list(shlex.split(command_line(path))[1:])
    assert blend == ([prefixes["sc00"], prefixes["sc02"]], [0.375, 0.625])

    class Tokenizer(MegatronTokenizerBase):  # what GPTDataset reads of a tokenizer
        vocab_size, eod, pad = 1000, 0, 1000  # pad: an id no document holds
        tokenize = detokenize = vocab = apply_chat_template = None

        def __init__(self):
            self.unique_identifiers = {"class": "Tokenizer"}

    config = GPTDatasetConfig(random_seed=1, sequence_length=32, blend=blend, split="100,0,0", tokenizer=Tokenizer(),
                              reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False)
    train = BlendedMegatronDatasetBuilder(GPTDataset, [4000, 0, 0], lambda: True, config).build()[0]
    shares = np.bincount(train.dataset_index[:4000], minlength=2) / 4000
    assert shares == pytest.approx([0.375, 0.625], abs=0.01)  # more than sc02 holds: Megatron repeats it
    assert 4000 * 0.625 * 32 > sum(len(d) for d in docs["sc02"])
    tokens = train[0]["tokens"].tolist()
    assert len(tokens) == 32 and set(tokens) <= {int(t) for name in ("sc00", "sc02") for d in docs[name] for t in d}


def test_an_index_of_no_documents_is_the_one_megatrons_builder_writes(tmp_path):
    from climb_ray.megatron import index_bytes

    builder = indexed.IndexedDatasetBuilder(str(tmp_path / "ref.bin"), dtype=np.uint16)
    builder.finalize(str(tmp_path / "ref.idx"))
    assert index_bytes(np.zeros(0, np.int64), np.uint16) == (tmp_path / "ref.idx").read_bytes()
