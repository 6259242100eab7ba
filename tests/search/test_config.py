"""Study config loading: every problem collected and named, the budget checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared import REPO

from phonetune.errors import ConfigError, ParamLimitError
from phonetune.search.config import load_study_config
from phonetune.search.space_spec import Choice, FloatRange, IntRange


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_problems_are_collected_and_name_file_table_and_value(tmp_path):
    path = write(
        tmp_path,
        """
[study]
name = "s"
n_trails = 3
[space]
context_frames = {low = 0, high = 64}
activation = ["relu", "swish"]
depth = 3
[data]
context_frames = 4
[pruner]
kind = "patient"
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_study_config(path)
    message = str(caught.value)
    assert f"context_frames must be between 0 and 50, but got 64 ({path}, [space.context_frames])" in message
    assert "unknown key 'n_trails'" in message and f"{path} [study]" in message
    assert "unknown hyperparameter 'depth'" in message
    assert "['swish']" in message and "[space.activation]" in message
    assert "[data]: context_frames is decided by the search; set it in [space.context_frames]" in message
    assert "kind must be one of ['median', 'asha', 'hyperband', 'none'], but got 'patient'" in message


def test_param_limit_may_be_lowered_but_not_raised(tmp_path):
    low = load_study_config(write(tmp_path, '[study]\nname = "s"\nparam_limit = 5_000_000\n'))
    assert low.param_limit == 5_000_000
    with pytest.raises(ConfigError, match="param_limit must be at most 20,000,000 .* but got 25,000,000"):
        load_study_config(write(tmp_path, '[study]\nname = "s"\nparam_limit = 25_000_000\n'))


def test_the_old_name_param_budget_still_loads_with_one_line_naming_the_new_one(tmp_path, caplog):
    path = write(tmp_path, '[study]\nname = "s"\nparam_budget = 5_000_000\n')
    with caplog.at_level("WARNING"):
        assert load_study_config(path).param_limit == 5_000_000
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: [study] param_budget is now called param_limit; it loads under the new name"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert load_study_config(path, ["study.param_budget=1_000_000"]).param_limit == 1_000_000
    assert "--set study.param_budget is now --set study.param_limit" in caplog.text
    # Both names at once is one setting given twice: refused by name, not silently resolved.
    both = write(tmp_path, '[study]\nname = "s"\nparam_budget = 5_000_000\nparam_limit = 4_000_000\n')
    with pytest.raises(ConfigError, match="unknown key 'param_budget'"):
        load_study_config(both)


def test_impossible_budget_names_the_smallest_model(tmp_path):
    path = write(
        tmp_path,
        """
[study]
name = "s"
[space]
hidden_layers = {low = 6, high = 8}
base_width = {low = 2048, high = 4096}
context_frames = {low = 30, high = 50}
""",
    )
    with pytest.raises(ParamLimitError) as caught:
        load_study_config(path)
    message = str(caught.value)
    assert "param_limit=20,000,000" in message
    assert "hidden_layers=6, base_width=2048, context_frames=30" in message
    # The smallest shape (pyramid) of that corner: the count is stated, and it is above the budget.
    count = int(message.split(" has ")[1].split(" parameters")[0].replace(",", ""))
    assert count > 20_000_000


def test_context_too_wide_for_any_width_is_a_budget_error(tmp_path):
    path = write(tmp_path, '[study]\nname = "s"\nparam_budget = 50_000\n[space]\ncontext_frames = {low = 0, high = 50}\n'
                 "hidden_layers = {low = 0, high = 2}\nbase_width = {low = 8, high = 64}\n")
    with pytest.raises(ParamLimitError, match="context_frames=50 .* even at base_width=8"):
        load_study_config(path)


def test_forms_fixed_choices_ranges_and_overrides(tmp_path):
    path = write(
        tmp_path,
        """
[study]
name = "s"
[space]
hidden_layers = 3
activation = ["relu", "gelu"]
lr = {low = 1e-4, high = 1e-2, log = true}
weight_decay = {low = 1e-6, high = 1e-3, log = true, zero = true}
""",
    )
    config = load_study_config(path, ["space.lr.high=0.05", "study.n_trials=7", 'space.batch_size=[256, 512]'])
    space = config.space
    assert isinstance(space["hidden_layers"], IntRange) and space["hidden_layers"].is_fixed()
    assert space["hidden_layers"].fixed_value() == 3
    assert isinstance(space["activation"], Choice) and space["activation"].choices == ["relu", "gelu"]
    assert isinstance(space["lr"], FloatRange) and space["lr"].high == 0.05 and space["lr"].log
    assert space["weight_decay"].bounds() == (0.0, 1e-3)
    assert space["batch_size"].choices == [256, 512]
    # Omitted hyperparameters stay fixed at the run config defaults.
    assert space["optimizer"].is_fixed() and space["optimizer"].fixed_value() == config.train.optimizer
    assert config.study.n_trials == 7
    assert config.paths.storage_url == f"sqlite:///{Path('studies/s.db').resolve()}"
    assert config.paths.trial_dir(4) == Path("studies/s/trials/4").resolve()
    assert config.study_name("full") == "s-full"


def test_cmaes_refuses_categorical_choices(tmp_path):
    path = write(tmp_path, '[study]\nname = "s"\n[sampler]\nkind = "cmaes"\n[space]\nactivation = ["relu", "tanh"]\n')
    with pytest.raises(ConfigError, match="cmaes.*activation.*fix each to one value"):
        load_study_config(path)


def test_range_given_as_list_and_fixed_plus_range_are_rejected(tmp_path):
    path = write(tmp_path, '[study]\nname = "s"\n[space]\nlr = [0.1, 0.01]\ndropout = {value = 0.1, low = 0.0}\n')
    with pytest.raises(ConfigError) as caught:
        load_study_config(path)
    assert "lr is a float range: write a table with low/high" in str(caught.value)
    assert "dropout must give either low/high or a fixed value, not both" in str(caught.value)


@pytest.mark.parametrize("name", ["demo", "default"])
def test_shipped_study_files_load(name):
    config = load_study_config(REPO / "studies" / f"{name}.toml")
    assert config.name == name
    assert config.param_limit <= 20_000_000
    chosen = [spec for spec in config.space.values() if not spec.is_fixed()]
    assert len(chosen) >= 10  # the shipped studies search, they do not fix everything


def test_a_typo_gets_a_did_you_mean_and_a_set_typo_is_blamed_on_the_set(tmp_path):
    path = write(tmp_path, '[study]\nname = "s"\nn_trails = 3\n[samplr]\nkind = "tpe"\n[space]\nlearning_rate = 0.1\n')
    with pytest.raises(ConfigError) as caught:
        load_study_config(path)
    message = str(caught.value)
    assert "unknown key 'n_trails'; did you mean 'n_trials'?" in message
    assert "unknown table [samplr]; did you mean 'sampler'?" in message

    demo = REPO / "studies" / "demo.toml"
    with pytest.raises(ConfigError) as caught:
        load_study_config(demo, ["study.n_trail=4", "space.lr.hihg=1e-2", "data.context_frames=3"])
    message = str(caught.value)
    assert "--set study.n_trail=4: [study] has no key 'n_trail'; did you mean 'n_trials'?" in message
    assert "--set space.lr.hihg=1e-2: [space.lr] has no key 'hihg'; did you mean 'high'?" in message
    assert "--set data.context_frames=3: [data] context_frames is decided by the search" in message
    assert "demo.toml [study]" not in message  # the file is not blamed for what the command line said
    with pytest.raises(ConfigError) as caught:
        load_study_config(demo, ["study.n_trials=many"])
    assert "(from --set study.n_trials=many)" in str(caught.value)
