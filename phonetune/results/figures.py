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
from typing import Any, Collection, Mapping, Sequence

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from phonetune.results.formatting import log_ticks
from phonetune.results.sizes import Sizes
from phonetune.search import attributes as attrs
from phonetune.search.records import best_dev_accuracy, epoch_curve, pruned_at_epoch
from phonetune.search.space_spec import INTEGER_PARAMS

SLICE_COLUMNS = 4
SLICE_ROW_PX = 260
SLICE_TICKS = 4  # labels a small panel's log axis holds without crowding

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
    figure.update_layout(title="Each trial's dev accuracy by its network's argmax (the search's objective, on its share of dev)",
                         xaxis_title="trial", yaxis_title="dev accuracy")
    figure.update_xaxes(tickformat="d")
    return figure


def importance_figure(importances: dict[str, tuple[float, float, float]], complete_count: int,
                      resamples: int) -> go.Figure:
    """One bar per hyperparameter, most important at the top: its mean importance (PED-ANOVA, Optuna's default:
    how far the best trials' values sit from all trials') over ``resamples`` bootstrap resamples of the complete trials, with one standard deviation as the error bar;
    ``importances`` maps a name to (mean, standard deviation, share of resamples where it ranked first)."""
    names = list(reversed(importances))  # plotly draws the first bar at the bottom
    means = [importances[name][0] for name in names]
    spreads = [importances[name][1] for name in names]
    firsts = [importances[name][2] for name in names]
    figure = go.Figure(go.Bar(
        x=means, y=names, orientation="h", error_x={"type": "data", "array": spreads, "visible": True},
        text=[f"{mean:.2f} ± {spread:.2f}" + (f", first in {first:.0%}" if first else "")
              for mean, spread, first in zip(means, spreads, firsts)],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.3f} (mean over resamples)<extra></extra>",
    ))
    figure.update_layout(
        title=f"Importance for dev accuracy (PED-ANOVA over {complete_count} complete trials; mean ± sd over "
              f"{resamples} bootstrap resamples)",
        xaxis={"title": "importance", "range": [0, max(m + e for m, e in zip(means, spreads)) * 1.5 if means else 1]},
        yaxis={"tickmode": "array", "tickvals": names, "automargin": True},
        height=140 + 28 * len(names),
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
    figure.update_layout(title=f"{len(names)} hyperparameters over {len(trials)} trials "
                               "(pruned ones at the best dev accuracy before the cut)",
                         margin={"l": 80, "r": 80})
    return figure


def slice_figure(trials: list[FrozenTrial], names: list[str], log_params: Collection[str] = (),
                 bounds: Mapping[str, tuple[float, float]] | None = None) -> go.Figure:
    """One small panel per hyperparameter, ``SLICE_COLUMNS`` to a row: dev accuracy against its value. A numeric
    axis spans the space's range for it (``bounds``), so one point sits where it lies in the range."""
    bounds = bounds or {}
    rows = max(1, math.ceil(len(names) / SLICE_COLUMNS))
    figure = make_subplots(rows=rows, cols=SLICE_COLUMNS, subplot_titles=names, vertical_spacing=0.5 / rows,
                           horizontal_spacing=0.06)
    for index, name in enumerate(names):
        row, col = index // SLICE_COLUMNS + 1, index % SLICE_COLUMNS + 1
        values = []
        for state in (TrialState.COMPLETE, TrialState.PRUNED):
            shown = [trial for trial in trials if trial.state == state and name in trial.params]
            if not shown:
                continue
            style = STATE_STYLE[state]
            xs = [trial.params[name] if not isinstance(trial.params[name], bool) else str(trial.params[name])
                  for trial in shown]
            values.extend(xs)
            numeric = all(isinstance(x, (int, float)) for x in xs)
            figure.add_trace(go.Scatter(
                x=xs, y=[best_dev_accuracy(trial) for trial in shown], mode="markers", name=state.name,
                legendgroup=state.name, showlegend=not any(trace.legendgroup == state.name for trace in figure.data),
                customdata=[trial.number for trial in shown],
                marker={"symbol": style["symbol"], "color": style["color"], "size": 7},
                hovertemplate=f"trial %{{customdata}}<br>{name} %{{x{':.4g' if numeric else ''}}}<br>"
                              "dev accuracy %{y:.4f}<extra></extra>",
            ), row=row, col=col)
        _slice_axis(figure, name, values, log_params, bounds.get(name), row, col)
    accuracies = [best_dev_accuracy(trial) for trial in trials if best_dev_accuracy(trial) is not None]
    if accuracies:
        # One accuracy axis for every panel, around the accuracies reached (plotly would pad a lone point to +-1).
        pad = max(0.02, 0.1 * (max(accuracies) - min(accuracies)))
        figure.update_yaxes(range=[max(0.0, min(accuracies) - pad), min(1.0, max(accuracies) + pad)])
    figure.update_layout(height=SLICE_ROW_PX * rows + 80, title="Dev accuracy against each hyperparameter "
                         "(pruned trials: x, at the best before the cut)", legend_title="state")
    return figure


def _slice_axis(figure: go.Figure, name: str, values: list, log_params: Collection[str],
                bounds: tuple[float, float] | None, row: int, col: int) -> None:
    """A numeric slice axis over the space's range (padded a little); a log one ticked at 1, 2 and 5 per decade."""
    if not values or not all(isinstance(value, (int, float)) for value in values):
        return
    low, high = bounds if bounds is not None else (min(values), max(values))
    low, high = min(low, *values), max(high, *values)
    if name in log_params and low > 0:
        ticks, labels = log_ticks(low, high, most=SLICE_TICKS)
        pad = 0.05 * max(math.log10(high / low), 0.2)
        figure.update_xaxes(type="log", tickvals=ticks, ticktext=labels,
                            range=[math.log10(low) - pad, math.log10(high) + pad], row=row, col=col)
        return
    pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.1, 0.5 if name in INTEGER_PARAMS else 0.05)
    figure.update_xaxes(range=[low - pad, high + pad], row=row, col=col)
    if name in INTEGER_PARAMS:
        figure.update_xaxes(tickformat="d", row=row, col=col)


_STATE_LEGEND = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned (cut at x)",
                 TrialState.FAIL: "failed", TrialState.RUNNING: "running"}


def _curve_name(trial: FrozenTrial) -> str:
    """``trial 7``, ``trial 9 (PRUNED)``; a full-data run also names the search trial it retrains."""
    source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
    retrains = f", retrains {source}" if source is not None else ""
    state = "" if trial.state == TrialState.COMPLETE else trial.state.name
    details = ", ".join(part for part in (state, retrains.lstrip(", ")) if part)
    return f"trial {trial.number}" + (f" ({details})" if details else "")


def learning_curve_figure(trials: list[FrozenTrial], title: str) -> go.Figure:
    """Dev accuracy per epoch for every trial; pruned trials dashed and ending in an x where they were cut. The
    legend has one entry per state (clicking it hides that group); the hover names the trial."""
    figure = go.Figure()
    shown_states: set[str] = set()
    whole = True
    for trial in trials:
        curve = [point for point in epoch_curve(trial) if point.get("dev_accuracy") is not None]
        if not curve:
            continue
        style = STATE_STYLE.get(trial.state, STATE_STYLE[TrialState.FAIL])
        # Passes over the training data when recorded: a time-boxed run evaluates inside its epochs.
        epochs = [float(point["epochs_done"]) if point.get("epochs_done") else int(point["epoch"]) for point in curve]
        whole = whole and all(float(epoch).is_integer() for epoch in epochs)
        accuracies = [float(point["dev_accuracy"]) for point in curve]
        cut = pruned_at_epoch(trial)
        symbols = ["circle"] * (len(curve) - 1) + [style["symbol"]]
        figure.add_trace(
            go.Scatter(
                x=epochs,
                y=accuracies,
                mode="lines+markers",
                name=_STATE_LEGEND.get(trial.state, trial.state.name),
                legendgroup=trial.state.name,
                showlegend=trial.state.name not in shown_states,
                line={"dash": style["dash"], "color": style["color"], "width": 1.5},
                marker={"symbol": symbols, "size": [4] * (len(curve) - 1) + [9], "color": style["color"]},
                hovertemplate=(
                    _curve_name(trial) + (f", pruned after epoch {cut}" if cut is not None else "")
                    + "<br>epoch %{x:.3g}<br>dev accuracy %{y:.4f}<extra></extra>"
                ),
            )
        )
        shown_states.add(trial.state.name)
    figure.update_layout(title=title, xaxis_title="epochs (passes over the training data)", yaxis_title="dev accuracy",
                         legend_title="trials")
    if whole:
        figure.update_xaxes(tickformat="d", dtick=1)
    return figure


# How each size's line is drawn on the accuracy-vs-parameters plot (names as in ``sizes.Sizes.lines``).
SIZE_LINE_STYLE = {"HW1P2 limit": {"color": "black", "dash": "dash"},
                   "size cap": {"color": "gray", "dash": "dot"},
                   "planned size": {"color": "rgba(44,160,44,0.9)", "dash": "dashdot"}}


def accuracy_vs_params_figure(trials: list[FrozenTrial], sizes: Sizes, full_trials: Sequence[FrozenTrial] = (),
                              final_model: Mapping[str, Any] | None = None) -> go.Figure:
    """Best dev accuracy against parameter count: the search trials, every full-data (final) run, the final model
    the job submitted, and one line per size (the HW1P2 limit, the study's size cap, the planned size)."""
    figure = go.Figure()
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        shown = [trial for trial in trials if trial.state == state and trial.user_attrs.get(attrs.PARAM_COUNT)
                 and best_dev_accuracy(trial) is not None]
        if shown:
            _params_trace(figure, shown, f"search trial ({state.name.lower()})", STATE_STYLE[state]["symbol"],
                          STATE_STYLE[state]["color"], "trial %{customdata}")
    runs = [trial for trial in full_trials if trial.state == TrialState.COMPLETE
            and trial.user_attrs.get(attrs.PARAM_COUNT) and trial.value is not None]
    if runs:
        _params_trace(figure, runs, "full-data run", "square", "rgba(255,127,14,0.9)",
                      "full-data run of trial %{customdata}", source=True)
    if final_model and final_model.get("param_count") and final_model.get("dev_accuracy") is not None:
        members = "+".join(str(member) for member in final_model.get("members", []))
        figure.add_trace(go.Scatter(
            x=[int(final_model["param_count"])], y=[float(final_model["dev_accuracy"])], mode="markers",
            name="final model", marker={"symbol": "star", "color": "gold", "size": 16,
                                        "line": {"color": "black", "width": 1}},
            hovertemplate=f"final model ({final_model.get('chosen', '')} of {members})<br>%{{x:,}} parameters<br>"
                          "dev accuracy %{y:.4f}<extra></extra>",
        ))
    lines = sizes.lines()
    # A line's own annotation lands at log10(x) on a log axis in plotly, i.e. off the page: placed by hand.
    for index, (name, count, _meaning) in enumerate(lines):
        figure.add_vline(x=count, line=SIZE_LINE_STYLE[name])
        figure.add_annotation(x=math.log10(count), xref="x", y=1 - 0.07 * index, yref="paper",
                              text=f"{name} {count:,}", showarrow=False, xanchor="right", yanchor="bottom")
    counts = [x for trace in figure.data for x in trace.x] + [count for _name, count, _meaning in lines]
    low, high = min(counts), max(counts)
    ticks, labels = log_ticks(low, high)
    figure.update_layout(
        title="Best dev accuracy against parameter count",
        xaxis={"title": "parameters", "type": "log", "range": [math.log10(low) - 0.1, math.log10(high) + 0.15],
               "tickvals": ticks, "ticktext": labels},
        yaxis_title="best dev accuracy", legend_title="models",
    )
    return figure


def _params_trace(figure: go.Figure, trials: Sequence[FrozenTrial], name: str, symbol: str, color: str,
                  label: str, source: bool = False) -> None:
    """One group of trials on the accuracy-vs-parameters plot (``source``: label a full-data run by the search
    trial it retrains)."""
    figure.add_trace(go.Scatter(
        x=[trial.user_attrs[attrs.PARAM_COUNT] for trial in trials],
        y=[best_dev_accuracy(trial) for trial in trials],
        customdata=[trial.user_attrs.get(attrs.SOURCE_TRIAL, trial.number) if source else trial.number
                    for trial in trials],
        mode="markers", name=name, marker={"symbol": symbol, "color": color, "size": 10 if source else 9},
        hovertemplate=label + "<br>%{x:,} parameters<br>best dev accuracy %{y:.4f}<extra></extra>",
    ))


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
