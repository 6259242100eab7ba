"""The budgeted job, ``phonetune run``: plan the budget from this machine's speed, screen time-boxed candidates,
continue the best one to the deadline, write the submission and the outputs, all within one wall-clock budget and
resumable.

``clock.py`` counts the budget (``BudgetClock``, ``parse_budget``, ``format_seconds``), ``planner.py`` splits it
(``make_plan``), ``state.py`` keeps the job's ``state.json`` (``JobState``) and ``run.py`` runs the steps
(``run_job``). The top level holds what imports neither torch nor Optuna.

Example::

    from phonetune.job import parse_budget
    from phonetune.job.run import run_job

    outcome = run_job(load_study_config("studies/demo.toml"), parse_budget("10m"), workers=2)
"""

from phonetune.job.clock import BudgetClock, format_seconds, parse_budget
from phonetune.job.planner import Plan, compute_optimal_params, make_plan

__all__ = ["BudgetClock", "Plan", "compute_optimal_params", "format_seconds", "make_plan", "parse_budget"]
