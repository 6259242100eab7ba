"""The final model's room: choosing a single run or an ensemble within the parameter limit (``choose.py``), its
labels and submission files (``labels.py``), what it is (``record.py``: ``FinalModel``) and what it leaves beside
the submission (``metadata.py``: ``model_metadata.json``, the dev diagnostics). ``phonetune ensemble`` and
``phonetune run``'s last step call ``build_final_model``.

Example::

    final = build_final_model(load_study_config("studies/demo.toml"), max_members=4)
    print(format_final_model(final))
"""

from phonetune.search.final_model.choose import build_final_model, format_final_model, promoted_checkpoints
from phonetune.search.final_model.labels import decode_test_labels, labels_line
from phonetune.search.final_model.record import FinalModel

__all__ = ["FinalModel", "build_final_model", "decode_test_labels", "format_final_model", "labels_line",
           "promoted_checkpoints"]
