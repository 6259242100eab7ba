"""After the search, read-only views of a real study: the ablation sheet, the report page and the dashboard.

One small study is searched once for the module (tiny corpus, a median pruner so some trials are cut short); every
test reads it back through optuna and compares with what the commands produced.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from plotly.offline import get_plotlyjs
from search_study import write_study
from shared import free_port

from phonetune.cli.main import main
from phonetune.results.figures import accuracy_vs_params_figure, learning_curve_figure, slice_figure
from phonetune.results.report import importance_section
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.space_spec import log_scale_params
from phonetune.search.study import open_study
from phonetune.search.worker import run_worker

TRIAL_EPOCHS = 3


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(study file, StudyConfig, study) of 6 finished trials, some pruned after their first epochs."""
    tmp_path = tmp_path_factory.mktemp("after_search")
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(
        tmp_path,
        corpus.root,
        **{
            "study.n_trials": 6,
            "fidelity.trial_epochs": TRIAL_EPOCHS,
            "pruner.kind": "median",
            "pruner.n_startup_trials": 2,
            "pruner.n_warmup_steps": 0,
        },
    )
    config = load_study_config(path)
    run_worker(config, create=True)
    study = open_study(config)
    states = {trial.state for trial in study.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED} <= states, f"the fixture needs both kinds, got {states}"
    return path, config, study


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _same_number(text: str, value: float | int | None) -> bool:
    """``text`` is ``value`` as the sheet writes numbers: exact for integers, else at 4 significant digits (half a
    unit of the 4th digit away at most, and no more digits than that written)."""
    if value is None:
        return text == ""
    if isinstance(value, int) or float(value).is_integer():
        return float(text) == float(value)
    digits = text.lstrip("-0.").replace(".", "").rstrip("0")
    tolerance = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 3)
    return "e" not in text.lower() and len(digits) <= 4 and abs(float(text) - float(value)) <= tolerance * 1.0001


def test_export_rows_match_the_storage(searched, tmp_path, capsys):
    path, config, _ = searched
    out = tmp_path / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    study = optuna.load_study(study_name=config.name, storage=config.paths.storage_url)
    trials = {trial.number: trial for trial in study.trials}
    columns, rows = _read_csv(out)
    param_names = sorted({name for trial in trials.values() for name in trial.params})
    for name in ["number", "state", "trained_on", "promoted_from", *param_names, "base_width", "layer_widths",
                 "param_count", "dev_accuracy", "dev_accuracy_epoch_1", "test_accuracy", "pruned_at_epoch",
                 "epochs_run", "wall_seconds", "frames_per_s"]:
        assert name in columns, f"column {name} missing from {columns}"
    assert sorted(int(row["number"]) for row in rows) == sorted(trials)

    for row in rows:
        trial = trials[int(row["number"])]
        assert row["state"] == trial.state.name
        assert row["trained_on"] == "subsample" and row["promoted_from"] == ""
        depth = trial.params["hidden_layers"]
        # What the model does not use is blank: the sampler drew it, but no layer applies it.
        unused = set()
        if depth == 0:
            unused |= {"width_shape", "batchnorm", "batchnorm_layers", "dropout", "activation", "base_width"}
        if trial.params.get("batchnorm") == "none":
            unused.add("batchnorm_layers")
        for name in param_names:
            if name not in trial.params or name in unused:
                assert row[name] == "", (name, row[name])
            elif isinstance(trial.params[name], str):
                assert row[name] == trial.params[name]
            else:
                assert _same_number(row[name], trial.params[name]), (name, row[name], trial.params[name])
        widths = row["layer_widths"].split("-")
        if depth == 0:
            assert row["layer_widths"] == "none" and row["base_width"] == ""
        else:
            base = trial.user_attrs[attrs.BASE_WIDTH]
            assert int(row["base_width"]) == base and len(widths) == depth
            assert all(int(width) % 8 == 0 for width in widths)
            if trial.params.get("width_shape", "cylinder") == "cylinder" or depth == 1:
                assert widths == [str(base)] * depth
        assert int(row["param_count"]) == trial.user_attrs[attrs.PARAM_COUNT]
        reached = max(trial.intermediate_values.values())
        expected_best = trial.value if trial.state == TrialState.COMPLETE else reached
        assert _same_number(row["dev_accuracy"], expected_best)
        assert _same_number(row["dev_accuracy_epoch_1"], trial.intermediate_values[1])
        assert row["test_accuracy"] == ""
        assert int(row["epochs_run"]) == len(trial.intermediate_values)
        if trial.state == TrialState.PRUNED:
            assert int(row["pruned_at_epoch"]) == max(trial.intermediate_values) < TRIAL_EPOCHS
        else:
            assert row["pruned_at_epoch"] == ""
            assert int(row["epochs_run"]) == TRIAL_EPOCHS
        assert _same_number(row["wall_seconds"], trial.user_attrs[attrs.WALL_SECONDS])
        assert _same_number(row["frames_per_s"], trial.user_attrs[attrs.FRAMES_PER_S])


def test_export_marginals_summarise_each_value_pruned_trials_included(searched, tmp_path):
    path, config, study = searched
    out = tmp_path / "ablation.csv"
    assert main(["export", "--config", str(path), "--out", str(out)]) == 0
    _, marginals = _read_csv(tmp_path / "ablation_marginals.csv")
    for value in ("relu", "tanh"):
        drawn = [t for t in study.trials if t.params.get("activation") == value and t.params["hidden_layers"] > 0]
        if not drawn:
            continue
        (row,) = [r for r in marginals if r["parameter"] == "activation" and r["value"] == value]
        complete = [t.value for t in drawn if t.state == TrialState.COMPLETE]
        reached = [t.value if t.state == TrialState.COMPLETE else max(t.intermediate_values.values()) for t in drawn]
        assert int(row["trials"]) == len(drawn)
        assert int(row["complete"]) == len(complete)
        assert int(row["pruned"]) == sum(t.state == TrialState.PRUNED for t in drawn)
        assert _same_number(row["best_dev_accuracy"], max(reached))
        first = [t.intermediate_values[1] for t in drawn]
        assert _same_number(row["mean_dev_accuracy_epoch_1"], sum(first) / len(first))
        if complete:
            assert _same_number(row["mean_dev_accuracy_complete"], sum(complete) / len(complete))
    # Every row compares its trials after epoch 1, so none is blank, pruned-only values included.
    assert marginals and all(row["mean_dev_accuracy_epoch_1"] != "" for row in marginals)
    # lr is continuous: a few ranges whose counts cover every finished trial once.
    lr_rows = [r for r in marginals if r["parameter"] == "lr"]
    assert 1 < len(lr_rows) <= 4 and sum(int(r["trials"]) for r in lr_rows) == len(study.trials)
    for r in lr_rows:
        low, high = (float(edge) for edge in r["value"].split("-"))
        # edges as written: 4 significant digits of the lowest and highest value drawn, 2 in between
        inside = [t for t in study.trials if low * (1 - 5e-4) <= t.params["lr"] <= high * (1 + 5e-4)]
        assert len(inside) >= int(r["trials"])


def test_report_page_holds_every_section_and_plotly_once(searched, tmp_path):
    path, config, study = searched
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    for anchor in ("summary", "history", "importances", "parallel", "slices", "curves", "params", "full"):
        assert f'<section id="{anchor}">' in page
    assert page.count(get_plotlyjs()[:500]) == 1, "plotly.js must be inlined exactly once"
    assert "<script src=" not in page, "the page must not load anything from the network"
    # every figure section carries a plotly graph; importances only from 5 complete trials, else said plainly
    complete = sum(trial.state == TrialState.COMPLETE for trial in study.trials)
    figures = ["history", "parallel", "slices", "curves", "params"] + (["importances"] if complete >= 5 else [])
    for anchor in figures:
        body = page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert "Plotly.newPlot" in body, f"section {anchor} has no figure"
    if complete < 5:
        assert f"at least 5 complete trials, but the study has {complete}" in page
    assert "No trial has been promoted yet" in page
    # The slices are a grid of small panels, one per hyperparameter, that fits the page (4 to a row).
    names = sorted({name for trial in study.trials for name in trial.params})
    figure = slice_figure([t for t in study.trials if t.state.is_finished()], names, log_scale_params(config.space))
    assert {annotation.text for annotation in figure.layout.annotations} == set(names)
    assert figure.layout.height <= 260 * math.ceil(len(names) / 4) + 80
    # Axis scales come from the study's [space]: lr has log = true, context_frames is an integer hyperparameter.
    axes = {name: figure.layout[f"xaxis{index + 1 if index else ''}"] for index, name in enumerate(names)}
    assert axes["lr"].type == "log" and axes["context_frames"].tickformat == "d"
    assert [name for name, axis in axes.items() if axis.type == "log"] == ["lr"]


def test_learning_curves_cut_pruned_trials_and_budget_line(searched):
    _, config, study = searched
    figure = learning_curve_figure(study.trials, "curves")
    by_trial = {int(re.search(r"trial (\d+)", trace.hovertemplate).group(1)): trace for trace in figure.data}
    assert set(by_trial) == {trial.number for trial in study.trials}
    for trial in study.trials:
        trace = by_trial[trial.number]
        assert trace.name.split(" (")[0] == f"trial {trial.number}"  # named by trial in the legend
        assert list(trace.y) == [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        if trial.state == TrialState.PRUNED:
            assert trace.line.dash == "dash" and len(trace.x) < TRIAL_EPOCHS
        else:
            assert trace.line.dash == "solid" and len(trace.x) == TRIAL_EPOCHS

    assert figure.layout.xaxis.dtick == 1  # epochs are whole numbers
    scatter = accuracy_vs_params_figure(study.trials, config.param_budget)
    (line,) = [shape for shape in scatter.layout.shapes if shape.type == "line"]
    assert line.x0 == line.x1 == config.param_budget
    # Its label sits on the line (a log axis places annotations at log10 of x) and inside the axis range.
    (label,) = [item for item in scatter.layout.annotations if "budget" in item.text]
    assert label.x == pytest.approx(math.log10(config.param_budget))
    low, high = scatter.layout.xaxis.range
    assert low < label.x < high
    plotted = sorted(x for trace in scatter.data for x in trace.x)
    assert plotted == sorted(trial.user_attrs[attrs.PARAM_COUNT] for trial in study.trials)


def test_importances_fall_back_to_a_message_with_too_few_trials():
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 0.0, 1.0), n_trials=2)
    section = importance_section(study)
    assert "Plotly.newPlot" not in section.body
    assert "at least 5 complete trials" in section.body and "has 2" in section.body


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_dashboard_serves_the_study_over_http(searched):
    path, config, study = searched
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "phonetune.cli", "dashboard", "--config", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/" in first_line, first_line + process.stderr.read()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                listing = _get_json(f"{base}/api/studies")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        (summary,) = [s for s in listing["study_summaries"] if s["study_name"] == config.name]
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}")
        assert detail["name"] == config.name
        assert len(detail["trials"]) == len(study.trials)
        stored = {trial.number: trial.state.name for trial in study.trials}
        served = {trial["number"]: trial["state"] for trial in detail["trials"]}
        assert {number: state.upper() for number, state in served.items()} == stored
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dashboard_refuses_an_unknown_study(searched, capsys):
    path, _, _ = searched
    assert main(["dashboard", "--config", str(path), "--set", "study.name=nosuch", "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert "'nosuch'" in error and "tiny" in error
