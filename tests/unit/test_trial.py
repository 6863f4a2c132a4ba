"""One proxy trial on real text: the demo sources as clusters, held-out Wikipedia as the target."""

import pytest

from climb_ray.config_io import load_config
from climb_ray.mixture import MixtureError
from climb_ray.trial import ProxyRunner
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def runner(source_shards):
    folder, names, sources, target = source_shards
    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                      [f"target.paths=[{target}]", "proxy.threads=2", "target.max_docs=100"])
    return ProxyRunner(cfg, str(folder)), sources


def weights_on(sources, chosen):
    return [1.0 if s in chosen else 0.0 for s in sources]


@pytest.mark.slow
def test_same_seed_same_mixture_gives_the_identical_score_twice(runner):
    run, sources = runner
    first = run([1, 2, 1, 3, 1], seed=11)
    second = run([1, 2, 1, 3, 1], seed=11)
    assert first["score"] == second["score"] and first["targets"] == second["targets"]
    assert run([1, 2, 1, 3, 1], seed=12)["score"] != first["score"]


@pytest.mark.slow
def test_training_on_the_targets_own_cluster_beats_training_on_unrelated_ones(runner):
    run, sources = runner
    own = run(weights_on(sources, {"wikipedia"}), seed=0)
    unrelated = run(weights_on(sources, {"bible", "dictionary", "python_docs"}), seed=0)
    assert own["score"] > unrelated["score"] + 0.2, (own["score"], unrelated["score"])
    assert own["sequences"][own_name(sources)] == 40 * 16  # steps * batch_size, all from the one cluster


def own_name(sources):
    return f"sc{sources.index('wikipedia'):02d}"


def test_a_mixture_past_the_epoch_cap_is_refused_before_training(runner):
    run, sources = runner
    run.cfg.search.max_epochs = 0.5
    try:
        with pytest.raises(MixtureError, match=f"cluster {own_name(sources)}, which has"):
            run(weights_on(sources, {"wikipedia"}), seed=0)
    finally:
        run.cfg.search.max_epochs = 15.0


def save_gpt2(folder, vocab_size, tokenizer_json=None, n_positions=256, seed=0):
    """A small random GPT-2 (not Llama) saved with save_pretrained, with a fast tokenizer beside it when given."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from climb_ray.tokens import EOT

    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=64, n_layer=2, n_head=2,
                               bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    if tokenizer_json:
        PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), eos_token=EOT).save_pretrained(folder)
    return str(folder)


def pretrained_config(target, model, *extra):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                       [f"target.paths=[{target}]", "proxy.threads=2", "target.max_docs=50", "proxy.init=pretrained",
                        f"proxy.init_from={model}", f"tokens.tokenizer={model}", *extra])


@pytest.mark.slow
def test_a_pretrained_gpt2_is_continued_on_the_mixture_and_scored(source_shards, tmp_path):
    """The run's tokenizer saved beside a random GPT-2; one copy pre-trained 40 steps on the target's
    own cluster, then both continued 8 steps on an even mixture: the pre-trained one scores better."""
    from climb_ray.proxy import build_model, train

    folder, names, sources, target = source_shards
    random_gpt2 = save_gpt2(tmp_path / "random", 2048, folder / "tokenizer.json")
    runner = ProxyRunner(pretrained_config(target, random_gpt2, "proxy.steps=8"), str(folder))
    pre = ProxyRunner(pretrained_config(target, random_gpt2, "proxy.steps=40"), str(folder))
    model = build_model(pre.cfg.proxy, runner.vocab_size, seed=0)
    stream, pre = pre.stream(weights_on(sources, {"wikipedia"}), seed=1), pre.cfg.proxy
    train(model, (stream.batch(i, pre.batch_size) for i in range(pre.steps)), pre, device="cpu")
    model.save_pretrained(tmp_path / "pretrained")
    (tmp_path / "pretrained" / "tokenizer.json").write_text((tmp_path / "random" / "tokenizer.json").read_text())
    (tmp_path / "pretrained" / "tokenizer_config.json").write_text(
        (tmp_path / "random" / "tokenizer_config.json").read_text())
    even = [1.0] * len(sources)
    scratch = runner(even, seed=0)
    continued = ProxyRunner(pretrained_config(target, tmp_path / "pretrained", "proxy.steps=8"), str(folder))
    continued = continued(even, seed=0)
    assert scratch["parameters"] == continued["parameters"] == sum(p.numel() for p in model.parameters())
    assert continued["train_tokens"] == 8 * 16 * 128 and continued["train_loss_last"] < scratch["train_loss_last"]
    assert continued["score"] > scratch["score"] + 0.2, (continued["score"], scratch["score"])


@pytest.mark.parametrize("vocab, own_tokenizer, positions, named", [
    (1000, False, 256, "embeds 1000 token ids, the run's tokenizer has 2048: set tokens.tokenizer"),
    (4096, True, 256, "tokens.tokenizer is not the tokenizer of proxy.init_from"),
    (2048, False, 64, "proxy.context=128: proxy.init_from="),
])
def test_a_pretrained_model_the_runs_tokens_do_not_fit_is_refused_in_one_line(source_shards, tmp_path, vocab,
                                                                                own_tokenizer, positions, named):
    from climb_ray import tokens as tk
    from climb_ray.config import ConfigError

    folder, names, sources, target = source_shards
    other = None
    if own_tokenizer:  # a tokenizer of the model's own, not the run's
        other = tmp_path / "other.json"
        other.write_text(tk.train_bpe(["a different corpus, a different vocabulary"] * 20, 300).to_str())
    model = save_gpt2(tmp_path / "gpt2", vocab, other, n_positions=positions)
    with pytest.raises(ConfigError, match=named) as err:
        ProxyRunner(pretrained_config(target, model), str(folder))
    assert "\n" not in str(err.value)
