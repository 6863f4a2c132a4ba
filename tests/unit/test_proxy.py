import dataclasses
import re

import numpy as np
import pytest
import torch

from climb_ray.config import ConfigError, ProxyConfig
from climb_ray.config_io import load_config
from climb_ray.proxy import build_model, lr_at, train
from tests.conftest import ROOT

TINY = ProxyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, context=16, batch_size=4,
                   steps=60, lr=3e-3, warmup_steps=5)


def test_cosine_schedule_warms_up_to_the_peak_then_decays_to_the_floor():
    p = dataclasses.replace(TINY, steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(s, p) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-4)


def test_wsd_schedule_holds_the_peak_then_decays_linearly_over_the_last_steps():
    p = dataclasses.replace(TINY, steps=100, warmup_steps=10, lr=1e-3, schedule="wsd", decay_fraction=0.2,
                            min_lr_ratio=0.0)
    lrs = [lr_at(s, p) for s in range(100)]
    assert all(lr == pytest.approx(1e-3) for lr in lrs[9:80])
    assert lrs[80] < 1e-3 and lrs[-1] == pytest.approx(0.0)
    assert np.allclose(np.diff(lrs[80:]), np.diff(lrs[80:])[0])


def test_paper_proxy_shapes_have_the_sizes_the_config_names():
    paper = load_config(ROOT / "climb_ray" / "configs" / "paper.yaml").proxy
    big = dataclasses.replace(paper, hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=2816)
    with torch.device("meta"):
        sizes = [sum(t.numel() for t in build_model(p, 32_000, seed=0).parameters()) for p in (paper, big)]
    assert sizes[0] == pytest.approx(62.6e6, rel=0.01) and sizes[1] == pytest.approx(341e6, rel=0.01)


def repeating_batches(n):
    rng = np.random.default_rng(0)
    pattern = rng.integers(1, 50, size=TINY.context)
    return [np.tile(pattern, (TINY.batch_size, 1)) for _ in range(n)]


def test_training_learns_a_repeated_sequence():
    model = build_model(TINY, 50, seed=0)
    stats = train(model, repeating_batches(TINY.steps), TINY, device="cpu")
    assert stats.steps == TINY.steps and stats.tokens == TINY.steps * TINY.batch_size * TINY.context
    assert stats.losses[-1] < 0.3 * stats.losses[0]


def test_training_reports_the_mean_loss_of_every_n_steps_and_trains_the_same_as_without():
    p = dataclasses.replace(TINY, steps=10)
    seen = []
    a, b = build_model(p, 50, seed=1), build_model(p, 50, seed=1)
    stats = train(a, repeating_batches(10), p, device="cpu", every=4,
                  report=lambda step, loss: seen.append((step, loss)))
    plain = train(b, repeating_batches(10), p, device="cpu")
    assert [step for step, _ in seen] == [4, 8]  # not after step 10: only whole groups of 4
    assert [loss for _, loss in seen] == pytest.approx([np.mean(stats.losses[0:4]), np.mean(stats.losses[4:8])])
    assert stats.losses == plain.losses


def test_same_seed_same_batches_give_identical_weights():
    a, b = build_model(TINY, 50, seed=1), build_model(TINY, 50, seed=1)
    train(a, repeating_batches(5), TINY, device="cpu")
    train(b, repeating_batches(5), TINY, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_training_continues_from_a_saved_checkpoint(tmp_path):
    first = build_model(TINY, 50, seed=0)
    train(first, repeating_batches(30), TINY, device="cpu")
    first.save_pretrained(tmp_path / "ckpt")
    resumed = build_model(dataclasses.replace(TINY, init="pretrained", init_from=str(tmp_path / "ckpt")), 50, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(first.parameters(), resumed.parameters()))
    fresh = build_model(TINY, 50, seed=5)
    ids = torch.tensor(repeating_batches(1)[0])
    with torch.no_grad():
        assert resumed(input_ids=ids, labels=ids).loss < fresh(input_ids=ids, labels=ids).loss


def test_a_bad_checkpoint_is_named(tmp_path):
    with pytest.raises(ConfigError, match="proxy.init_from='.*empty': cannot load a causal LM") as err:
        build_model(dataclasses.replace(TINY, init="pretrained", init_from=str(tmp_path / "empty")), 50, seed=0)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, named", [
    (["proxy.init=pretrained"], "proxy.init='pretrained': set proxy.init_from"),
    (["proxy.init_from=/models/m"], "proxy.init_from='/models/m': proxy.init is 'scratch'"),
    (["proxy.init=pretrained", "proxy.init_from=/models/m"], "tokens.tokenizer='bpe': a pretrained proxy"),
    (["proxy.init=pretrained", "proxy.init_from=m", "tokens.tokenizer=m", "proxy.command=run.sh"],
     "proxy.init='pretrained': applies to the built-in proxy"),
])
def test_pretrained_settings_that_cannot_work_are_config_errors(overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(None, overrides)


def test_a_non_llama_causal_lm_is_continued_in_float32(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                                    eos_token_id=0)).to(
        torch.bfloat16).save_pretrained(tmp_path / "gpt2")
    p = dataclasses.replace(TINY, init="pretrained", init_from=str(tmp_path / "gpt2"))
    model = build_model(p, 50, seed=0)
    assert type(model).__name__ == "GPT2LMHeadModel" and next(model.parameters()).dtype == torch.float32
    stats = train(model, repeating_batches(TINY.steps), p, device="cpu")
    assert stats.losses[-1] < 0.5 * stats.losses[0]
    with pytest.raises(ConfigError, match="embeds 64 token ids, the run's tokenizer has 100"):
        build_model(p, 100, seed=0)
    with pytest.raises(ConfigError, match="proxy.context=64: proxy.init_from=.* takes at most 32 positions"):
        build_model(dataclasses.replace(p, context=64), 50, seed=0)
