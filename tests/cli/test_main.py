"""The command line and the configs stay light: no torch until a command makes tensors."""

from __future__ import annotations

import subprocess
import sys

from phonetune.cli.commands import COMMANDS


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
