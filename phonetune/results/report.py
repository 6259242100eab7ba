"""The study report: one self-contained plotly HTML page that reads like a lab notebook of the search.

Sections, in order: summary, optimization history, hyperparameter importances, parallel coordinates, slices,
learning curves of every trial (pruned ones drawn dashed and cut where the pruner stopped them), accuracy against
parameter count with the budget line, and the full-data fidelity (promoted trials) when a linked study exists.
plotly.js is inlined once in the page head, so the file opens offline and stays one file.

Example::

    search_study, full_study = open_studies(load_study_config("studies/demo.toml"))   # full_study: None before promote
    write_report(search_study, full_study, "report.html", param_budget=20_000_000)
"""

from __future__ import annotations

import html
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from phonetune.atomic import atomic_write_text
from phonetune.model.budget import DEFAULT_PARAM_BUDGET
from phonetune.search import attributes as attrs
from phonetune.search.attributes import SPEARMAN_ATTR, SPEARMAN_COUNT_ATTR
from phonetune.results.export import (
    best_dev_accuracy,
    epoch_curve,
    finished_trials,
    pruned_at_epoch,
)
from phonetune.search.promote import describe_spearman

logger = logging.getLogger(__name__)

# Importance needs a fitted model of value against params; below this many complete trials it is noise.
MIN_TRIALS_FOR_IMPORTANCE = 5
PARALLEL_PARAMS = 6  # parallel coordinates show this many of the most important hyperparameters
SLICE_COLUMNS = 4
SLICE_ROW_PX = 260
LOG_SCALE_PARAMS = ("lr", "weight_decay")  # sampled on a log scale in the shipped studies
INTEGER_PARAMS = ("hidden_layers", "context_frames", "base_width", "time_mask_max_frames", "freq_mask_max_bands")

_STATE_STYLE = {
    TrialState.COMPLETE: {"dash": "solid", "color": "rgba(31,119,180,0.75)", "symbol": "circle"},
    TrialState.PRUNED: {"dash": "dash", "color": "rgba(214,39,40,0.6)", "symbol": "x"},
    TrialState.FAIL: {"dash": "dot", "color": "rgba(127,127,127,0.6)", "symbol": "diamond"},
    TrialState.RUNNING: {"dash": "dot", "color": "rgba(44,160,44,0.6)", "symbol": "triangle-up"},
}


@dataclass(frozen=True)
class Section:
    anchor: str  # HTML id, also the table of contents link
    title: str
    body: str  # HTML fragment: a plotly div or a message


def _figure_html(figure: go.Figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, default_width="100%")


def _message(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def summary_section(study: optuna.Study, full_study: optuna.Study | None, param_budget: int) -> Section:
    trials = finished_trials(study)
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    items = [f"<li>{html.escape(name)}: {count}</li>" for name, count in counts.items() if count]
    lines = [
        f"<p>Study <b>{html.escape(study.study_name)}</b>: {len(trials)} trials; parameter budget "
        f"{param_budget:,}.</p>",
        f"<ul>{''.join(items)}</ul>",
    ]
    complete = _complete(study)
    if complete:
        best = max(complete, key=lambda trial: trial.value)
        params = ", ".join(f"{html.escape(str(k))}={html.escape(str(v))}" for k, v in sorted(best.params.items()))
        param_count = best.user_attrs.get(attrs.PARAM_COUNT)
        size = f", {param_count:,} parameters" if isinstance(param_count, int) else ""
        lines.append(
            f"<p>Best search trial #{best.number}: dev accuracy {best.value:.4f}{size}.</p>"
            f'<p class="params">{params}</p>'
        )
    if full_study is not None:
        full_complete = _complete(full_study)
        lines.append(f"<p>Full-data study <b>{html.escape(full_study.study_name)}</b>: {len(full_complete)} "
                     "promoted trials retrained.</p>")
        final = full_study.user_attrs.get(attrs.ENSEMBLE_ATTR)
        if isinstance(final, dict) and final.get("members"):
            members = [int(member) for member in final["members"]]
            what = (f"ensemble of the full-data runs of search trials {', '.join(map(str, members))}"
                    if len(members) > 1 else f"the full-data run of search trial {members[0]}")
            test = final.get("test_accuracy")
            lines.append(
                f"<p><b>Final model</b>: {html.escape(what)}, {int(final['param_count']):,} parameters; dev accuracy "
                f"{float(final['dev_accuracy']):.4f}, test accuracy "
                f"{'not scored (no test labels)' if test is None else f'<b>{float(test):.4f}</b>'}.</p>"
            )
    return Section("summary", "Summary", "".join(lines))


def history_section(study: optuna.Study) -> Section:
    """Every finished trial's dev accuracy by trial number (pruned ones at the best they reached before the cut),
    and the best complete trial so far."""
    trials = [trial for trial in finished_trials(study) if best_dev_accuracy(trial) is not None]
    if not trials:
        return Section("history", "Optimization history", _message("No trial has finished an epoch yet."))
    figure = go.Figure()
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        shown = [trial for trial in trials if trial.state == state]
        if shown:
            style = _STATE_STYLE[state]
            figure.add_trace(go.Scatter(
                x=[trial.number for trial in shown], y=[best_dev_accuracy(trial) for trial in shown], mode="markers",
                name=state.name if state == TrialState.COMPLETE else "PRUNED (best before the cut)",
                marker={"symbol": style["symbol"], "color": style["color"], "size": 9},
                hovertemplate="trial %{x}<br>dev accuracy %{y:.4f}<extra></extra>",
            ))
    best, steps = -math.inf, []
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            best = max(best, float(trial.value))
        steps.append(best if best > -math.inf else None)
    figure.add_trace(go.Scatter(x=[trial.number for trial in trials], y=steps, mode="lines", name="best so far",
                                line={"shape": "hv", "color": "black"}))
    figure.update_layout(title="Dev accuracy by trial", xaxis_title="trial", yaxis_title="dev accuracy")
    figure.update_xaxes(tickformat="d")
    return Section("history", "Optimization history", _figure_html(figure))


def _importances(study: optuna.Study) -> dict[str, float]:
    with warnings.catch_warnings():
        # Optuna warns per parameter when a value was drawn by fewer than 2 trials; the section already says
        # how many trials it rests on, so one line per parameter on the terminal adds nothing.
        warnings.filterwarnings("ignore", message="Some regimes for parameter")
        return optuna.importance.get_param_importances(study)


def importance_section(study: optuna.Study) -> Section:
    complete = [trial for trial in _complete(study) if trial.params]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return Section(
            "importances",
            "Hyperparameter importances",
            _message(
                f"Importances need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials, but the study has "
                f"{len(complete)}; fitted to fewer, they describe noise. Run more trials to see them."
            ),
        )
    try:
        importances = _importances(study)
    except (RuntimeError, ValueError) as exc:
        # optuna refuses when every complete trial drew the same values (nothing to attribute variance to).
        return Section("importances", "Hyperparameter importances", _message(f"Importances unavailable: {exc}"))
    names = list(reversed(importances))  # plotly draws the first bar at the bottom
    values = [importances[name] for name in names]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", text=[f"{value:.2f}" if value >= 0.005 else "<0.01" for value in values],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    figure.update_layout(
        title=f"Share of dev accuracy variance explained (fANOVA over {len(complete)} complete trials)",
        xaxis={"title": "importance", "range": [0, max(values) * 1.15 if values else 1]},
        yaxis={"tickmode": "array", "tickvals": names, "automargin": True},
        height=120 + 26 * len(names),
    )
    return Section("importances", "Hyperparameter importances", _figure_html(figure))


def _most_important(study: optuna.Study, count: int) -> list[str]:
    try:
        return list(_importances(study))[:count]
    except (RuntimeError, ValueError):
        names = sorted({name for trial in finished_trials(study) for name in trial.params})
        return names[:count]


def _axis_values(name: str, values: list) -> dict:
    """A parallel-coordinates dimension: numbers as they are (log10 for log-scale ones), choices as indexed ticks."""
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        if name in LOG_SCALE_PARAMS and all(value > 0 for value in values):
            return {"label": f"log10 {name}", "values": [math.log10(value) for value in values]}
        return {"label": name, "values": values}
    choices = sorted({str(value) for value in values})
    return {"label": name, "values": [choices.index(str(value)) for value in values],
            "tickvals": list(range(len(choices))), "ticktext": choices}


def parallel_section(study: optuna.Study) -> Section:
    title = "Parallel coordinates"
    trials = [trial for trial in finished_trials(study)
              if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and best_dev_accuracy(trial) is not None]
    if len(trials) < 2:
        return Section("parallel", title, _message("Parallel coordinates need two finished trials."))
    names = [name for name in _most_important(study, PARALLEL_PARAMS)
             if all(name in trial.params for trial in trials)]
    dimensions = [_axis_values(name, [trial.params[name] for trial in trials]) for name in names]
    accuracy = [best_dev_accuracy(trial) for trial in trials]
    dimensions.append({"label": "pruned", "values": [int(trial.state == TrialState.PRUNED) for trial in trials],
                       "tickvals": [0, 1], "ticktext": ["no", "yes"]})
    dimensions.append({"label": "dev accuracy", "values": accuracy})
    figure = go.Figure(go.Parcoords(line={"color": accuracy, "colorscale": "Viridis", "showscale": True},
                                    dimensions=dimensions))
    figure.update_layout(title=f"The {len(names)} most important hyperparameters over {len(trials)} trials "
                               "(pruned ones at the best dev accuracy before the cut)",
                         margin={"l": 80, "r": 80})
    return Section("parallel", title, _figure_html(figure))


def slice_figure(trials: list[FrozenTrial], names: list[str]) -> go.Figure:
    """One small panel per hyperparameter, ``SLICE_COLUMNS`` to a row: dev accuracy against its value."""
    rows = max(1, math.ceil(len(names) / SLICE_COLUMNS))
    figure = make_subplots(rows=rows, cols=SLICE_COLUMNS, subplot_titles=names, vertical_spacing=0.5 / rows,
                           horizontal_spacing=0.06)
    for index, name in enumerate(names):
        row, col = index // SLICE_COLUMNS + 1, index % SLICE_COLUMNS + 1
        for state in (TrialState.COMPLETE, TrialState.PRUNED):
            shown = [trial for trial in trials if trial.state == state and name in trial.params]
            if not shown:
                continue
            style = _STATE_STYLE[state]
            figure.add_trace(go.Scatter(
                x=[trial.params[name] if not isinstance(trial.params[name], bool) else str(trial.params[name])
                   for trial in shown],
                y=[best_dev_accuracy(trial) for trial in shown], mode="markers", name=state.name,
                legendgroup=state.name, showlegend=index == 0,
                customdata=[trial.number for trial in shown],
                marker={"symbol": style["symbol"], "color": style["color"], "size": 7},
                hovertemplate=f"trial %{{customdata}}<br>{name} %{{x}}<br>dev accuracy %{{y:.4f}}<extra></extra>",
            ), row=row, col=col)
        if name in LOG_SCALE_PARAMS:
            figure.update_xaxes(type="log", row=row, col=col)
        elif name in INTEGER_PARAMS:
            figure.update_xaxes(tickformat="d", row=row, col=col)
    figure.update_layout(height=SLICE_ROW_PX * rows + 80, title="Dev accuracy against each hyperparameter "
                         "(pruned trials: x, at the best before the cut)", legend_title="state")
    return figure


def slice_section(study: optuna.Study) -> Section:
    trials = [trial for trial in finished_trials(study)
              if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and best_dev_accuracy(trial) is not None]
    if not trials:
        return Section("slices", "Slices", _message("No trial has finished an epoch yet."))
    names = sorted({name for trial in trials for name in trial.params})
    return Section("slices", "Slices", _figure_html(slice_figure(trials, names)))


def _curve_name(trial: FrozenTrial) -> str:
    """``trial 7``, ``trial 9 (PRUNED)``; a full-data run also names the search trial it retrains."""
    source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
    retrains = f", retrains {source}" if source is not None else ""
    state = "" if trial.state == TrialState.COMPLETE else trial.state.name
    details = ", ".join(part for part in (state, retrains.lstrip(", ")) if part)
    return f"trial {trial.number}" + (f" ({details})" if details else "")


def learning_curve_figure(trials: list[FrozenTrial], title: str) -> go.Figure:
    """Dev accuracy per epoch for every trial; pruned trials dashed and ending in an x where they were cut."""
    figure = go.Figure()
    for trial in trials:
        curve = [point for point in epoch_curve(trial) if point.get("dev_accuracy") is not None]
        if not curve:
            continue
        style = _STATE_STYLE.get(trial.state, _STATE_STYLE[TrialState.FAIL])
        epochs = [int(point["epoch"]) for point in curve]
        accuracies = [float(point["dev_accuracy"]) for point in curve]
        cut = pruned_at_epoch(trial)
        symbols = ["circle"] * (len(curve) - 1) + [style["symbol"]]
        figure.add_trace(
            go.Scatter(
                x=epochs,
                y=accuracies,
                mode="lines+markers",
                name=_curve_name(trial),
                line={"dash": style["dash"], "color": style["color"], "width": 1.5},
                marker={"symbol": symbols, "size": [4] * (len(curve) - 1) + [9], "color": style["color"]},
                hovertemplate=(
                    f"trial {trial.number} ({trial.state.name}"
                    + (f", pruned after epoch {cut}" if cut is not None else "")
                    + ")<br>epoch %{x}<br>dev accuracy %{y:.4f}<extra></extra>"
                ),
            )
        )
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title="dev accuracy", legend_title="trial")
    figure.update_xaxes(tickformat="d", dtick=1)
    return figure


def curves_section(study: optuna.Study) -> Section:
    trials = finished_trials(study)
    if not any(epoch_curve(trial) for trial in trials):
        return Section("curves", "Learning curves", _message("No trial has finished an epoch yet."))
    figure = learning_curve_figure(trials, f"Learning curves of {len(trials)} trials (pruned: dashed, cut at x)")
    return Section("curves", "Learning curves", _figure_html(figure))


def accuracy_vs_params_figure(trials: list[FrozenTrial], param_budget: int) -> go.Figure:
    figure = go.Figure()
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        points = [
            (trial.user_attrs[attrs.PARAM_COUNT], best_dev_accuracy(trial), trial.number)
            for trial in trials
            if trial.state == state and trial.user_attrs.get(attrs.PARAM_COUNT) and best_dev_accuracy(trial) is not None
        ]
        if not points:
            continue
        style = _STATE_STYLE[state]
        figure.add_trace(
            go.Scatter(
                x=[count for count, _, _ in points],
                y=[accuracy for _, accuracy, _ in points],
                customdata=[number for _, _, number in points],
                mode="markers",
                name=state.name,
                marker={"symbol": style["symbol"], "color": style["color"], "size": 9},
                hovertemplate="trial %{customdata}<br>%{x:,} parameters<br>best dev accuracy %{y:.4f}<extra></extra>",
            )
        )
    # The line's own annotation lands at log10(x) on a log axis in plotly, i.e. off the page: placed by hand.
    figure.add_vline(x=param_budget, line={"color": "black", "dash": "dash"})
    figure.add_annotation(x=math.log10(param_budget), xref="x", y=1, yref="paper", text=f"budget {param_budget:,}",
                          showarrow=False, xanchor="right", yanchor="bottom")
    counts = [x for trace in figure.data for x in trace.x]
    low = math.log10(min([*counts, param_budget])) - 0.1
    figure.update_layout(
        title="Best dev accuracy against parameter count",
        xaxis={"title": "parameters", "type": "log", "range": [low, math.log10(param_budget) + 0.15]},
        yaxis_title="best dev accuracy",
    )
    return figure


def params_section(study: optuna.Study, param_budget: int) -> Section:
    figure = accuracy_vs_params_figure(finished_trials(study), param_budget)
    return Section("params", "Accuracy against parameter count", _figure_html(figure))


def fidelity_section(study: optuna.Study, full_study: optuna.Study | None) -> Section:
    title = "Full-data fidelity (promoted trials)"
    if full_study is None:
        return Section("full", title, _message("No trial has been promoted yet: run `phonetune promote`."))
    by_number = {trial.number: trial for trial in finished_trials(study)}
    pairs = []
    for full_trial in _complete(full_study):
        source = by_number.get(full_trial.user_attrs.get(attrs.SOURCE_TRIAL))
        if source is not None and best_dev_accuracy(source) is not None:
            pairs.append((source.number, best_dev_accuracy(source), full_trial.value))
    parts = []
    correlation = full_study.user_attrs.get(SPEARMAN_ATTR)
    count = int(full_study.user_attrs.get(SPEARMAN_COUNT_ATTR, len(pairs)))
    if correlation is not None or count:
        # describe_spearman says plainly when the sample is too small to mean anything.
        parts.append(_message("Spearman rank correlation, subsample vs full-data accuracy: "
                              f"{describe_spearman(correlation, count)}"))
    if pairs:
        scatter = go.Figure(
            go.Scatter(
                x=[search for _, search, _ in pairs],
                y=[full for _, _, full in pairs],
                text=[f"trial {number}" for number, _, _ in pairs],
                mode="markers+text",
                textposition="top center",
                marker={"size": 10},
                hovertemplate="%{text}<br>subsample %{x:.4f}<br>full data %{y:.4f}<extra></extra>",
            )
        )
        scatter.update_layout(
            title="Dev accuracy: search (subsample) vs full training data",
            xaxis_title="search trial best dev accuracy",
            yaxis_title="full-data dev accuracy",
        )
        parts.append(_figure_html(scatter))
    full_trials = finished_trials(full_study)
    if any(epoch_curve(trial) for trial in full_trials):
        parts.append(_figure_html(learning_curve_figure(full_trials, "Learning curves on the full training data")))
    if not parts:
        parts.append(_message("The full-data study has no finished trial yet."))
    return Section("full", title, "".join(parts))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
section {{ margin-bottom: 2.5em; }} .note {{ color: #666; font-style: italic; }}
.params {{ font-family: monospace; font-size: 0.9em; }} nav a {{ margin-right: 1em; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head><body>
<h1>{title}</h1>
<nav>{nav}</nav>
{sections}
</body></html>
"""


def build_sections(
    study: optuna.Study, full_study: optuna.Study | None, param_budget: int
) -> list[Section]:
    return [
        summary_section(study, full_study, param_budget),
        history_section(study),
        importance_section(study),
        parallel_section(study),
        slice_section(study),
        curves_section(study),
        params_section(study, param_budget),
        fidelity_section(study, full_study),
    ]


def render_report(study: optuna.Study, full_study: optuna.Study | None, param_budget: int) -> str:
    sections = build_sections(study, full_study, param_budget)
    title = f"phonetune study report: {study.study_name}"
    nav = "".join(f'<a href="#{section.anchor}">{html.escape(section.title)}</a>' for section in sections)
    body = "\n".join(
        f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>{section.body}</section>'
        for section in sections
    )
    return _PAGE.format(title=html.escape(title), plotlyjs=get_plotlyjs(), nav=nav, sections=body)


def write_report(
    study: optuna.Study,
    full_study: optuna.Study | None,
    out_path: str | Path,
    param_budget: int = DEFAULT_PARAM_BUDGET,
) -> Path:
    """Render the report page and write it atomically to ``out_path``."""
    page = render_report(study, full_study, param_budget)
    path = atomic_write_text(out_path, page)
    logger.debug("wrote the report of study %s (%d KiB) to %s", study.study_name, len(page) // 1024, path)
    return path
