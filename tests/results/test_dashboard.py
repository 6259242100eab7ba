"""optuna-dashboard on a real study's storage (``phonetune dashboard``): served over HTTP, and a study name the
storage does not hold refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from shared import free_port

from phonetune.cli.main import main


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_dashboard_serves_the_study_over_http(searched):
    path, config, study = searched
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "phonetune.cli", "dashboard", "--config", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/" in first_line, first_line + process.stderr.read()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                listing = _get_json(f"{base}/api/studies")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        (summary,) = [s for s in listing["study_summaries"] if s["study_name"] == config.name]
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}")
        assert detail["name"] == config.name
        assert len(detail["trials"]) == len(study.trials)
        stored = {trial.number: trial.state.name for trial in study.trials}
        served = {trial["number"]: trial["state"] for trial in detail["trials"]}
        assert {number: state.upper() for number, state in served.items()} == stored
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=10)
