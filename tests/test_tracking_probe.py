"""The tracking server is tried with a real API call before any work: MLflow's basic-auth
app and a server whose database is down both answer /health, so /health alone let wrong
credentials and a broken store through until after the data, the model or the whole
training. A small HTTP server on loopback plays each kind of server."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments.core import tracking

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-pw"  # (a password with / or @ goes percent-encoded into a URL)


def _server(api_status: int, api_body: bytes):
    """A server whose /health is 200 and every API call answers ``api_status``; returns
    (server, the paths it was asked for, their Authorization headers)."""
    asked, auth = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            asked.append(self.path)
            auth.append(self.headers.get("Authorization"))
            status, body = (200, b"OK") if self.path == "/health" else (api_status, api_body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked, auth


@pytest.mark.parametrize("status, body, says", [
    (401, b"You are not authenticated. Please see ...", ("401",)),
    (500, b'{"error_code": "INTERNAL_ERROR", "message": "database is down"}',
     ("500", "database is down")),  # MLflow says the status or the server's message
])
def test_a_server_that_answers_health_but_not_the_api_is_refused_at_once(status, body, says):
    server, asked, auth = _server(status, body)
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{server.server_port}"
    try:
        started = time.monotonic()
        with pytest.raises(tracking.TrackingUnavailable) as refused:
            tracking.probe_store(uri, timeout_s=3)
        took = time.monotonic() - started
    finally:
        server.shutdown()
    message = str(refused.value)
    assert "/health" in asked and any(p.startswith("/api/") for p in asked), asked
    assert any(a and a.startswith("Basic ") for a in auth), "the credentials were not sent"
    assert any(s in message for s in says), message
    assert "\n" not in message and PASSWORD not in message
    assert took < 10, f"one try with a short timeout, not MLflow's retries: {took:.1f} s"
    # the probe's settings do not leak into the rest of the process
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


@pytest.mark.slow
def test_training_against_a_server_with_wrong_credentials_is_one_line_and_exit_2(tmp_path):
    server, asked, _ = _server(401, b"You are not authenticated.")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "experiments.train",
             f"tracking.uri=http://alice:{PASSWORD}@127.0.0.1:{server.server_port}"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    refusal = [line for line in lines if "401" in line]
    assert len(refusal) == 1, lines
    assert PASSWORD not in done.stdout + done.stderr
    assert not any("epochs" in line for line in lines), "it trained before refusing"
