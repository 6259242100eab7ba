"""The study engine: study config, space sized under the parameter limit, storage, the trial runner, workers, promotion, retrain.

The package's top level holds the study config only (it imports neither Optuna nor torch); everything else is
imported from its module.

Example::

    from phonetune.search import load_study_config
    from phonetune.search.study import open_study
    from phonetune.search.supervisor import run_search

    config = load_study_config("studies/demo.toml", ["study.n_trials=6"])
    summary = run_search(config, workers=2)
    study = open_study(config)          # the search trials; open_study(config, "full") for promoted runs
"""

from phonetune.search.config import StudyConfig, load_study_config

__all__ = ["StudyConfig", "load_study_config"]
