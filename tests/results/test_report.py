"""The report page of a real study (``phonetune report``) and its figures: every section, plotly inlined once,
learning curves cut where the pruner stopped a trial, axes that follow the study's space."""

from __future__ import annotations

import math
import re

import optuna
import pytest
from optuna.trial import TrialState
from plotly.offline import get_plotlyjs

from phonetune.cli.main import main
from phonetune.results.figures import accuracy_vs_params_figure, learning_curve_figure, slice_figure
from phonetune.results.report import importance_section
from phonetune.search import attributes as attrs
from phonetune.search.space_spec import log_scale_params


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
            assert trace.line.dash == "dash" and len(trace.x) < config.fidelity.trial_epochs
        else:
            assert trace.line.dash == "solid" and len(trace.x) == config.fidelity.trial_epochs

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
