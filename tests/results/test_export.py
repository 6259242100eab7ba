"""The ablation sheet of a real study (``phonetune export``): every row and marginal against what the storage holds."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
from optuna.trial import TrialState

from phonetune.cli.main import main
from phonetune.search import attributes as attrs
from phonetune.search.study import open_studies


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _same_number(text: str, value: float | int | None) -> bool:
    """``text`` is ``value`` as the sheet writes numbers: exact for integers, else at 4 significant digits (half a
    unit of the 4th digit away at most, and no more digits than that written)."""
    if value is None:
        return text == ""
    if isinstance(value, int) or float(value).is_integer():
        return float(text) == float(value)
    digits = text.lstrip("-0.").replace(".", "").rstrip("0")
    tolerance = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 3)
    return "e" not in text.lower() and len(digits) <= 4 and abs(float(text) - float(value)) <= tolerance * 1.0001


def test_export_rows_match_the_storage(searched, tmp_path, capsys):
    path, config, _ = searched
    out = tmp_path / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    study = optuna.load_study(study_name=config.name, storage=config.paths.storage_url)
    trials = {trial.number: trial for trial in study.trials}
    columns, rows = _read_csv(out)
    param_names = sorted({name for trial in trials.values() for name in trial.params})
    for name in ["number", "state", "trained_on", "promoted_from", *param_names, "base_width", "layer_widths",
                 "param_count", "dev_accuracy", "dev_accuracy_epoch_1", "test_accuracy", "pruned_at_epoch",
                 "epochs_run", "wall_seconds", "frames_per_s"]:
        assert name in columns, f"column {name} missing from {columns}"
    assert sorted(int(row["number"]) for row in rows) == sorted(trials)

    for row in rows:
        trial = trials[int(row["number"])]
        assert row["state"] == trial.state.name
        # The study's search trials train on all the data (train_fraction 1), and the sheet says so.
        assert row["trained_on"] == "all" and row["train_share"] == "1" and row["promoted_from"] == ""
        depth = trial.params["hidden_layers"]
        # What the model does not use is blank: the sampler drew it, but no layer applies it.
        unused = set()
        if depth == 0:
            unused |= {"width_shape", "batchnorm", "batchnorm_layers", "dropout", "activation", "base_width"}
        if trial.params.get("batchnorm") == "none":
            unused.add("batchnorm_layers")
        for name in param_names:
            if name not in trial.params or name in unused:
                assert row[name] == "", (name, row[name])
            elif isinstance(trial.params[name], str):
                assert row[name] == trial.params[name]
            else:
                assert _same_number(row[name], trial.params[name]), (name, row[name], trial.params[name])
        widths = row["layer_widths"].split("-")
        if depth == 0:
            assert row["layer_widths"] == "none" and row["base_width"] == ""
        else:
            base = trial.user_attrs[attrs.BASE_WIDTH]
            assert int(row["base_width"]) == base and len(widths) == depth
            assert all(int(width) % 8 == 0 for width in widths)
            if trial.params.get("width_shape", "cylinder") == "cylinder" or depth == 1:
                assert widths == [str(base)] * depth
        assert int(row["param_count"]) == trial.user_attrs[attrs.PARAM_COUNT]
        reached = max(trial.intermediate_values.values())
        expected_best = trial.value if trial.state == TrialState.COMPLETE else reached
        assert _same_number(row["dev_accuracy"], expected_best)
        assert _same_number(row["dev_accuracy_epoch_1"], trial.intermediate_values[1])
        assert row["test_accuracy"] == ""
        assert int(row["epochs_run"]) == len(trial.intermediate_values)
        if trial.state == TrialState.PRUNED:
            assert int(row["pruned_at_epoch"]) == max(trial.intermediate_values) < config.fidelity.trial_epochs
        else:
            assert row["pruned_at_epoch"] == ""
            assert int(row["epochs_run"]) == config.fidelity.trial_epochs
        assert _same_number(row["wall_seconds"], trial.user_attrs[attrs.WALL_SECONDS])
        assert _same_number(row["frames_per_s"], trial.user_attrs[attrs.FRAMES_PER_S])


def test_export_marginals_summarise_each_value_pruned_trials_included(searched, tmp_path):
    path, config, study = searched
    out = tmp_path / "ablation.csv"
    assert main(["export", "--config", str(path), "--out", str(out)]) == 0
    _, marginals = _read_csv(tmp_path / "ablation_marginals.csv")
    for value in ("relu", "tanh"):
        drawn = [t for t in study.trials if t.params.get("activation") == value and t.params["hidden_layers"] > 0]
        if not drawn:
            continue
        (row,) = [r for r in marginals if r["parameter"] == "activation" and r["value"] == value]
        complete = [t.value for t in drawn if t.state == TrialState.COMPLETE]
        reached = [t.value if t.state == TrialState.COMPLETE else max(t.intermediate_values.values()) for t in drawn]
        assert int(row["trials"]) == len(drawn)
        assert int(row["complete"]) == len(complete)
        assert int(row["pruned"]) == sum(t.state == TrialState.PRUNED for t in drawn)
        assert _same_number(row["best_dev_accuracy"], max(reached))
        first = [t.intermediate_values[1] for t in drawn]
        assert _same_number(row["mean_dev_accuracy_epoch_1"], sum(first) / len(first))
        if complete:
            assert _same_number(row["mean_dev_accuracy_complete"], sum(complete) / len(complete))
    # Every row compares its trials after epoch 1, so none is blank, pruned-only values included.
    assert marginals and all(row["mean_dev_accuracy_epoch_1"] != "" for row in marginals)
    # lr is continuous: a few ranges whose counts cover every finished trial once.
    lr_rows = [r for r in marginals if r["parameter"] == "lr"]
    assert 1 < len(lr_rows) <= 4 and sum(int(r["trials"]) for r in lr_rows) == len(study.trials)
    for r in lr_rows:
        low, high = (float(edge) for edge in r["value"].split("-"))
        # edges as written: 4 significant digits of the lowest and highest value drawn, 2 in between
        inside = [t for t in study.trials if low * (1 - 5e-4) <= t.params["lr"] <= high * (1 + 5e-4)]
        assert len(inside) >= int(r["trials"])


def test_the_sheet_reads_as_the_hw1p2_table(finished, tmp_path):
    """Origin, then the architecture together, the data (normalization, the share of training utterances), the
    training settings, then train and dev loss and accuracy, test accuracy on every row that has it; the space's
    internal parameters last."""
    path, config = finished
    out = tmp_path / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(out)]) == 0
    columns, rows = _read_csv(out)
    assert columns[:8] == ["study", "number", "state", "trained_on", "promoted_from", "warm_start", "mutated_from",
                           "move"]
    architecture = ["hidden_layers", "base_width", "activation", "layer_widths", "param_count"]
    start = columns.index("hidden_layers")
    assert columns[start:start + len(architecture)] == architecture
    data = columns.index("context_frames")
    assert columns[data:data + 3] == ["context_frames", "normalization", "train_share"]
    results = columns.index("train_loss")
    assert columns[results:results + 4] == ["train_loss", "train_accuracy", "dev_loss", "dev_accuracy"]
    assert start < data < columns.index("lr") < results < columns.index("width_fraction")
    assert columns[-1] == "width_fraction"

    search, full = open_studies(config)
    final = full.user_attrs[attrs.ENSEMBLE_ATTR]
    trials = {("tiny", trial.number): trial for trial in search.trials}
    trials.update({("tiny-full", trial.number): trial for trial in full.trials})
    for row in rows:
        if row["state"] == "FINAL":
            assert _same_number(row["test_accuracy"], final["test_accuracy"])
            assert row["promoted_from"] == "+".join(map(str, final["members"]))
            continue
        trial = trials[(row["study"], int(row["number"]))]
        curve = trial.system_attrs[attrs.CURVES]
        best = max(curve, key=lambda point: point["dev_accuracy"])
        for column, key in (("train_loss", "train_loss"), ("train_accuracy", "train_accuracy"),
                            ("dev_loss", "dev_loss"), ("dev_accuracy", "dev_accuracy")):
            assert _same_number(row[column], best[key]), (column, row[column], best[key])
        assert row["normalization"] == "cmvn"
        source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
        origin = search.trials[source] if source is not None else trial
        assert row["warm_start"] == origin.user_attrs.get(attrs.WARM_START, "")
        if row["trained_on"] == "all":
            assert row["train_share"] == "1"
            assert _same_number(row["test_accuracy"], final["member_test_accuracy"][str(source)])
        else:
            assert row["train_share"] == "0.5" and row["test_accuracy"] == ""
    starter_rows = [row for row in rows if row["warm_start"] == "starter"]
    assert {row["trained_on"] for row in starter_rows} == {"subsample", "all"}
    # The starter has no hidden layer: the activation it named is no parameter of its trial, and blank.
    assert all(row["activation"] == "" and row["layer_widths"] == "none" for row in starter_rows)


def test_the_changes_table_pairs_each_move_with_the_trial_it_moved(tmp_path):
    """The writeup's table: a trial that moved one hyperparameter of another, against it, best gain first; a move of
    a trial that did not complete (or a mutation that changed several) has no row."""
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from phonetune.results.export import change_rows

    study = optuna.create_study(direction="maximize")
    lr, context = FloatDistribution(1e-4, 1e-2, log=True), IntDistribution(0, 30)

    def add(value, params, state=TrialState.COMPLETE, **attributes):
        study.add_trial(create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                                     params=params, distributions={"lr": lr, "context_frames": context},
                                     user_attrs=attributes))

    add(0.80, {"lr": 2e-3, "context_frames": 25}, warm_start="expert@985k")
    add(0.82, {"lr": 4e-3, "context_frames": 25}, mutated_from=0, move="lr up")
    add(0.79, {"lr": 2e-3, "context_frames": 30}, mutated_from=0, move="context_frames up")
    add(0.83, {"lr": 4e-3, "context_frames": 20}, mutated_from=1, move="context_frames down")
    add(None, {"lr": 8e-3, "context_frames": 25}, TrialState.FAIL, mutated_from=1, move="lr up")
    add(0.81, {"lr": 1e-3, "context_frames": 10}, mutated_from=0)  # a mutation of several: not a single change
    rows = change_rows(study)
    assert [(row["trial"], row["parameter"], row["from"], row["to"]) for row in rows] == [
        (1, "lr", 2e-3, 4e-3), (3, "context_frames", 25, 20), (2, "context_frames", 25, 30)]
    assert [round(row["change_points"], 6) for row in rows] == [2.0, 1.0, -1.0]
    assert rows[1]["from_trial"] == 1 and rows[1]["from_dev_accuracy"] == 0.82
