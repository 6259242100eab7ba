"""The report page of a real study (``phonetune report``) and its figures: every section, plotly inlined once,
learning curves cut where the pruner stopped a trial, axes that follow the study's space, the sizes named the same
way everywhere, every final model on the accuracy-vs-parameters plot, importances with their spread or withheld."""

from __future__ import annotations

import math
import re

import optuna
import pytest
from optuna.trial import TrialState
from plotly.offline import get_plotlyjs

from phonetune.cli.main import main
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.results.figures import accuracy_vs_params_figure, learning_curve_figure, slice_figure
from phonetune.results.importances import MIN_TRIALS_FOR_IMPORTANCE
from phonetune.results.report import importance_section
from phonetune.results.sizes import Sizes, sizes_of
from phonetune.search import attributes as attrs
from phonetune.search.space_spec import Choice, log_scale_params
from phonetune.search.study import open_studies


def test_report_without_out_is_written_beside_the_study_not_where_the_command_ran(searched, tmp_path, monkeypatch,
                                                                                    capsys):
    path, config, study = searched
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--config", str(path)]) == 0
    written = config.paths.artifacts_path / "report.html"
    assert capsys.readouterr().out.strip() == f"report: {written.resolve()}"
    assert '<section id="summary">' in written.read_text() and list(tmp_path.iterdir()) == []


def test_report_page_holds_every_section_and_plotly_once(searched, tmp_path):
    path, config, study = searched
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    for anchor in ("summary", "leaderboard", "history", "importances", "parallel", "slices", "curves", "params",
                   "full"):
        assert f'<section id="{anchor}">' in page
    assert page.count(get_plotlyjs()[:500]) == 1, "plotly.js must be inlined exactly once"
    assert "<script src=" not in page, "the page must not load anything from the network"
    # every figure section carries a plotly graph; importances are withheld below 20 complete trials, saying why
    complete = sum(trial.state == TrialState.COMPLETE for trial in study.trials)
    assert complete < MIN_TRIALS_FOR_IMPORTANCE
    for anchor in ["history", "parallel", "slices", "curves", "params"]:
        body = page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert "Plotly.newPlot" in body, f"section {anchor} has no figure"
    importances = page.split('<section id="importances">', 1)[1].split("</section>", 1)[0]
    assert "Plotly.newPlot" not in importances
    assert f"at least 20 complete trials, but the study has {complete}" in importances
    assert "named different hyperparameters the most important" in importances
    assert "No trial has been promoted yet" in page and "No final model yet" in page
    # The sizes, by their names; and no float a person reads with more than 4 significant digits.
    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    assert "<b>HW1P2 limit</b> 20,000,000 parameters" in summary and "parameter budget" not in summary
    for number in re.findall(r"\d+\.\d+", summary):
        assert len(number.replace(".", "").lstrip("0")) <= 4, number
    # The slices are a grid of small panels, one per hyperparameter, that fits the page (4 to a row).
    names = sorted({name for trial in study.trials for name in trial.params})
    figure = slice_figure([t for t in study.trials if t.state.is_finished()], names, log_scale_params(config.space))
    assert {annotation.text for annotation in figure.layout.annotations} == set(names)
    assert figure.layout.height <= 260 * math.ceil(len(names) / 4) + 80
    # Axis scales come from the study's [space]: lr has log = true, context_frames is an integer hyperparameter.
    axes = {name: figure.layout[f"xaxis{index + 1 if index else ''}"] for index, name in enumerate(names)}
    assert axes["lr"].type == "log" and axes["context_frames"].tickformat == "d"
    assert [name for name, axis in axes.items() if axis.type == "log"] == ["lr"]


def test_slices_read_at_a_glance(searched):
    """Log ticks are whole numbers at 1, 2 and 5 per decade (never plotly's bare "4 5 6 7 8 9 0.001 2 3"), an axis
    spans the space's range (one point is drawn where it lies in it), and the legend has one entry per state."""
    _, config, study = searched
    trials = [t for t in study.trials if t.state.is_finished()]
    bounds = {name: spec.bounds() for name, spec in config.space.items() if not isinstance(spec, Choice)}
    figure = slice_figure(trials, ["lr", "context_frames"], log_scale_params(config.space), bounds)
    lr_axis = figure.layout.xaxis
    assert list(lr_axis.ticktext) == ["0.001", "0.002", "0.005", "0.01"] and list(lr_axis.tickvals) == [
        0.001, 0.002, 0.005, 0.01]
    assert lr_axis.range[0] < math.log10(1e-3) and lr_axis.range[1] > math.log10(1e-2)
    assert sorted(trace.name for trace in figure.data if trace.showlegend) == sorted(
        {trace.name for trace in figure.data})
    alone = slice_figure(trials[:1], ["context_frames"], (), bounds)
    low, high = alone.layout.xaxis.range
    assert low < 0 < 3 < high and high - low < 4  # the space's 0..3, not a unit box around the one point


def test_every_final_model_is_on_the_accuracy_against_parameters_plot_with_the_sizes_named(finished, tmp_path):
    path, config = finished
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    search, full = open_studies(config)
    final = full.user_attrs[attrs.ENSEMBLE_ATTR]
    figure = accuracy_vs_params_figure(list(search.trials), sizes_of(search), list(full.trials), final)
    by_name = {trace.name: trace for trace in figure.data}
    runs = sorted(trial.user_attrs[attrs.PARAM_COUNT] for trial in full.trials)
    assert sorted(by_name["full-data run"].x) == runs
    assert list(by_name["final model"].x) == [final["param_count"]]
    assert list(by_name["final model"].y) == [final["dev_accuracy"]]
    (limit,) = [shape for shape in figure.layout.shapes if shape.type == "line"]  # the cap equals the limit here
    assert limit.x0 == DEFAULT_PARAM_LIMIT
    assert [item.text for item in figure.layout.annotations] == [f"HW1P2 limit {DEFAULT_PARAM_LIMIT:,}"]
    # The report links the final model's dev diagnostics and its metadata, relative to the page.
    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    links = re.findall(r'href="([^"]+)"', summary)
    assert any(link.endswith("dev-score/confusion.html") for link in links)
    assert any(link.endswith("model_metadata.json") for link in links)
    assert all((out.parent / link).is_file() for link in links), links
    leaderboard = page.split('<section id="leaderboard">', 1)[1].split("</section>", 1)[0]
    assert leaderboard.count("<tr") == len(full.trials) + 2  # the header, every run, the ensemble


def test_a_screen_names_its_size_cap_and_planned_size():
    """Under `phonetune run` a study records three sizes, and the plot draws a line for each, labelled."""
    sizes = Sizes(hw1p2_limit=DEFAULT_PARAM_LIMIT, size_cap=231_285, planned_size=200_000)
    figure = accuracy_vs_params_figure([], sizes)
    labels = [item.text for item in figure.layout.annotations]
    assert labels == ["HW1P2 limit 20,000,000", "size cap 231,285", "planned size 200,000"]
    ticks = list(figure.layout.xaxis.ticktext)
    assert "200k" in ticks and "20M" in ticks and all(not text.isdigit() or len(text) > 1 for text in ticks)

def test_learning_curves_cut_pruned_trials_and_budget_line(searched):
    _, config, study = searched
    figure = learning_curve_figure(study.trials, "curves")
    by_trial = {int(re.search(r"trial (\d+)", trace.hovertemplate).group(1)): trace for trace in figure.data}
    assert set(by_trial) == {trial.number for trial in study.trials}
    # One legend entry per state, however many trials; the hover names the trial.
    assert sorted(trace.name for trace in figure.data if trace.showlegend) == sorted({t.name for t in figure.data})
    for trial in study.trials:
        trace = by_trial[trial.number]
        assert list(trace.y) == [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        if trial.state == TrialState.PRUNED:
            assert trace.line.dash == "dash" and len(trace.x) < config.fidelity.trial_epochs
        else:
            assert trace.line.dash == "solid" and len(trace.x) == config.fidelity.trial_epochs

    assert figure.layout.xaxis.dtick == 1  # epochs are whole numbers
    scatter = accuracy_vs_params_figure(study.trials, sizes_of(study))
    (line,) = [shape for shape in scatter.layout.shapes if shape.type == "line"]
    assert line.x0 == line.x1 == config.param_limit
    # Its label sits on the line (a log axis places annotations at log10 of x) and inside the axis range.
    (label,) = [item for item in scatter.layout.annotations if "HW1P2 limit" in item.text]
    assert label.x == pytest.approx(math.log10(config.param_limit))
    low, high = scatter.layout.xaxis.range
    assert low < label.x < high
    plotted = sorted(x for trace in scatter.data for x in trace.x)
    assert plotted == sorted(trial.user_attrs[attrs.PARAM_COUNT] for trial in study.trials)


def test_importances_are_withheld_below_twenty_trials_and_shown_with_their_spread_above():
    def objective(trial):
        width = trial.suggest_float("width", 0.0, 1.0)
        noise = trial.suggest_float("noise", 0.0, 1.0)
        return width + 0.01 * noise

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=MIN_TRIALS_FOR_IMPORTANCE - 1)
    section = importance_section(study)
    assert "Plotly.newPlot" not in section.body
    assert f"at least 20 complete trials, but the study has {MIN_TRIALS_FOR_IMPORTANCE - 1}" in section.body
    study.optimize(objective, n_trials=5)
    section = importance_section(study)
    assert "Plotly.newPlot" in section.body and "bootstrap resamples" in section.body
    assert '"error_x":{"array":' in section.body.replace(" ", "")
    assert "first in 100%" in section.body  # width explains the accuracy in every resample


def test_slices_and_parallel_coordinates_draw_only_the_hyperparameters_the_study_compared(searched):
    """Issue 36, item 4: a hyperparameter every trial held at one value compares nothing; the screen of `make demo`
    drew 19 slices of which 12 were a column of points over one value. Those are named under the slices instead."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from phonetune.results.report import parallel_section, slice_section

    _, config, _ = searched
    study = optuna.create_study(direction="maximize")
    distributions = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "context_frames": IntDistribution(0, 30),
                     "activation": CategoricalDistribution(["relu", "gelu"]), "dropout": FloatDistribution(0.0, 0.5)}
    for number, (lr, context) in enumerate([(0.002, 10), (0.004, 15), (0.008, 10), (0.004, 20)]):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr, "context_frames": context, "activation": "gelu", "dropout": 0.15},
            distributions=distributions, value=0.7 + 0.01 * number))
    slices = slice_section(study, config.space).body
    drawn = set(re.findall(r'"text":"([a-z_]+)"', slices))
    assert {"lr", "context_frames"} <= drawn and not {"activation", "dropout"} & drawn
    assert "Held at one value in every trial, so not drawn: activation gelu, dropout 0.15." in slices
    parallel = parallel_section(study, log_scale_params(config.space)).body
    assert "Plotly.newPlot" in parallel and '"label":"activation"' not in parallel
    assert '"label":"context_frames"' in parallel


def test_a_study_whose_one_trial_was_cut_after_one_evaluation_draws_no_one_point_curve(searched):
    """Issue 36, item 4: a direct plan's screen is one trial cut after its first evaluation (FAIL). The report drew
    a "curve" of one point on a 0-1.5 axis and said under Slices that no trial had finished an epoch."""
    from optuna.distributions import FloatDistribution

    from phonetune.results.report import curves_section, slice_section

    _, config, _ = searched
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.002}, distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
        intermediate_values={1: 0.55}, state=TrialState.FAIL))
    curves = curves_section(study).body
    assert "Plotly.newPlot" not in curves and "no trial of this study reported two evaluations" in curves
    slices = slice_section(study, config.space).body
    assert "no trial completed (trial 0 was cut after 1 evaluation(s), FAIL)" in slices
    assert "No trial has finished an epoch yet" not in slices
    # Two evaluations make a curve.
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.004}, distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
        intermediate_values={1: 0.55, 2: 0.6}, value=0.6))
    assert "Plotly.newPlot" in curves_section(study).body
    assert "Learning curves of 2 trials" in curves_section(study).body
