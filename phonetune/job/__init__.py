"""The budgeted job, ``phonetune run``: plan the budget from this machine's speed, search, train the final runs,
choose the final model, write the outputs, all within one wall-clock budget and resumable.

``clock.py`` counts the budget (``BudgetClock``, ``parse_budget``, ``format_seconds``), ``planner.py`` splits it
(``make_plan``, ``plan_final_runs``), ``state.py`` keeps the job's ``state.json`` (``JobState``) and ``run.py`` runs
the steps (``run_job``). The top level holds what imports neither torch nor Optuna.

Example::

    from phonetune.job import parse_budget
    from phonetune.job.run import run_job

    outcome = run_job(load_study_config("studies/demo.toml"), parse_budget("10m"), workers=2)
"""

from phonetune.job.clock import BudgetClock, format_seconds, parse_budget
from phonetune.job.planner import FinalRuns, Plan, make_plan, plan_final_runs, run_seconds

__all__ = ["BudgetClock", "FinalRuns", "Plan", "format_seconds", "make_plan", "parse_budget", "plan_final_runs",
           "run_seconds"]
