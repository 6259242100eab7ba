"""The budget curve: test accuracy against the budget for both arms of ``bench/quality.py``, as a plotly page and a
table, from the JSON files its ``--json`` wrote (one budget each).

Arm (a) is ``phonetune run``; arm (b) the expert warm start trained to the deadline. Both are scored by their argmax
(the decoded labels, where measured, are in the table beside). The page draws one line per arm, each point a
budget; the table gives per budget each arm's mean test accuracy, the job's plan, and (a) against (a) at half the
budget. Last line::

    ratio: arm (a) / arm (b) at the largest budget both measured

Usage: python bench/budget_curve.py --out budget_curve.html results/a-10m.json results/a-20m.json results/b-20m.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import plotly.graph_objects as go

from phonetune.atomic import atomic_write_text
from phonetune.job.clock import format_seconds


def load_points(paths: list[str]) -> dict[str, dict[float, dict]]:
    """arm -> budget (s) -> {"test": mean argmax accuracy, "decoded": mean or None, "plans": [...]}."""
    points: dict[str, dict[float, dict]] = {}
    for path in paths:
        values = json.loads(Path(path).read_text())
        budget = float(values["budget_s"])
        for arm, rows in values["results"].items():
            if not rows:
                continue
            decoded = [row.get("decoded_test_accuracy") for row in rows]
            plans = [row.get("summary", {}).get("plan", {}) for row in rows]
            point = points.setdefault(arm, {}).setdefault(budget, {"tests": [], "decoded": [], "plans": []})
            point["tests"] += [row["test_accuracy"] for row in rows]
            point["decoded"] += [value for value in decoded if value is not None]
            point["plans"] += [plan for plan in plans if plan]
    return points


def plan_text(plans: list[dict]) -> str:
    def one(plan: dict) -> str:
        if plan.get("kind") == "direct":
            return f"direct, {plan['final_params']:,} params, {plan['final_epochs']:.1f} epochs"
        return (f"screened, {plan['trials']:.0f} trials of {plan['trial_seconds']:.0f} s, final "
                f"{plan['final_params']:,} params for {plan['final_epochs']:.1f} epochs")
    return "; ".join(one(plan) for plan in plans) or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="bench/quality.py --json files, one budget each")
    parser.add_argument("--out", default="budget_curve.html")
    args = parser.parse_args()
    points = load_points(args.results)
    figure = go.Figure()
    names = {"a": "(a) phonetune run", "b": "(b) the expert warm start to the deadline"}
    for arm, by_budget in sorted(points.items()):
        budgets = sorted(by_budget)
        figure.add_trace(go.Scatter(
            x=[budget / 60 for budget in budgets],
            y=[statistics.fmean(by_budget[budget]["tests"]) for budget in budgets],
            mode="lines+markers", name=names.get(arm, arm),
            text=[plan_text(by_budget[budget]["plans"]) for budget in budgets]))
    figure.update_layout(title="Test accuracy (argmax) against the budget", xaxis_title="budget (minutes)",
                         yaxis_title="test accuracy", xaxis_type="log", template="plotly_white")
    atomic_write_text(args.out, figure.to_html(include_plotlyjs=True, full_html=True))
    print("| budget | arm | test (argmax) | decoded | against (a) at half the budget | plan |")
    print("|---|---|---|---|---|---|")
    for arm, by_budget in sorted(points.items()):
        for budget in sorted(by_budget):
            point = by_budget[budget]
            test = statistics.fmean(point["tests"])
            decoded = f"{statistics.fmean(point['decoded']):.4f}" if point["decoded"] else ""
            half = by_budget.get(budget / 2)
            change = f"{100 * (test - statistics.fmean(half['tests'])):+.2f} points" if half else ""
            print(f"| {format_seconds(budget)} | ({arm}) | {test:.4f} | {decoded} | {change} | "
                  f"{plan_text(point['plans'])} |")
    print(f"figure: {args.out}")
    both = sorted(set(points.get("a", {})) & set(points.get("b", {})))
    if both:
        largest = both[-1]
        ratio = statistics.fmean(points["a"][largest]["tests"]) / statistics.fmean(points["b"][largest]["tests"])
        print(f"ratio: {ratio:.4f}")


if __name__ == "__main__":
    main()
