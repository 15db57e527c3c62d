"""The bounded load of verify.yml's rolling-restart check, against a real local server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy.tooling import REPO

PROBE = REPO / "roles/api/files/load_probe.py"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_probe(url: str, stop_file, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(PROBE), url, "--stop-file", str(stop_file), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_counts_successes_and_stops_on_the_stop_file(server, tmp_path) -> None:
    stop = tmp_path / "stop"
    stop.touch()  # already there: stops once --min-seconds have passed
    report = run_probe(f"{server}/ok", stop, "--min-seconds", "0.5", "--interval", "0.01")
    assert report["sent"] > 5 and report["failed"] == 0 and report["errors"] == []


def test_counts_http_errors_as_failures(server, tmp_path) -> None:
    report = run_probe(
        f"{server}/fail", tmp_path / "never", "--max-requests", "4", "--interval", "0"
    )
    assert report == {"sent": 4, "failed": 4, "errors": report["errors"]}
    assert len(report["errors"]) == 4 and "503" in report["errors"][0]


def test_is_bounded_in_time_without_a_stop_file(server, tmp_path) -> None:
    report = run_probe(
        f"{server}/ok", tmp_path / "never", "--max-seconds", "1", "--interval", "0.05"
    )
    assert 0 < report["sent"] <= 21


def test_connection_refused_is_a_failure(tmp_path) -> None:
    report = run_probe(
        "http://127.0.0.1:9/",
        tmp_path / "never",
        "--max-requests",
        "2",
        "--interval",
        "0",
        "--timeout",
        "1",
    )
    assert report["sent"] == 2 and report["failed"] == 2
