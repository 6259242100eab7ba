"""The study report: one self-contained plotly HTML page that reads like a lab notebook of the search.

Sections, in order: summary (the sizes, the best trial, the final model with links to its dev diagnostics), the
leaderboard of final models (``leaderboard.py``), optimization history, hyperparameter importances (with their
spread over bootstrap resamples, or withheld below ``MIN_TRIALS_FOR_IMPORTANCE`` complete trials, saying why),
parallel coordinates, slices, learning curves of every trial (pruned ones drawn dashed and cut where the pruner
stopped them), accuracy against parameter count with a line per size (``sizes.py``) and every final model on it,
and the full-data fidelity (promoted trials) when a linked study exists. Each section chooses its trials and says
plainly when there is not enough to draw; the figures are ``figures.py``'s.
plotly.js is inlined once in the page head, so the file opens offline and stays one file.

Example::

    config = load_study_config("studies/demo.toml")
    search_study, full_study = open_studies(config)   # full_study: None before promote
    write_report(search_study, full_study, "report.html", param_limit=config.param_limit, space=config.space)
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Mapping, Sequence


import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.offline import get_plotlyjs

from phonetune.atomic import atomic_write_text
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.results.export import finished_trials
from phonetune.results.figures import (
    accuracy_vs_params_figure,
    fidelity_figure,
    history_figure,
    importance_figure,
    learning_curve_figure,
    parallel_figure,
    slice_figure,
)
from phonetune.results.formatting import format_params
from phonetune.results.importances import (
    IMPORTANCE_RESAMPLES,
    MIN_TRIALS_FOR_IMPORTANCE,
    complete_trials,
    most_important,
    resampled_importances,
)
from phonetune.results.leaderboard import final_model_record, leaderboard, leaderboard_html
from phonetune.results.sizes import Sizes, sizes_of
from phonetune.search import attributes as attrs
from phonetune.search.attributes import SPEARMAN_ATTR, SPEARMAN_COUNT_ATTR
from phonetune.search.promote import describe_spearman
from phonetune.search.ranking import best_trial
from phonetune.search.records import best_dev_accuracy, epoch_curve
from phonetune.search.space_spec import Choice, ParamSpec, log_scale_params

logger = logging.getLogger(__name__)

PARALLEL_PARAMS = 6  # parallel coordinates show this many of the most important hyperparameters


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


def summary_section(study: optuna.Study, full_study: optuna.Study | None, sizes: Sizes, page_dir: Path) -> Section:
    trials = finished_trials(study)
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    items = [f"<li>{html.escape(name)}: {count}</li>" for name, count in counts.items() if count]
    size_items = "".join(f"<li><b>{html.escape(name)}</b> {count:,} parameters: {html.escape(meaning)}</li>"
                         for name, count, meaning in sizes.lines())
    lines = [
        f"<p>Study <b>{html.escape(study.study_name)}</b>: {len(trials)} trial{'' if len(trials) == 1 else 's'}.</p>",
        f"<ul>{''.join(items)}</ul>",
        f"<p>Sizes:</p><ul>{size_items}</ul>",
    ]
    job = study.user_attrs.get(attrs.JOB_ATTR)
    if isinstance(job, dict) and job:
        # What `phonetune run` did, first: a direct plan says that no search ran, and why.
        ran = "".join(f"<li><b>{html.escape(str(label))}</b>: {html.escape(str(text))}</li>"
                      for label, text in job.items())
        lines.insert(0, f"<p>What <code>phonetune run</code> did:</p><ul>{ran}</ul>")
    best = best_trial(_complete(study))
    if best is not None:
        param_count = best.user_attrs.get(attrs.PARAM_COUNT)
        size = f", {param_count:,} parameters" if isinstance(param_count, int) else ""
        lines.append(
            f"<p>Best search trial #{best.number}: dev accuracy {best.value:.4f}{size}.</p>"
            f'<p class="params">{html.escape(format_params(best.params))}</p>'
        )
    if full_study is not None:
        full_complete = _complete(full_study)
        lines.append(f"<p>Full-data study <b>{html.escape(full_study.study_name)}</b>: {len(full_complete)} "
                     f"promoted trial{'' if len(full_complete) == 1 else 's'} retrained.</p>")
        final = final_model_record(full_study)
        if final:
            members = [int(member) for member in final["members"]]
            what = (f"ensemble of the full-data runs of search trials {', '.join(map(str, members))}"
                    if len(members) > 1 else f"the full-data run of search trial {members[0]}")
            test = final.get("test_accuracy")
            labels = ("the sequence decode's labels" if final.get("labels") == "decoded"
                      else "each frame's argmax, the network's own labels")
            decoded = final.get("test_decoded_accuracy")
            beside = (f" (the sequence decode's labels beside it: {float(decoded):.4f})"
                      if decoded is not None and final.get("labels") != "decoded" else "")
            lines.append(
                f"<p><b>Final model</b>: {html.escape(what)}, {int(final['param_count']):,} parameters; dev accuracy "
                f"by its argmax {float(final['dev_accuracy']):.4f}; test accuracy of the submission "
                f"({html.escape(labels)}) "
                f"{'not scored (no test labels)' if test is None else f'<b>{float(test):.4f}</b>'}{beside}.</p>"
                + _diagnostics_links(final, page_dir)
            )
    return Section("summary", "Summary", "".join(lines))


def _diagnostics_links(final: Mapping, page_dir: Path) -> str:
    """Links to the final model's per-phoneme accuracy and confusion matrix (dev, and test when labelled) and its
    metadata, relative to the page so the folder can move as a whole."""
    links = []
    for label, key in (("dev", "dev_score_dir"), ("test", "test_score_dir")):
        folder = final.get(key)
        if folder and Path(folder).is_dir():
            where = Path(os.path.relpath(folder, page_dir)).as_posix()
            links.append(f'{label}: <a href="{html.escape(where)}/per_phoneme.csv">per-phoneme accuracy</a>, '
                         f'<a href="{html.escape(where)}/confusion.html">confusion matrix</a>')
    metadata = final.get("metadata")
    if metadata and Path(metadata).is_file():
        links.append(f'<a href="{html.escape(Path(os.path.relpath(metadata, page_dir)).as_posix())}">'
                     "model_metadata.json</a>")
    return f"<p>Diagnostics of the final model: {'; '.join(links)}.</p>" if links else ""


def leaderboard_section(study: optuna.Study, full_study: optuna.Study | None) -> Section:
    return Section("leaderboard", "Leaderboard", leaderboard_html(leaderboard(study, full_study)))


def history_section(study: optuna.Study) -> Section:
    trials = [trial for trial in finished_trials(study) if best_dev_accuracy(trial) is not None]
    if len(trials) < 2:
        return Section("history", "Optimization history", _message(
            "No history to draw: the study has fewer than two evaluated trials (a direct plan of phonetune run "
            "trains one)." if trials else "No trial has finished an epoch yet."))
    return Section("history", "Optimization history", _figure_html(history_figure(trials)))


def importance_section(study: optuna.Study) -> Section:
    title = "Hyperparameter importances"
    complete = complete_trials(study)
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return Section("importances", title, _message(
            f"Importances are withheld: they need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials, but the "
            f"study has {len(complete)}. Below that they do not hold still: two runs of the same job, with 10 and "
            "12 complete trials, named different hyperparameters the most important. Run a longer search to see "
            "them (the slices and parallel coordinates below show the trials themselves)."))
    try:
        importances = resampled_importances(complete)
    except (RuntimeError, ValueError) as exc:
        # optuna refuses when every complete trial drew the same values (nothing to attribute variance to).
        return Section("importances", title, _message(f"Importances unavailable: {exc}"))
    figure = importance_figure(importances, len(complete), IMPORTANCE_RESAMPLES)
    return Section("importances", title, _figure_html(figure))


def parallel_section(study: optuna.Study, log_params: Collection[str] = ()) -> Section:
    title = "Parallel coordinates"
    trials = [trial for trial in finished_trials(study)
              if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and best_dev_accuracy(trial) is not None]
    if len(trials) < 2:
        return Section("parallel", title, _message("Parallel coordinates need two finished trials."))
    names = [name for name in most_important(study, PARALLEL_PARAMS)
             if all(name in trial.params for trial in trials) and name in compared_params(trials)]
    if not names:
        return Section("parallel", title, _message("No hyperparameter took two values over these trials."))
    return Section("parallel", title, _figure_html(parallel_figure(trials, names, log_params)))


def compared_params(trials: Sequence[FrozenTrial]) -> list[str]:
    """The hyperparameters that took at least two values over ``trials``: the ones the study compared."""
    seen: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            seen.setdefault(name, set()).add(repr(value))
    return sorted(name for name, values in seen.items() if len(values) > 1)


def _held_values(trials: Sequence[FrozenTrial], compared: Collection[str]) -> str:
    """``activation gelu, batchnorm after``: the hyperparameters every trial held at one value, with that value."""
    held = {name: value for trial in trials for name, value in trial.params.items() if name not in compared}
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in sorted(held.items()))


def slice_section(study: optuna.Study, space: Mapping[str, ParamSpec]) -> Section:
    trials = [trial for trial in finished_trials(study)
              if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and best_dev_accuracy(trial) is not None]
    if len(trials) < 2:
        evaluated = [trial for trial in finished_trials(study) if best_dev_accuracy(trial) is not None]
        return Section("slices", "Slices", _message(
            "No slices to draw: the study has fewer than two evaluated trials." if trials else
            f"No slices to draw: no trial completed (trial {evaluated[0].number} was cut after "
            f"{len(evaluated[0].intermediate_values)} evaluation(s), {evaluated[0].state.name})." if evaluated
            else "No trial has finished an epoch yet."))
    # A hyperparameter every trial held at one value compares nothing: it is named, not drawn.
    names = compared_params(trials)
    held = _held_values(trials, names)
    note = _message(f"Held at one value in every trial, so not drawn: {held}.") if held else ""
    if not names:
        return Section("slices", "Slices", note or _message("No hyperparameter took two values."))
    figure = slice_figure(trials, names, log_scale_params(space), slice_bounds(space))
    return Section("slices", "Slices", _figure_html(figure) + note)


def slice_bounds(space: Mapping[str, ParamSpec]) -> dict[str, tuple[float, float]]:
    """Each numeric hyperparameter's range in the space: a range's low and high (its low, not the 0 that
    ``zero = true`` adds, so a log axis stays one), numeric choices' smallest and largest."""
    bounds: dict[str, tuple[float, float]] = {"width_fraction": (0.0, 1.0)}
    for name, spec in space.items():
        if isinstance(spec, Choice):
            options = spec.options()
            if all(isinstance(option, (int, float)) and not isinstance(option, bool) for option in options):
                bounds[name] = (min(options), max(options))
        elif spec.is_fixed() or spec.low is None:
            bounds[name] = spec.bounds()
        else:
            bounds[name] = (spec.low, spec.high)
    return bounds


def curves_section(study: optuna.Study) -> Section:
    trials = finished_trials(study)
    if not any(epoch_curve(trial) for trial in trials):
        return Section("curves", "Learning curves", _message("No trial has finished an epoch yet."))
    if not any(len(epoch_curve(trial)) >= 2 for trial in trials):
        # One evaluation per trial is a point, not a curve (a direct plan's screen is the first seconds of its run).
        return Section("curves", "Learning curves", _message(
            "No curve to draw: no trial of this study reported two evaluations (a job's final run has its curve "
            "under the full-data fidelity section)."))
    count = f"{len(trials)} trial{'' if len(trials) == 1 else 's'}"
    figure = learning_curve_figure(trials, f"Learning curves of {count} (pruned: dashed, cut at x)")
    return Section("curves", "Learning curves", _figure_html(figure))


def params_section(study: optuna.Study, full_study: optuna.Study | None, sizes: Sizes) -> Section:
    full_trials = finished_trials(full_study) if full_study is not None else []
    figure = accuracy_vs_params_figure(finished_trials(study), sizes, full_trials, final_model_record(full_study))
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
    if len(pairs) >= 2:  # one point compares nothing (and plotly would draw it on a padded 0..1.5 box)
        parts.append(_figure_html(fidelity_figure(pairs)))
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
table.leaderboard {{ border-collapse: collapse; font-size: 0.95em; }}
table.leaderboard th, table.leaderboard td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
table.leaderboard :is(td, th):nth-child(2), table.leaderboard :is(td, th):nth-child(3) {{ text-align: left; }}
table.leaderboard tr.final {{ font-weight: bold; background: #fff8dc; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head><body>
<h1>{title}</h1>
<nav>{nav}</nav>
{sections}
</body></html>
"""


def build_sections(
    study: optuna.Study, full_study: optuna.Study | None, param_limit: int, space: Mapping[str, ParamSpec],
    page_dir: Path = Path("."),
) -> list[Section]:
    log_params = log_scale_params(space)
    sizes = sizes_of(study, fallback_cap=param_limit)
    return [
        summary_section(study, full_study, sizes, page_dir),
        leaderboard_section(study, full_study),
        history_section(study),
        importance_section(study),
        parallel_section(study, log_params),
        slice_section(study, space),
        curves_section(study),
        params_section(study, full_study, sizes),
        fidelity_section(study, full_study),
    ]


def render_report(
    study: optuna.Study, full_study: optuna.Study | None, param_limit: int, space: Mapping[str, ParamSpec],
    page_dir: Path = Path("."),
) -> str:
    sections = build_sections(study, full_study, param_limit, space, page_dir)
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
    param_limit: int = DEFAULT_PARAM_LIMIT,
    *,
    space: Mapping[str, ParamSpec],
) -> Path:
    """Render the report page and write it atomically to ``out_path``; ``space`` is the study's ``[space]`` (which
    hyperparameters get log axes, and each axis's range); ``param_limit`` is the size cap of a study that did not
    record its sizes."""
    page_dir = Path(out_path).resolve().parent
    page = render_report(study, full_study, param_limit, space, page_dir)
    path = atomic_write_text(out_path, page)
    logger.debug("wrote the report of study %s (%d KiB) to %s", study.study_name, len(page) // 1024, path)
    return path
