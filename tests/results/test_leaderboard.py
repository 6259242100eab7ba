"""The leaderboard of a finished study (``phonetune leaderboard``): one row per final run and per chosen ensemble,
each number against the storage and, for a run's test accuracy, against scoring that run's own submission."""

from __future__ import annotations

import re

import pytest

from phonetune.cli.main import main
from phonetune.search import attributes as attrs
from phonetune.search.study import open_studies


def _rows(text: str) -> list[dict[str, str]]:
    lines = text.strip().splitlines()
    assert lines[0].startswith("leaderboard")
    header = re.split(r"\s{2,}", lines[1].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[2:]]


def test_leaderboard_lists_every_final_run_and_the_ensemble_with_where_each_came_from(finished, capsys, tmp_path):
    path, config = finished
    assert main(["leaderboard", "--config", str(path)]) == 0
    rows = _rows(capsys.readouterr().out)
    search, full = open_studies(config)
    final = full.user_attrs[attrs.ENSEMBLE_ATTR]
    runs = {trial.user_attrs[attrs.SOURCE_TRIAL]: trial for trial in full.trials}
    sources = {trial.number: trial for trial in search.trials}
    assert final["chosen"] == "ensemble" and len(rows) == len(runs) + 1
    assert [float(row["dev_accuracy"]) for row in rows] == sorted((float(row["dev_accuracy"]) for row in rows),
                                                                  reverse=True)
    by_model = {row["model"]: row for row in rows}
    for source, run in runs.items():
        row = by_model[f"run of trial {source}"]
        assert row["params"] == f"{run.user_attrs[attrs.PARAM_COUNT]:,}"
        assert row["epochs"] == f"{config.fidelity.full_epochs:.2f}"
        assert float(row["dev_accuracy"]) == pytest.approx(run.value, abs=5e-5)
        assert float(row["test_accuracy"]) == pytest.approx(final["member_test_accuracy"][str(source)], abs=5e-5)
        assert "final" not in row or row["final"] == ""
        warm_start = sources[source].user_attrs.get(attrs.WARM_START)
        assert row["from"] == (f"warm start {warm_start}" if warm_start else "sampler")
    assert by_model["run of trial 0"]["from"] == "warm start starter"
    members = "+".join(str(member) for member in final["members"])
    ensemble = by_model[f"ensemble of {members}"]
    assert ensemble["final"] == "yes" and ensemble["params"] == f"{final['param_count']:,}"
    # By its argmax, as every run's row: the submission's labels may be decoded as sequences (model/decode.py).
    assert float(ensemble["test_accuracy"]) == pytest.approx(final["test_argmax_accuracy"], abs=5e-5)

    # A run's test accuracy is its own submission's score, not the ensemble's.
    source = final["members"][-1]
    checkpoint = config.paths.trial_dir(source, attrs.FULL_FIDELITY) / "best.pt"
    submission = tmp_path / "alone.csv"
    assert main(["predict", "--checkpoint", str(checkpoint), "--data", config.data.root, "--out", str(submission)]) == 0
    assert main(["score", "--submission", str(submission), "--labels",
                 f"{config.data.root}/{config.data.test_split}-labels"]) == 0
    scored = float(re.search(r"accuracy[:= ]+([0-9.]+)", capsys.readouterr().out).group(1))
    assert float(by_model[f"run of trial {source}"]["test_accuracy"]) == pytest.approx(scored, abs=5e-5)
