"""target.tasks: lm-evaluation-harness tasks scored by the in-process scorer give lm-eval's own numbers."""

import json
import os
import re
import sys

import pytest
import torch

from climb_ray import tokens as tk
from climb_ray.config import ConfigError, TargetConfig
from climb_ray.config_io import load_config
from climb_ray.evaluate import check_targets, score_targets
from climb_ray.lm_eval_tasks import load_tasks, task_accuracy
from climb_ray.objective import target_components

pytest.importorskip("lm_eval")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROWS = [{"q": f"Item {i}: what is a {w}", "opts": ["small animal", "kind of rock that is hard", "dog", w],
         "label": i % 4} for i, w in enumerate("cat rock tree river house bird stone fish lamp door cup hill".split())]
YAML = """task: toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{q}}}}\\nAnswer:"
doc_to_choice: "{{{{opts}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""
WINO_ROWS = [{"ctxs": [f"The {a} hid from the {b} because the {a}", f"The {a} hid from the {b} because the {b}"],
              "rest": "was afraid.", "label": i % 2}
             for i, (a, b) in enumerate(zip("cat rock tree bird fish lamp".split(), "dog rain fox cold boy owl".split()))]
WINO_YAML = """task: toy_wino
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: label
doc_to_choice: "{{{{ctxs}}}}"
doc_to_target: rest
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A local task YAML over a local JSONL, and a tiny random Llama with its tokenizer, saved as lm-eval loads them."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("toy")
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (d / "tasks").mkdir()
    (d / "tasks" / "toy.yaml").write_text(YAML.format(data=d / "data.jsonl"))
    (d / "wino.jsonl").write_text("".join(json.dumps(r) + "\n" for r in WINO_ROWS))  # WinoGrande's partial scoring:
    (d / "tasks" / "wino.yaml").write_text(WINO_YAML.format(data=d / "wino.jsonl"))  # the option in the context
    tok = tk.train_bpe([r["q"] + " " + " ".join(r["opts"]) for r in ROWS] * 3 + [w["ctxs"][0] for w in WINO_ROWS], 300)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=tk.EOT).save_pretrained(d / "model")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                 max_position_embeddings=256)).save_pretrained(d / "model")
    return d, tok


@pytest.mark.parametrize("name, shots", [("toy_mc", 0), ("toy_mc", 2), ("toy_wino", 0)])
def test_the_fast_scorer_gives_lm_evals_own_numbers(toy, name, shots):
    import lm_eval
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM

    d, tok = toy
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={d / 'model'},dtype=float32", tasks=[name],
                                  task_manager=TaskManager(include_path=str(d / "tasks"), include_defaults=False),
                                  num_fewshot=shots, limit=10, log_samples=True, device="cpu", batch_size=4)
    theirs = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    t = TargetConfig(tasks=[name], task_dir=str(d / "tasks"), num_fewshot=[shots], max_items=10)
    [target] = load_tasks(t, tok, eot=0)
    model = AutoModelForCausalLM.from_pretrained(d / "model", dtype=torch.float32)
    ours = task_accuracy(model, target, eot=0, seq_len=256, batch_size=8, device="cpu")

    if name == "toy_mc":
        assert [args for s in theirs for args in s["arguments"]][0][0].count("Answer:") == shots + 1
    else:
        assert theirs[0]["arguments"][0][1] == theirs[0]["arguments"][1][1] == " was afraid."
    lls = _lls(model, [pair for _, pairs in target.docs for pair in pairs])
    assert lls == pytest.approx([r[0] for s in theirs for r in s["filtered_resps"]], abs=1e-4)
    assert ours["picks"] == [s["acc"] for s in theirs] and ours["items"] == len(theirs) > 5
    reported = {m.split(",")[0]: v for m, v in out["results"][name].items() if m in ("acc,none", "acc_norm,none")}
    assert {m: ours[m] for m in ("acc", "acc_norm") if m in ours} == reported and reported
    assert name != "toy_mc" or shots or ours["acc"] != ours["acc_norm"]  # the items tell the two apart


def _lls(model, pairs):
    from climb_ray.evaluate import loglikelihoods

    return loglikelihoods(model, pairs, seq_len=256, batch_size=8, device="cpu")


def test_a_task_yaml_path_is_a_component_named_by_its_file_and_weighed_after_the_paths(toy, tmp_path):
    d, tok = toy
    text = tmp_path / "held.jsonl"
    text.write_text(json.dumps({"text": "what is a cat"}) + "\n")
    t = TargetConfig(paths=[str(text)], tasks=[str(d / "tasks" / "toy.yaml")], weights=[1.0, 3.0], max_items=4)
    assert target_components(t) == ["held", "toy"]
    [target] = load_tasks(t, tok, eot=0)
    assert target.name == "toy" and len(target.docs) == 4 and all(len(pairs) == 4 for _, pairs in target.docs)
    from climb_ray.evaluate import load_target
    from climb_ray.proxy import build_model
    from climb_ray.config import ProxyConfig

    model = build_model(ProxyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, context=64),
                        tok.get_vocab_size(), seed=0)
    scores = score_targets(model, [load_target(str(text), tok, t), target], t, eot=0, seq_len=64, device="cpu")
    task = scores["targets"][1]
    assert task["kind"] == "task" and task["score"] == task["acc_norm"] and task["items"] == 4
    assert scores["score"] == pytest.approx((scores["targets"][0]["score"] + 3 * task["score"]) / 4)


@pytest.mark.slow  # a name not in task_dir has lm-eval index its own tasks
def test_an_unknown_task_is_named_with_how_to_give_a_local_one(toy):
    d, tok = toy
    with pytest.raises(ConfigError, match=re.escape("unknown lm-eval task 'toy_nope'; give a task YAML's path")):
        load_tasks(TargetConfig(tasks=["toy_mc", "toy_nope"], task_dir=str(d / "tasks")), tok, eot=0)


def test_without_lm_eval_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=re.escape("pip install 'climb-ray[eval]'")):
        check_targets(TargetConfig(tasks=["arc_easy"]))


@pytest.mark.parametrize("overrides, named", [
    (["target.paths=[a.jsonl]", "target.tasks=[arc_easy]", "target.weights=[1]"], "1 weights for 1 target.paths and 1"),
    (["target.tasks=[arc_easy,piqa]", "target.num_fewshot=[0,1,2]"], "target.num_fewshot=[0, 1, 2]"),
    (["target.tasks=[arc_easy]", "target.num_fewshot=[-1]"], "target.num_fewshot=[-1]"),
])
def test_task_settings_that_do_not_fit_are_config_errors(overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(None, overrides)


def test_a_task_whose_data_is_missing_is_named(toy, tmp_path):
    d, tok = toy
    (tmp_path / "gone.yaml").write_text(YAML.format(data=tmp_path / "gone.jsonl"))
    with pytest.raises(ConfigError, match=re.escape(f"target.tasks: '{tmp_path / 'gone.yaml'}' does not load: ")):
        load_tasks(TargetConfig(tasks=[str(tmp_path / "gone.yaml")]), tok, eot=0)


def test_a_task_reporting_neither_acc_nor_acc_norm_is_refused_before_any_proxy_trains(toy, tmp_path):
    d, tok = toy
    yaml = YAML.format(data=d / "data.jsonl").replace("toy_mc", "toy_mcc").split("metric_list:")[0]
    (tmp_path / "mcc.yaml").write_text(yaml + "metric_list:\n  - metric: mcc\n")
    with pytest.raises(ConfigError, match=r"reports \['mcc'\]; a target task needs acc or acc_norm"):
        load_tasks(TargetConfig(tasks=[str(tmp_path / "mcc.yaml")]), tok, eot=0)


def test_task_yamls_and_their_folder_reach_trials_as_absolute_paths(monkeypatch, tmp_path):
    from climb_ray.config import Config
    from climb_ray.stages.search import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = Config()
    cfg.target.tasks, cfg.target.task_dir = ["tasks/mine.yaml", "arc_easy"], "tasks"
    t = with_absolute_paths(cfg).target
    assert t.tasks == [str(tmp_path / "tasks" / "mine.yaml"), "arc_easy"] and t.task_dir == str(tmp_path / "tasks")
