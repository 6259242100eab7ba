"""What a study leaves for people to read: the ablation sheet (``export.py``), the report page (``report.py``, its
figures in ``figures.py``) and optuna-dashboard on the storage (``dashboard.py``).

Everything here reads a study (``optuna.Study``) and writes files or serves pages; nothing trains. Each module is
imported where it is used (they import Optuna, pandas and plotly).

Example::

    from phonetune.results.export import write_ablation_sheet
    from phonetune.search.study import open_studies

    search_study, full_study = open_studies(load_study_config("studies/demo.toml"))
    write_ablation_sheet(search_study, full_study, "ablation_sheet.csv")
"""
