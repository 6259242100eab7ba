"""optuna-dashboard on a real study's storage (``phonetune dashboard``): served over HTTP. (A study name the storage
does not hold: tests/scenarios/test_hostile_study.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

from shared import readline_within


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_dashboard_serves_the_study_over_http(searched):
    path, config, study = searched
    # Port 0: the server binds a port the kernel picks and prints it (no free port to race another process for).
    process = subprocess.Popen(
        [sys.executable, "-m", "phonetune.cli", "dashboard", "--config", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = readline_within(process.stdout, 120, "phonetune dashboard")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/", first_line)
        assert found and int(found.group(1)) > 0, first_line
        base = f"http://127.0.0.1:{found.group(1)}"
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
