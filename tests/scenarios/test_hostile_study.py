"""Hostile study input: bad configs, impossible budgets, unreachable storages, unknown study names, dashboard host.

One real study with a finished trial is made first (a tiny search on a tiny corpus). Each test then runs the
``phonetune`` command a user would run, with one thing wrong, and checks the named error it prints (exit status 1,
no traceback) and that the stored study is exactly as it was: same studies, same trials, nothing created.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from corpus import write_tiny_corpus
from search_study import write_study
from shared import REPO, readline_within

from phonetune.errors import ConfigError, ParamLimitError, StorageError
from phonetune.cli.main import build_parser, main
from phonetune.search.config import load_study_config
from phonetune.results.dashboard import DashboardServer
from phonetune.search.storage import POSTGRES_CONNECT_TIMEOUT_S, build_storage
from phonetune.search.worker import run_worker


class StoredStudy:
    """A SQLite study with one finished trial, and a way to write variants of its study file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.corpus = write_tiny_corpus(folder / "data")
        self.path = write_study(folder, self.corpus.root, **{"study.n_trials": 1, "fidelity.trial_epochs": 1})
        self.config = load_study_config(self.path)
        run_worker(self.config, create=True)
        self.before = self.contents()
        assert self.before[1] and self.before[1][0][1] == "COMPLETE"

    def contents(self) -> tuple[list[str], list[tuple]]:
        storage = self.config.paths.storage_url
        names = sorted(optuna.get_all_study_names(storage))
        trials = [
            (trial.number, trial.state.name, trial.value, trial.params)
            for name in names
            for trial in optuna.load_study(study_name=name, storage=storage).trials
        ]
        return names, trials

    def variant(self, name: str, **changes) -> Path:
        """A study file in its own folder on the same storage and corpus, with ``changes`` applied."""
        folder = self.folder / name
        folder.mkdir()
        return write_study(
            folder,
            self.corpus.root,
            **{"study.storage": self.config.paths.storage_url, "study.artifacts_dir": str(self.config.paths.artifacts_path),
               "study.n_trials": 1, "fidelity.trial_epochs": 1, **changes},
        )

    def assert_untouched(self) -> None:
        assert self.contents() == self.before, "the stored studies or their trials changed"


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> StoredStudy:
    return StoredStudy(tmp_path_factory.mktemp("stored"))


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def test_unknown_key_in_a_study_config_is_named_and_nothing_runs(stored, capsys):
    path = stored.variant("typo", **{"study.n_trails": 5, "pruner.n_warmup_step": 2})
    with pytest.raises(ConfigError) as error:
        load_study_config(path)
    for text in ("n_trails", "n_warmup_step", str(path)):
        assert text in str(error.value)

    code, err = _run(capsys, "search", "--config", str(path), "--workers", "2", "--quiet")
    assert code == 1 and "n_trails" in err
    stored.assert_untouched()


def test_space_whose_smallest_model_is_over_budget_is_refused_before_anything_runs(stored, capsys):
    path = stored.variant(
        "huge",
        **{"space.hidden_layers": {"low": 8, "high": 8}, "space.base_width": {"low": 4096, "high": 8192},
           "space.context_frames": {"low": 50, "high": 50}},
    )
    with pytest.raises(ParamLimitError) as error:
        load_study_config(path)
    message = str(error.value)
    assert "smallest model" in message and "param_limit=20,000,000" in message and str(path) in message

    code, err = _run(capsys, "worker", "--config", str(path))
    assert code == 1 and "param_limit" in err
    stored.assert_untouched()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["refuses", "never_answers"])
def test_unreachable_storage_is_one_storage_error_naming_the_url_without_its_password(stored, capsys, server):
    out = stored.folder / f"unreachable-{server}.csv"
    # The port stays ours for the whole test (no other process can take it): bound but not listening, a connection
    # is refused at once; listening but never accepting, TCP connects and the database handshake never comes (a
    # hung server, a black-holing firewall).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        if server == "never_answers":
            holder.listen(4)
        port = holder.getsockname()[1]
        url = f"postgresql://phonetune:secret@127.0.0.1:{port}/studies"
        started = time.monotonic()
        code, err = _run(capsys, "export", "--config", str(stored.path), "--set", f"study.storage={url}",
                         "--out", str(out))
        elapsed = time.monotonic() - started
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"postgresql://phonetune:***@127.0.0.1:{port}/studies must be reachable" in err and "secret" not in err
    if server == "never_answers":
        # The connect timeout, not a hang or a retry loop: within a margin for a loaded machine.
        assert "timeout" in err and POSTGRES_CONNECT_TIMEOUT_S - 1 <= elapsed < POSTGRES_CONNECT_TIMEOUT_S + 8, elapsed
    else:
        assert "Connection refused" in err and elapsed < POSTGRES_CONNECT_TIMEOUT_S, elapsed
    assert not out.exists()
    stored.assert_untouched()


@pytest.mark.parametrize(
    "command",
    [
        ["promote", "--top", "1"],
        ["export", "--out", "OUT/sheet.csv"],
        ["report", "--out", "OUT/report.html"],
        ["retrain", "--trial", "best", "--out", "OUT/retrain"],
        ["ensemble", "--out", "OUT/ensemble"],
        ["dashboard", "--port", "0"],
        ["worker"],
    ],
    ids=lambda command: command[0],
)
def test_study_name_that_does_not_exist_is_named_with_the_stored_ones(stored, capsys, command):
    out = stored.folder / f"unknown-{command[0]}"
    argv = [part.replace("OUT", str(out)) for part in command]
    code, err = _run(capsys, argv[0], "--config", str(stored.path), "--set", "study.name=no-such-study", *argv[1:])
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    # What must hold, where, what the storage holds instead (the study that does exist), and what to do.
    assert f"study 'no-such-study' must exist in {stored.config.paths.storage_url}" in err, err
    assert "but it holds these studies: tiny;" in err and "run `phonetune search --config ...` first" in err, err
    assert not out.exists(), f"{out} was written for a study that does not exist"
    # Neither the missing study nor its full-data twin was created on the way, and the stored one is as it was.
    stored.assert_untouched()


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None when it has only loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_dashboard_binds_loopback_unless_told_otherwise(stored):
    parser, _dashboard = build_parser("dashboard")
    args = parser.parse_args(["dashboard", "--config", str(stored.path), "--port", "0"])
    assert args.host == "127.0.0.1"
    assert parser.parse_args(["dashboard", "--config", str(stored.path), "--host", "0.0.0.0"]).host == "0.0.0.0"
    # The socket the server really binds with the command's defaults: loopback only.
    server = DashboardServer.start(build_storage(stored.config.paths.storage_url), host=args.host, port=args.port)
    try:
        assert server.httpd.socket.getsockname()[0] == "127.0.0.1"
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        other = _outward_address()
        if other is not None:
            with pytest.raises(OSError):  # refused on the machine's network address
                socket.create_connection((other, server.port), timeout=5).close()
    finally:
        server.httpd.server_close()
    stored.assert_untouched()


@pytest.mark.parametrize("gpus", ["abc", "7"])
def test_gpus_that_this_host_does_not_have_are_refused_by_name(stored, capsys, gpus):
    if gpus == "7" and torch.cuda.device_count() > 7:
        pytest.skip("this host has a GPU 7")
    code, err = _run(capsys, "search", "--config", str(stored.path), "--workers", "1", "--gpus", gpus, "--quiet")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "--gpus" in err and gpus in err and "this host has" in err
    if torch.cuda.device_count() == 0:  # a CPU-only host: says that --gpus needs CUDA devices
        assert "no CUDA devices" in err and "--gpus needs CUDA devices" in err
    stored.assert_untouched()


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_dashboard_port_out_of_range_is_a_named_error(stored, capsys, port):
    code, err = _run(capsys, "dashboard", "--config", str(stored.path), "--port", port)
    assert code == 1 and "--port" in err and port in err and "1..65535" in err
    stored.assert_untouched()


def _dashboard(stored, *flags: str) -> tuple[str, str]:
    """Start ``phonetune dashboard`` as a user would, wait for its URL, stop it with Ctrl-C: (stdout, stderr)."""
    command = [sys.executable, "-m", "phonetune.cli", "dashboard", "--config", str(stored.path), *flags]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = readline_within(process.stdout, 120, "phonetune dashboard")  # the URL, once the socket is bound
        assert "optuna-dashboard for study" in first, first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return first + out, err


@pytest.mark.timeout(120)
def test_dashboard_on_all_interfaces_prints_one_loud_warning(stored):
    out, err = _dashboard(stored, "--host", "0.0.0.0", "--port", "0")
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, err
    assert "every network interface" in warnings[0] and "no login" in warnings[0] and "'tiny'" in warnings[0]
    assert "dashboard stopped" in out

    out, err = _dashboard(stored, "--port", "0")  # the default, loopback: no warning
    assert "WARNING" not in err and "127.0.0.1" in out
    stored.assert_untouched()


@pytest.mark.parametrize("scheme", ["sqlite:///", "journal:///"])
def test_file_storage_in_a_folder_that_does_not_exist_is_refused_not_created(stored, tmp_path, capsys, scheme):
    missing = tmp_path / "nonexistent" / "dir"
    url = f"{scheme}{missing / 'x.db'}"
    code, err = _run(capsys, "export", "--config", str(stored.path), "--set", f"study.storage={url}",
                     "--out", str(tmp_path / "never.csv"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert url in err and f"the folder {missing} does not exist" in err and "mkdir -p" in err
    assert not (tmp_path / "nonexistent").exists()  # no folder tree made from the typo
    with pytest.raises(StorageError, match="does not exist"):
        build_storage("sqlite:////nonexistent/dir/x.db")
    assert not Path("/nonexistent/dir").exists()
    stored.assert_untouched()


def test_default_storage_folder_is_still_made_in_the_working_folder(tmp_path, monkeypatch):
    from phonetune.search.study import storage_for

    corpus_root = tmp_path / "data"  # not read: opening the storage needs no data
    config = load_study_config(write_study(tmp_path, corpus_root, **{"study.storage": None}))
    monkeypatch.chdir(tmp_path)  # a working folder without studies/
    assert config.paths.storage_url == f"sqlite:///{tmp_path / 'studies' / 'tiny.db'}"
    storage_for(config)
    assert (tmp_path / "studies" / "tiny.db").is_file()


@pytest.mark.parametrize("command", [["export", "--out", "sheet.csv"], ["report", "--out", "r.html"],
                                     ["promote"], ["retrain"], ["ensemble"], ["dashboard", "--port", "0"]])
def test_reading_a_study_of_a_mistyped_default_storage_creates_no_database(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path, tmp_path / "data", **{"study.storage": None})
    code, err = _run(capsys, command[0], "--config", str(path), "--set", "study.name=nope", *command[1:])
    assert code == 1 and "nope.db" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "studies").exists()  # neither the database nor its folder was made


def test_database_url_without_its_driver_names_the_package_to_install(stored, capsys):
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mysqlclient is installed here")
    code, err = _run(capsys, "worker", "--config", str(stored.path), "--set", "study.storage=mysql://x")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "mysql://x" in err and "pip install mysqlclient" in err and "pip install pymysql" in err
    assert "Please install appropriate one" not in err

    code, err = _run(capsys, "worker", "--config", str(stored.path), "--set", "study.storage=nosuchdb://x")
    assert code == 1 and "'nosuchdb'" in err and "does not know" in err
    stored.assert_untouched()


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"fidelity.train_fraction": 0.5}, "fidelity.train_fraction: 1.0 -> 0.5"),
        ({"fidelity.trial_epochs": 2}, "fidelity.trial_epochs: 1 -> 2"),
        ({"study.param_limit": 50_000}, "study.param_limit: 20000000 -> 50000"),
        ({"space.lr": {"low": 1e-3, "high": 2e-3, "log": True}}, "space.lr"),
    ],
)
def test_rerunning_a_study_with_other_fidelity_budget_or_space_is_refused_by_name(stored, capsys, changes, named):
    path = stored.variant(f"mixed-{abs(hash(named))}", **changes)
    code, err = _run(capsys, "search", "--config", str(path), "--workers", "1", "--quiet")
    assert code == 1 and named in err and "--set study.name=" in err, err
    stored.assert_untouched()


def test_unwritable_artifacts_folder_stops_the_search_before_its_first_trial(stored, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = stored.variant("unwritable", **{"study.artifacts_dir": str(blocker / "runs")})
    code, err = _run(capsys, "search", "--config", str(path), "--workers", "2", "--quiet")
    assert code == 1 and str(blocker / "runs") in err and "must be writable" in err, err
    assert err.count("must be writable") == 1  # one message, not one per trial or worker
    stored.assert_untouched()


def test_search_refused_for_bad_data_leaves_no_empty_study_behind(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "data")
    broken = sorted((Path(corpus.root) / "dev-clean" / "mfcc").glob("*.npy"))[0]
    frames = np.load(broken)
    frames[3, 5] = np.nan
    np.save(broken, frames)
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 1, "fidelity.trial_epochs": 1})
    config = load_study_config(path)
    database = Path(config.paths.storage_url.removeprefix("sqlite:///"))
    code, err = _run(capsys, "search", "--config", str(path), "--workers", "1", "--quiet")
    assert code == 1 and broken.name in err and "non-finite" in err, err
    assert not database.exists(), f"{database} was left behind by a search that never started"


def test_worker_started_before_its_study_exists_is_told_so_and_creates_nothing(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 1})
    config = load_study_config(path)
    database = Path(config.paths.storage_url.removeprefix("sqlite:///"))
    code, err = _run(capsys, "worker", "--config", str(path), "--quiet")
    assert code == 1 and "does not exist" in err and "phonetune search" in err, err
    assert not database.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA, so a CUDA device is no error here")
@pytest.mark.parametrize(
    "command, setting, device",
    [
        (["train", "--set", 'train.device="cuda"'], "[train] device", "cuda"),
        (["train", "--set", 'train.device="cuda:1"'], "[train] device", "cuda:1"),
        (["predict", "--device", "cuda"], "(--device)", "cuda"),
    ],
    ids=["train-cuda", "train-cuda-1", "predict-cuda"],
)
def test_a_cuda_device_on_a_host_without_cuda_is_one_named_error_and_writes_nothing(stored, tmp_path, capsys, command,
                                                                                    setting, device):
    out = tmp_path / "out"
    if command[0] == "train":
        argv = ["train", "--config", str(REPO / "studies" / "starter.toml"), "--out", str(out), "--quiet"]
    else:
        argv = ["predict", "--checkpoint", str(stored.config.paths.trial_dir(0) / "best.pt"), "--out", str(out)]
    code, err = _run(capsys, *argv, "--data", str(stored.corpus.root), *command[1:])
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert setting in err and f"device={device!r}" in err and "this machine has no CUDA" in err, err
    assert not out.exists(), f"{out} was written by a run that cannot start"
    stored.assert_untouched()
