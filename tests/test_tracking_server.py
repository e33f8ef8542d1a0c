"""A shared tracking server: ``mlflow server`` on a PostgreSQL backend store with proxied
artifacts, started on 127.0.0.1, and a training job that logs to it over HTTP.

The session fixture starts a private PostgreSQL cluster in a temporary folder (as an
unprivileged user when the tests run as root: ``initdb`` refuses root), creates a
database, starts ``mlflow server`` against it on a free port and stops both in its
finalizer. Without PostgreSQL (Debian's ``postgresql`` package) or psycopg2 the tests
are skipped, except in CI (``CI=true``), where ``.ci/run`` installs PostgreSQL and they
fail instead.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason}; CI must run this test (.ci/run installs PostgreSQL)")
    pytest.skip(reason)


def _postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries, else those on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n"
                        f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


class Postgres:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1 only."""

    def __init__(self, bin_dir: Path, base: Path):
        self.bin = bin_dir
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self.user, self.password, self.database = "lab", secrets.token_hex(12), "mlflow"
        self.owner = None  # (uid, gid) to run the server as, when we are root
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
            self.owner = (account.pw_uid, account.pw_gid)
            os.chown(base, *self.owner)

    def _run(self, *args: str, timeout: float = 60) -> None:
        as_owner = ({"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
                    if self.owner else {})
        done = subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.base,
                              capture_output=True, text=True, timeout=timeout, **as_owner)
        if done.returncode != 0:
            pytest.fail(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner:
            os.chown(pwfile, *self.owner)
        # local (socket) connections trust the cluster's owner; TCP ones need the password
        self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "postgres.log"),
                  "-o", options, "-w", "-t", "60", "start", timeout=90)
        import psycopg2

        conn = psycopg2.connect(**self.connect_args("postgres"))
        try:
            conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {self.database}")
        finally:
            conn.close()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            except BaseException:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)  # the postmaster we started: immediate shutdown
                raise

    def connect_args(self, database: str | None = None) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "user": self.user,
                "password": self.password, "dbname": database or self.database,
                "connect_timeout": 10}

    @property
    def uri(self) -> str:
        """The backend store URI. The driver is named: SQLAlchemy 2.1 reads a bare
        ``postgresql://`` as psycopg 3, 2.0 as psycopg2; this project ships psycopg2."""
        return (f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def tracking_server(request):
    """``(http uri, artifact root, Postgres)`` of a running ``mlflow server``."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401  (mlflow server needs it for postgresql://)
    except ImportError:
        _unavailable("psycopg2 is not installed (pip install -e '.[dev]')")
    base = Path(tempfile.mkdtemp(prefix="lab-tracking-"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    # The cluster's own folder, directly under /tmp: pytest's tmp folders are private to
    # the user running the tests, and the database may run as another.
    pg_base = Path(tempfile.mkdtemp(prefix="lab-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(pg_base, ignore_errors=True))
    pg = Postgres(bin_dir, pg_base)
    request.addfinalizer(pg.stop)
    pg.start()

    artifacts = base / "artifacts"
    artifacts.mkdir()
    port = _free_port()
    log = base / "mlflow-server.log"
    # the store's URI (with its password) through the environment, not on the command line
    # that `ps` shows: the same as --backend-store-uri postgresql://...
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=pg.uri)
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1",
             "--serve-artifacts", "--artifacts-destination", artifacts.as_uri()],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop_server():
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)

    request.addfinalizer(stop_server)
    uri = f"http://127.0.0.1:{port}"
    _wait_for(f"{uri}/health", server, log, timeout=180)
    return uri, artifacts, pg


@pytest.mark.slow
def test_a_job_logs_to_the_shared_server(tracking_server, tmp_path):
    from mlflow.tracking import MlflowClient

    uri, artifact_root, pg = tracking_server
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLFLOW_HTTP_REQUEST_TIMEOUT="30",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="2")
    env.pop("MLFLOW_TRACKING_URI", None)
    job = subprocess.run(
        [sys.executable, "-m", "experiments.train", "trainer.epochs=2", "trainer.max_steps=6",
         "trainer.batch_size=16", "tracking.log_model=false", "tracking.experiment_name=shared-server",
         f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'outputs'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    assert f"logged to {uri}" in job.stdout
    run_id = re.search(r"Run (\w+) finished", job.stdout).group(1)
    # a server-tracked job keeps its checkpoints in the project's mlruns/checkpoints
    shutil.rmtree(ROOT / "mlruns" / "checkpoints" / run_id, ignore_errors=True)

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "shared-server"
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3, 4, 5, 6]
    assert run.data.params["optimizer.learning_rate"] == "0.001"
    assert run.data.params["tracking.uri"] == uri
    # artifacts go through the server (proxied), which writes them under its root
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    listed = {a.path for a in client.list_artifacts(run_id, "config")}
    listed |= {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"config/config.yaml", "config/overrides.yaml", "plots/loss_curve.png"} <= listed
    (stored,) = artifact_root.rglob(f"{run_id}/artifacts")
    assert "optimizer:" in (stored / "config" / "config.yaml").read_text()
    assert (stored / "plots" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # ... and the run itself lives in PostgreSQL
    import psycopg2

    conn = psycopg2.connect(**pg.connect_args())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
            assert cur.fetchone() == ("FINISHED",)
            cur.execute("SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'loss'",
                        (run_id,))
            assert cur.fetchone() == (6,)
    finally:
        conn.close()
