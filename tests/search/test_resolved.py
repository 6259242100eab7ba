"""The resolved study: a StudyConfig written as one complete TOML loads back equal, with no overrides needed."""

from __future__ import annotations

import dataclasses

import pytest
from shared import REPO

from phonetune.search.config import StudyConfig, load_study_config
from phonetune.search.resolved import write_resolved_study

CASES = {
    "demo": ["study.n_trials=6", "space.context_frames.high=30", 'data.root="elsewhere"', "fidelity.trial_epochs=2",
             "space.lr.high=3e-3", 'sampler.kind="random"'],
    "default": ['study.storage="postgresql://phonetune@db-host/phonetune"', "train.grad_clip=0.5",
                'space.batch_size=[512, 1024]', "pruner.reduction_factor=4", "study.param_limit=5_000_000"],
}


@pytest.mark.parametrize("study", ["demo", "default"])
@pytest.mark.parametrize("with_overrides", [False, True], ids=["file", "overrides"])
def test_a_written_study_loads_back_equal_field_by_field(tmp_path, study, with_overrides):
    overrides = CASES[study] if with_overrides else []
    config = load_study_config(REPO / "studies" / f"{study}.toml", overrides)
    written = write_resolved_study(config, tmp_path / "resolved.toml")
    loaded = load_study_config(written)  # no overrides: the file holds everything
    assert loaded.source == str(written) and loaded.overrides == ()
    for field in dataclasses.fields(StudyConfig):
        if field.name not in ("source", "overrides"):
            assert getattr(loaded, field.name) == getattr(config, field.name), field.name
    assert loaded.warm_start and [entry.name for entry in loaded.warm_start] == [e.name for e in config.warm_start]
    assert loaded.paths == config.paths
    # Written again from the loaded config, the file is the same but for the header naming its source.
    again = write_resolved_study(loaded, tmp_path / "again.toml")
    body = [line for line in written.read_text().splitlines() if not line.startswith("#")]
    assert [line for line in again.read_text().splitlines() if not line.startswith("#")] == body
