"""The command line and the configs stay light: no torch until a command makes tensors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from shared import REPO

from phonetune.cli.commands import COMMANDS
from phonetune.cli.main import main


def _modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(done.stdout.split())


def test_every_config_module_imports_without_torch():
    modules = _modules_after(
        "import phonetune.data_pipeline.config, phonetune.model.config, phonetune.model.train_config, "
        "phonetune.search.config, phonetune.search.space_spec, phonetune.job.planner, phonetune.job.clock, "
        "phonetune.model, phonetune.data_pipeline, phonetune.search, phonetune.job"
    )
    assert "phonetune.search.config" in modules and "torch" not in modules


def test_help_lists_every_command_without_importing_any():
    done = subprocess.run([sys.executable, "-m", "phonetune.cli", "--help"], capture_output=True, text=True,
                          check=True, timeout=120)
    for name in COMMANDS:
        assert name in done.stdout
    modules = _modules_after(
        "from phonetune.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "torch" not in modules and "optuna" not in modules
    assert not any(module.startswith("phonetune.cli.commands.") for module in modules)


def test_version_is_the_installed_distributions():
    done = subprocess.run([sys.executable, "-m", "phonetune.cli", "--version"], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip().startswith("phonetune 0.")


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_says_what_the_tool_is_and_each_default_once_where_it_tells_something(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the width a piped `--help` gets, whatever the terminal running pytest
    top = _help(capsys)
    assert "dispatcher" not in top and "phoneme classification" in top
    for command in COMMANDS:
        text = _help(capsys, command)
        assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
        options = text.split("options:", 1)[1]
        # One help entry per option (an option line and its indented continuation lines).
        entries = [entry for entry in re.split(r"\n  (?=-)", options) if entry.strip()]
        for entry in entries:
            assert entry.count("default") <= 1, (command, entry)
    run_help = _help(capsys, "run")
    assert "--budget BUDGET" in run_help and "(default: 1)" in run_help


def test_a_misspelt_option_or_command_gets_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--config", "studies/demo.toml", "--budegt", "5m"])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "did you mean --budget?" in error and "required" not in error
    with pytest.raises(SystemExit):
        main(["serch", "--config", "studies/demo.toml"])
    assert "unknown command 'serch'; did you mean 'search'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an abbreviation argparse accepts is no typo: it reaches argparse
        main(["run", "--conf", "studies/demo.toml"])
    assert "did you mean" not in capsys.readouterr().err


def test_a_study_command_names_the_flag_that_sets_its_data_root(capsys):
    assert main(["search", "--config", str(REPO / "studies" / "demo.toml"), "--set", "data.root=nowhere/demo"]) == 1
    error = capsys.readouterr().err
    assert "nowhere/demo (--set data.root=nowhere/demo)" in error and "--set data.root=ROOT" in error
    assert "--data" not in error  # search has no --data
