"""The report's plotly figures, each built from a list of trials (``report.py`` arranges them into the page).

Trial states keep one style everywhere (``STATE_STYLE``): COMPLETE solid circles, PRUNED dashed lines ending in an x
where the pruner cut them, at the best dev accuracy they reached before the cut. An axis is logarithmic for a
hyperparameter the study samples on a log scale (``log = true`` in its ``[space]``: ``space_spec.log_scale_params``)
and shows whole numbers for an integer one (``space_spec.INTEGER_PARAMS``).

Example::

    trials = [trial for trial in study.get_trials() if trial.state.is_finished()]
    slice_figure(trials, ["lr", "dropout"], log_params=log_scale_params(config.space)).show()
"""

from __future__ import annotations

import math
from typing import Collection

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from phonetune.search import attributes as attrs
from phonetune.search.records import best_dev_accuracy, epoch_curve, pruned_at_epoch
from phonetune.search.space_spec import INTEGER_PARAMS

SLICE_COLUMNS = 4
SLICE_ROW_PX = 260

STATE_STYLE = {
    TrialState.COMPLETE: {"dash": "solid", "color": "rgba(31,119,180,0.75)", "symbol": "circle"},
    TrialState.PRUNED: {"dash": "dash", "color": "rgba(214,39,40,0.6)", "symbol": "x"},
    TrialState.FAIL: {"dash": "dot", "color": "rgba(127,127,127,0.6)", "symbol": "diamond"},
    TrialState.RUNNING: {"dash": "dot", "color": "rgba(44,160,44,0.6)", "symbol": "triangle-up"},
}


def history_figure(trials: list[FrozenTrial]) -> go.Figure:
    """Every finished trial's dev accuracy by trial number (pruned ones at the best they reached before the cut),
    and the best complete trial so far."""
    figure = go.Figure()
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        shown = [trial for trial in trials if trial.state == state]
        if shown:
            style = STATE_STYLE[state]
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
    return figure


def importance_figure(importances: dict[str, float], complete_count: int) -> go.Figure:
    """One bar per hyperparameter: its share of the dev accuracy variance (fANOVA), most important at the top."""
    names = list(reversed(importances))  # plotly draws the first bar at the bottom
    values = [importances[name] for name in names]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", text=[f"{value:.2f}" if value >= 0.005 else "<0.01" for value in values],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    figure.update_layout(
        title=f"Share of dev accuracy variance explained (fANOVA over {complete_count} complete trials)",
        xaxis={"title": "importance", "range": [0, max(values) * 1.15 if values else 1]},
        yaxis={"tickmode": "array", "tickvals": names, "automargin": True},
        height=120 + 26 * len(names),
    )
    return figure


def _axis_values(name: str, values: list, log_params: Collection[str]) -> dict:
    """A parallel-coordinates dimension: numbers as they are (log10 for log-scale ones), choices as indexed ticks."""
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        if name in log_params and all(value > 0 for value in values):
            return {"label": f"log10 {name}", "values": [math.log10(value) for value in values]}
        return {"label": name, "values": values}
    choices = sorted({str(value) for value in values})
    return {"label": name, "values": [choices.index(str(value)) for value in values],
            "tickvals": list(range(len(choices))), "ticktext": choices}


def parallel_figure(trials: list[FrozenTrial], names: list[str], log_params: Collection[str] = ()) -> go.Figure:
    """One axis per hyperparameter in ``names``, then pruned or not and the dev accuracy, one line per trial."""
    dimensions = [_axis_values(name, [trial.params[name] for trial in trials], log_params) for name in names]
    accuracy = [best_dev_accuracy(trial) for trial in trials]
    dimensions.append({"label": "pruned", "values": [int(trial.state == TrialState.PRUNED) for trial in trials],
                       "tickvals": [0, 1], "ticktext": ["no", "yes"]})
    dimensions.append({"label": "dev accuracy", "values": accuracy})
    figure = go.Figure(go.Parcoords(line={"color": accuracy, "colorscale": "Viridis", "showscale": True},
                                    dimensions=dimensions))
    figure.update_layout(title=f"The {len(names)} most important hyperparameters over {len(trials)} trials "
                               "(pruned ones at the best dev accuracy before the cut)",
                         margin={"l": 80, "r": 80})
    return figure


def slice_figure(trials: list[FrozenTrial], names: list[str], log_params: Collection[str] = ()) -> go.Figure:
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
            style = STATE_STYLE[state]
            figure.add_trace(go.Scatter(
                x=[trial.params[name] if not isinstance(trial.params[name], bool) else str(trial.params[name])
                   for trial in shown],
                y=[best_dev_accuracy(trial) for trial in shown], mode="markers", name=state.name,
                legendgroup=state.name, showlegend=index == 0,
                customdata=[trial.number for trial in shown],
                marker={"symbol": style["symbol"], "color": style["color"], "size": 7},
                hovertemplate=f"trial %{{customdata}}<br>{name} %{{x}}<br>dev accuracy %{{y:.4f}}<extra></extra>",
            ), row=row, col=col)
        if name in log_params:
            figure.update_xaxes(type="log", row=row, col=col)
        elif name in INTEGER_PARAMS:
            figure.update_xaxes(tickformat="d", row=row, col=col)
    figure.update_layout(height=SLICE_ROW_PX * rows + 80, title="Dev accuracy against each hyperparameter "
                         "(pruned trials: x, at the best before the cut)", legend_title="state")
    return figure


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
        style = STATE_STYLE.get(trial.state, STATE_STYLE[TrialState.FAIL])
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
        style = STATE_STYLE[state]
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


def fidelity_figure(pairs: list[tuple[int, float, float]]) -> go.Figure:
    """Promoted trials as (search trial number, search accuracy, full-data accuracy): search against full data."""
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
    return scatter
