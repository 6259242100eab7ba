"""``phonetune dashboard --config STUDY.toml [--host 127.0.0.1] [--port 8080]``: optuna-dashboard on the storage."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, load_study_args
from phonetune.results.dashboard import DEFAULT_HOST, DEFAULT_PORT, DashboardServer, check_port, network_warning
from phonetune.search.storage import require_study
from phonetune.search.study import storage_for


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "dashboard", study=True,
        description="Serve optuna-dashboard for the study's storage: both the search study and its full-data "
        "study. It binds 127.0.0.1 unless --host says otherwise, because the dashboard can modify studies and "
        "has no login. Stop it with Ctrl-C.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_port(args.port)  # before the storage is opened
    config = load_study_args(args)
    storage = storage_for(config, must_exist=True)
    require_study(storage, config.study_name(), config.paths.storage_url, "run `phonetune search --config ...` first")
    store = config.paths.artifact_store_path
    server = DashboardServer.start(storage, host=args.host, port=args.port, artifact_dir=store if store.is_dir() else None)
    warning = network_warning(server, config.name)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        # Inside the try: a Ctrl-C that lands right after the URL line, before serving starts, stops it the same way.
        print(f"optuna-dashboard for study {config.name!r}: {server.url}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("dashboard stopped")
    return 0
