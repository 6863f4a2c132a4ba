import dataclasses

import pytest
import yaml

from climb_ray.config import Config, ConfigError
from climb_ray.config_checks import validate
from climb_ray.config_io import load_config, to_yaml
from tests.conftest import ROOT

PRESETS = ROOT / "climb_ray" / "configs"


def test_defaults_are_valid_and_the_search_defaults_are_what_measured_best():
    cfg = validate(Config())
    assert cfg.cluster.k_init == 1000
    assert cfg.search.schedule == [56, 19, 19, 18] and cfg.search.answer == "confirmed"
    assert cfg.search.acquisition == "ucb" and cfg.predictor.standardize and cfg.predictor.ensemble == 5
    assert cfg.predictor.learning_rate == 0.01 and cfg.predictor.max_depth == 4
    assert cfg.serve.host == "127.0.0.1"


def test_the_paper_preset_holds_the_papers_search_and_predictor():
    from climb_ray.config_io import load_config

    cfg = load_config(PRESETS / "paper.yaml")
    s, p = cfg.search, cfg.predictor
    assert s.schedule == [64, 32, 16] and s.acquisition == "paper" and s.answer == "best" and s.top_pool_min == 128
    assert s.local_fraction == 0 and s.n_candidates == 100_000
    assert not p.standardize and p.ensemble == 1 and p.reg_alpha == 1 and p.valid_fraction == 0.1


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_presets_load_and_the_jobs_copies_are_the_same_files(name):
    cfg = load_config(PRESETS / f"{name}.yaml")
    assert (ROOT / "jobs" / "configs" / f"{name}.yaml").read_text() == (PRESETS / f"{name}.yaml").read_text()
    assert cfg.run_dir == f"runs/{name}"


def test_every_config_field_has_a_one_line_comment():
    source = (ROOT / "climb_ray" / "config.py").read_text().splitlines()
    for section in dataclasses.fields(Config):
        cls = section.type if isinstance(section.type, type) else type(getattr(Config(), section.name))
        if not dataclasses.is_dataclass(cls):
            continue
        for f in dataclasses.fields(cls):
            line = next(l for l in source if l.strip().startswith(f"{f.name}:"))
            assert "#" in line, f"{cls.__name__}.{f.name} has no comment"


def test_overrides_are_typed_from_the_field():
    cfg = load_config(None, ["cluster.k_init=200", "proxy.lr=1e-3", "search.schedule=[8,4,4]",
                             "corpus.paths=a.jsonl,b.jsonl", "export.overwrite=true", "seed=7"])
    assert cfg.cluster.k_init == 200 and cfg.proxy.lr == 1e-3
    assert cfg.search.schedule == [8, 4, 4]
    assert cfg.corpus.paths == ["a.jsonl", "b.jsonl"]
    assert cfg.export.overwrite is True and cfg.seed == 7


@pytest.mark.parametrize("override, named", [
    ("cluster.k_init=-3", "cluster.k_init=-3"),
    ("cluster.k_init=many", "cluster.k_init='many'"),
    ("cluster.backend=gpu", "cluster.backend='gpu'"),
    ("predictor.valid_fraction=1.5", "predictor.valid_fraction=1.5"),
    ("export.overwrite=maybe", "export.overwrite='maybe'"),
    ("search.schedule=[8,0]", "search.schedule=[8, 0]"),
    ("tokens.sample=most", "tokens.sample='most'"),
    ("tokens.sample=0", "tokens.sample='0'"),
    ("tokens.sample=_1", "tokens.sample='_1'"),
    ("tokens.sample=²", "tokens.sample='²'"),
    ("proxy.num_heads=3", "proxy.hidden_size=512"),
    ("cluster.kinit=5", "cluster.kinit"),
    ("clusters.k_init=5", "clusters"),
    ("k_init", "k_init"),
])
def test_bad_values_are_errors_that_name_the_field_and_value(override, named):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert named in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_field_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean cluster.k_init"):
        load_config(None, ["cluster.kinit=5"])


def test_yaml_file_is_read_then_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cluster:\n  k_init: 64\nsearch:\n  schedule: [4, 2]\n")
    cfg = load_config(path, ["cluster.k_init=32"])
    assert cfg.cluster.k_init == 32 and cfg.search.schedule == [4, 2]


def test_yaml_with_unknown_key_or_wrong_shape_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clustr:\n  k_init: 64\n")
    with pytest.raises(ConfigError, match="clustr"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_written_config_reads_back_the_same(tmp_path):
    cfg = load_config(PRESETS / "demo.yaml", ["cluster.k_init=17"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text())["cluster"]["k_init"] == 17


@pytest.mark.parametrize("override, message", [
    ("target.weights=[nan]", "target.weights=\\[nan\\]: must be finite"),
    ("target.weights=[inf]", "target.weights=\\[inf\\]: must be finite"),
    ("seed=-1", "seed=-1: must be at least 0"),
    ("export.seed=-3", "export.seed=-3: must be at least 0"),
])
def test_values_that_would_fail_late_are_refused_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["target.paths=[target.jsonl]", override])


def test_the_readmes_worked_config_loads_and_its_token_budget_is_the_one_quoted(tmp_path):
    """The README's worked config is a real config: every field exists and passes its check, and the
    per-proxy token count its comment quotes is what the fields give."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("A worked config"):]
    block = block[block.index("```yaml") + len("```yaml"):]
    path = tmp_path / "worked.yaml"
    path.write_text(block[:block.index("```")])
    cfg = load_config(path)
    assert cfg.corpus.paths and cfg.target.paths and cfg.target.tasks and cfg.proxy.init == "pretrained"
    assert len(cfg.target.weights) == len(cfg.target.paths) + len(cfg.target.tasks)
    assert f"= {cfg.proxy.tokens / 1e6:.1f}M tokens per proxy" in text
