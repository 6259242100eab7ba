"""optuna-dashboard on a study's storage, served by the standard library's WSGI server.

Binding to 127.0.0.1 is the default because the dashboard can edit a study (tell trials, write notes) and has no
authentication; exposing it on a shared network is an explicit choice (``--host 0.0.0.0``). Port 0 asks the OS
for a free port; the server object reports the one it got.

Example::

    server = DashboardServer.start(storage, host="127.0.0.1", port=8080)
    print(server.url)
    server.serve_forever()  # until Ctrl-C or server.shutdown() from another thread
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from phonetune.errors import ConfigError, StorageError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # loopback only: the dashboard has write access to the study and no login
DEFAULT_PORT = 8080


def check_port(port: int) -> int:
    """ConfigError naming ``--port`` unless it is a TCP port (1..65535) or 0 (the OS picks a free one)."""
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"--port must be a TCP port, 1..65535 (or 0 for any free port), but got {port}; "
            f"the default is {DEFAULT_PORT}"
        )
    return port


def is_loopback(address: str) -> bool:
    """True when ``address`` (an IP or a host name) only reaches this machine."""
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(address, None)}
    except OSError:
        return False
    return bool(resolved) and all(ipaddress.ip_address(ip.split("%")[0]).is_loopback for ip in resolved)


def network_warning(server: "DashboardServer", study: str) -> str | None:
    """The one-line warning to print when ``server`` is reachable from other machines, else None."""
    if is_loopback(server.host):
        return None
    where = ("every network interface of this machine" if server.host in ("0.0.0.0", "::", "")
             else f"the network on {server.host}")
    return (
        f"WARNING: the dashboard serves study {study!r} to {where} on port {server.port}, with no login: anyone "
        f"who can reach it can read the study and edit it (tell trials, write notes). Unless that is what you "
        f"want, stop it and run without --host (127.0.0.1) and reach it through ssh -L {server.port}:127.0.0.1:"
        f"{server.port} this-host"
    )


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # The dashboard page fires several API requests at once; one thread per request keeps it responsive.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        logger.debug("%s - %s", self.address_string(), format % args)


@dataclass
class DashboardServer:
    """A bound, not yet serving, dashboard; ``url`` is valid as soon as it exists."""

    httpd: WSGIServer
    host: str

    @classmethod
    def start(cls, storage: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
              artifact_dir: str | Path | None = None) -> "DashboardServer":
        """Bind the dashboard for ``storage`` (an Optuna storage object or URL) to ``host:port``; with
        ``artifact_dir`` (an Optuna ``FileSystemArtifactStore`` folder) trial pages list their artifacts."""
        check_port(port)
        store = FileSystemArtifactStore(str(artifact_dir)) if artifact_dir is not None else None
        app = optuna_dashboard.wsgi(storage, artifact_store=store)
        try:
            httpd = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        except (OSError, OverflowError) as exc:
            raise StorageError(
                f"the dashboard must bind {host}:{port}, but the system refused: {exc}; "
                "choose another --port (or --port 0 for any free one)"
            ) from exc
        return cls(httpd, host)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        shown_host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown_host}:{self.port}/dashboard/"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def shutdown(self) -> None:
        self.httpd.shutdown()


def write_job_note(search_study: optuna.Study, full_study: optuna.Study | None, what_ran: Mapping[str, str],
                   model: Mapping[str, Any], report: str | Path) -> str:
    """Write what a ``phonetune run`` job made, final model first, as the dashboard's Note of both its studies (the
    note page of each, in Markdown, with links between them); returns the Markdown. The dashboard otherwise shows
    the screen's best trial as "Best Trial", which is not the model submitted."""
    def accuracy(key: str) -> str:
        value = model.get(key)
        return f"**{value:.4f}**" if isinstance(value, (int, float)) else "not labelled"

    members = ", ".join(str(member) for member in model.get("members", []))
    lines = [
        "## The final model",
        "",
        f"{model.get('chosen', '')} of search trials [{members}], {int(model.get('param_count', 0)):,} parameters: "
        f"dev {accuracy('dev_accuracy')} and test {accuracy('test_argmax_accuracy')}, each by the network's argmax.",
    ]
    if model.get("test_decoded_accuracy") is not None:
        lines.append(f"The sequence decode's labels: test {accuracy('test_decoded_accuracy')}.")
    lines += ["", f"Submission ({model.get('labels', 'argmax')} labels): `{model.get('submission', '')}`", "",
              f"Report: `{report}`", "", "## The job's plan", ""]
    lines += [f"- **{label}**: {text}" for label, text in what_ran.items() if label != "final model"]
    links = [f"[{search_study.study_name}: the search trials](../{search_study._study_id})"]
    if full_study is not None:
        links.append(f"[{full_study.study_name}: the full-data runs](../{full_study._study_id})")
    lines += ["", "## Studies", "", " · ".join(links)]
    body = "\n".join(lines) + "\n"
    for study in (search_study, full_study):
        if study is not None:
            optuna_dashboard.save_note(study, body)
    return body
