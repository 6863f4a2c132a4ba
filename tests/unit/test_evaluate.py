import json

import numpy as np
import pytest
import torch

from climb_ray import tokens as tk
from climb_ray.config import ProxyConfig, TargetConfig
from climb_ray.evaluate import (ChoiceTarget, TextTarget, choice_accuracy, load_target, score_targets,
                                text_loss)
from climb_ray.proxy import build_model, train

TINY = ProxyConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, context=64, batch_size=8,
                   steps=150, lr=3e-3, warmup_steps=10)
KW = {"eot": 0, "seq_len": 64, "batch_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def verses(demo_corpus):
    """Bible documents of the demo corpus, cut to their first 14 words: real text to memorise."""
    rows = [json.loads(line) for line in open(demo_corpus)]
    return [" ".join(r["text"].split()[:14]) for r in rows if r["source"] == "bible"][:40]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_text_loss_is_the_models_own_mean_token_loss():
    model = build_model(TINY, 300, seed=0)
    doc = list(np.random.default_rng(0).integers(1, 300, 40))
    ids = torch.tensor([[0] + doc])
    with torch.no_grad():
        expected = float(model(input_ids=ids, labels=ids).loss)
    assert text_loss(model, TextTarget("t", [doc]), **KW) == pytest.approx(expected, rel=1e-5)
    long_doc = list(np.random.default_rng(1).integers(1, 300, 150))  # 3 windows: every token counted once
    loss = text_loss(model, TextTarget("t", [long_doc, doc]), **KW)
    assert 0 < loss < 10


def test_malformed_items_are_counted_and_named_not_crashed_on(tmp_path):
    tok = tk.train_bpe(["a cat is a small animal", "a rock is hard"] * 5, 300)
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"context": "A cat is a", "choices": ["small animal", "kind of rock"], "gold": 0},
        "{not json",
        {"context": "x", "choices": ["only one"], "gold": 0},
        {"context": "x", "choices": ["a", "b"], "gold": 2},
        {"context": 5, "choices": ["a", "b"], "gold": 0},
        {"context": "A rock is", "choices": ["hard", "alive"], "gold": 0},
    ])
    target = load_target(path, tok, TargetConfig())
    assert isinstance(target, ChoiceTarget) and len(target.items) == 2 and target.malformed == 4
    assert target.problems[0].startswith("line 2: not JSON")
    assert "line 4: gold 2 is not an index into 2 choices" in target.problems
    metrics = choice_accuracy(build_model(TINY, 300, seed=0), target, **KW)
    assert metrics["items"] == 2 and metrics["malformed"] == 4


def test_acc_norm_differs_from_acc_where_choice_lengths_differ(tmp_path, verses):
    tok = tk.train_bpe(verses, 400)
    # An untrained model gives every token about the same log-likelihood, so the summed score
    # prefers the short wrong choice while the per-character score prefers the long right one.
    rows = [{"context": v, "choices": ["and it was so that all the people of the land went out", "Lo"], "gold": 0}
            for v in verses[:10]]
    target = load_target(write_jsonl(tmp_path / "mc.jsonl", rows), tok, TargetConfig())
    metrics = choice_accuracy(build_model(TINY, tok.get_vocab_size(), seed=0), target, **KW)
    assert metrics["acc"] == 0.0 and metrics["acc_norm"] == 1.0
    assert target.items[0].choice_chars == [54, 2]  # as written, not " Lo": lm-eval divides by doc_to_choice's text


def test_a_model_trained_on_the_gold_answers_beats_chance(tmp_path, verses):
    tok = tk.train_bpe(verses, 600)
    rng = np.random.default_rng(0)
    heads = [" ".join(v.split()[:8]) for v in verses]
    tails = [" ".join(v.split()[8:]) for v in verses]
    rows = []
    for i in range(len(verses)):
        wrong = rng.choice([j for j in range(len(verses)) if tails[j] != tails[i]], 3, replace=False)
        choices = [tails[i]] + [tails[j] for j in wrong]
        order = rng.permutation(4)
        rows.append({"context": heads[i], "choices": [choices[k] for k in order], "gold": int(np.argmin(order))})
    target = load_target(write_jsonl(tmp_path / "mc.jsonl", rows), tok, TargetConfig())
    docs = np.concatenate(tk.encode_docs(tok, verses, 0, np.uint16)).astype(np.int64)
    starts = rng.integers(0, len(docs) - TINY.context, size=(TINY.steps, TINY.batch_size))
    batches = [np.stack([docs[s:s + TINY.context] for s in row]) for row in starts]
    before = choice_accuracy(build_model(TINY, tok.get_vocab_size(), seed=0), target, **KW)
    model = build_model(TINY, tok.get_vocab_size(), seed=0)
    train(model, batches, TINY, device="cpu")
    after = choice_accuracy(model, target, **KW)
    assert after["acc"] >= 0.6 and after["acc"] > before["acc"] + 0.2  # chance is 0.25


def test_score_is_a_weighted_mean_of_minus_loss_and_accuracy(tmp_path):
    tok = tk.train_bpe(["a cat is a small animal", "a rock is hard"] * 5, 300)
    text = load_target(write_jsonl(tmp_path / "t.jsonl", [{"text": "a cat is hard"}]), tok, TargetConfig())
    mc = load_target(write_jsonl(tmp_path / "mc.jsonl", [{"context": "a", "choices": ["cat", "rock"], "gold": 1}]),
                     tok, TargetConfig())
    model = build_model(TINY, 300, seed=0)
    cfg = TargetConfig(weights=[3.0, 1.0], choice_metric="acc")
    result = score_targets(model, [text, mc], cfg, eot=0, seq_len=64, device="cpu")
    loss, acc = result["targets"][0]["loss"], result["targets"][1]["acc"]
    assert result["direction"] == "higher_is_better"
    assert result["score"] == pytest.approx((3 * -loss + acc) / 4)


def test_a_target_without_text_is_a_clear_error(tmp_path):
    tok = tk.train_bpe(["some text"] * 5, 300)
    with pytest.raises(ValueError, match="target file .* has no text field 'text' .* set target.text_field"):
        load_target(write_jsonl(tmp_path / "t.jsonl", [{"other": "x"}]), tok, TargetConfig())
    with pytest.raises(ValueError, match="holds no documents"):
        load_target(write_jsonl(tmp_path / "e.jsonl", []), tok, TargetConfig())


def test_a_target_glob_over_several_files_reads_at_most_max_docs(tmp_path):
    tok = tk.train_bpe(["some text here"] * 5, 300)
    for part in range(3):
        write_jsonl(tmp_path / f"held{part}.jsonl", [{"text": f"document {part} {i}"} for i in range(4)])
    target = load_target(str(tmp_path / "held*.jsonl"), tok, TargetConfig(max_docs=6))
    assert isinstance(target, TextTarget) and len(target.docs) == 6
    with pytest.raises(ValueError, match="target path .*nothing.* matches no"):
        load_target(str(tmp_path / "nothing*.jsonl"), tok, TargetConfig())
