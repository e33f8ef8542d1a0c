"""The MLflow UI end to end: a fresh ``mlflow ui`` on 127.0.0.1 over a fresh store with real
training runs, its REST API, and the addresses the lab prints (the runs table, each run's
page, in the "Model training" view) rendered by headless Chromium with a fresh profile.

Chromium is Debian's ``chromium`` (``.ci/run`` installs it). Outside CI the browser part is
skipped when no browser is installed; in CI (``CI=true``) it fails instead.
``MLFLOW_UI_SCREENSHOT=docs/mlflow-ui-chart-view.png`` also keeps the chart-view screenshot
(how the site's picture was taken).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments.gallery.figures import BROWSERS, headless_browser

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
EXPERIMENT = "ui-test"
OPTIMIZERS = ("adam", "keras_adam", "momentum")
TRAIN = ["dataset=digits", "model=mlp", "trainer.epochs=2", "trainer.batch_size=64",
         "trainer.max_steps=40", "tracking.log_model=false", "tracking.log_plots=false",
         f"tracking.experiment_name={EXPERIMENT}"]
SERVER_START_S = 120   # a loaded 2-core machine needs ~20 s
BROWSER_S = 90
SHOT = (1800, 1000)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Direct connections only (no proxy from the environment), and only to this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http(base: str, path: str, body: dict | None = None, timeout: float = 10.0):
    assert base.startswith(f"http://{HOST}:"), base
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/json"})
    with _OPENER.open(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An empty store with the experiment made, so server and training never both migrate
    a fresh database at once."""
    from mlflow.tracking import MlflowClient

    from experiments.core import tracking

    folder = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment(
        EXPERIMENT, artifact_location=tracking.artifact_location(uri))
    return uri


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    """``mlflow ui`` on a free port of 127.0.0.1; started before the runs are trained
    (it boots while TensorFlow works) and stopped, with its workers, in the finalizer."""
    folder = tmp_path_factory.mktemp("ui-server")
    port = free_port()
    log = open(folder / "server.log", "w")
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", NO_PROXY="*")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
         "--default-artifact-root", (folder / "artifacts").as_uri(),
         "--host", HOST, "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True)

    def log_tail():
        return (folder / "server.log").read_text()[-2000:]

    yield {"base": f"http://{HOST}:{port}", "proc": proc, "log_tail": log_tail}

    try:
        os.killpg(proc.pid, signal.SIGTERM)   # its own session: the server and its workers
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        log.close()


@pytest.fixture(scope="module")
def real_runs(store):
    """A few real trainings (experiments.train.pipeline.run on tiny configs) into the store;
    each result with what the command printed (``printed``)."""
    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()
    from experiments.train.config import validate
    from experiments.train.pipeline import run

    runs = {}
    for optimizer in OPTIMIZERS:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[*TRAIN, f"optimizer={optimizer}",
                                              f"tracking.uri={store}"])
        validate(cfg)
        printed = io.StringIO()
        runs[optimizer] = {**run(cfg, out=printed), "printed": printed.getvalue()}
    return runs


def wait_until_up(server) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server["proc"].poll() is not None:
            pytest.fail(f"mlflow ui exited with {server['proc'].returncode}:\n"
                        + server["log_tail"]())
        try:
            if http(server["base"], "/health", timeout=2) == "OK":
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow ui not up after {SERVER_START_S} s:\n" + server["log_tail"]())


@pytest.fixture(scope="module")
def live(server, real_runs):
    """The server up, with the trained runs in its store; the experiment's id."""
    wait_until_up(server)
    exp = http(server["base"], "/api/2.0/mlflow/experiments/get-by-name?"
               + urllib.parse.urlencode({"experiment_name": EXPERIMENT}))
    return {**server, "experiment_id": exp["experiment"]["experiment_id"], "runs": real_runs}


@pytest.mark.slow
def test_rest_api_lists_the_runs_with_their_metrics(live):
    found = http(live["base"], "/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [live["experiment_id"]], "max_results": 100})
    runs = {r["info"]["run_id"]: r for r in found["runs"]}
    assert set(runs) == {r["run_id"] for r in live["runs"].values()}
    datasets = set()  # the UI's "Datasets used": one per split, the same for every run
    for run in runs.values():
        inputs = {next(t["value"] for t in i["tags"] if t["key"] == "mlflow.data.context"):
                  i["dataset"] for i in run["inputs"]["dataset_inputs"]}
        assert sorted(inputs) == ["test", "training", "validation"]
        datasets.add(tuple((c, d["name"], d["digest"]) for c, d in sorted(inputs.items())))
    assert len(datasets) == 1 and all(name == "digits" for _, name, _ in datasets.pop())
    for optimizer, result in live["runs"].items():
        run = runs[result["run_id"]]
        assert run["info"]["status"] == "FINISHED"
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["optimizer"] == optimizer
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert {"loss", "grad_norm", "val_loss", "val_accuracy", "epoch_time_s",
                "test_accuracy"} <= set(metrics)
        assert metrics["test_accuracy"] == pytest.approx(result["test_accuracy"])
        assert metrics["val_loss"] == pytest.approx(result["val_loss"])
        history = http(live["base"], "/api/2.0/mlflow/metrics/get-history?"
                       + urllib.parse.urlencode({"run_id": result["run_id"],
                                                 "metric_key": "loss"}))
        assert [m["step"] for m in history["metrics"]] == list(range(1, 41))


def browser() -> str:
    path = headless_browser()
    if path:
        return path
    message = f"no headless browser ({', '.join(BROWSERS)}); `.ci/run` installs chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing browser is a failure)")
    pytest.skip(message)


def chromium(url: str, profile: Path, *args: str, budget_ms: int = 20000):
    """Headless Chromium on ``url``: every host but 127.0.0.1 unresolvable, no proxy,
    no background traffic; a fresh profile."""
    assert url.startswith(f"http://{HOST}:"), url
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--disable-default-apps",
           "--no-proxy-server", f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HOST}",
           f"--user-data-dir={profile}", "--hide-scrollbars",
           f"--virtual-time-budget={budget_ms}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_S)


@pytest.mark.slow
def test_runs_page_shows_the_runs_in_chromium(live, tmp_path):
    url = f"{live['base']}/#/experiments/{live['experiment_id']}/runs?workflowType=machine_learning"
    names = {f"{o}-digits-mlp-s0" for o in OPTIMIZERS}
    for budget in (20000, 60000):  # one retry with more (virtual) time on a slow machine
        page = chromium(url, tmp_path / f"profile-{budget}", "--dump-dom", budget_ms=budget)
        dom = page.stdout
        if all(n in dom for n in names):
            break
    assert page.returncode == 0, page.stderr[-2000:]
    missing = sorted(n for n in names if n not in dom)
    assert not missing, f"runs not shown: {missing}; page text: {dom[:1500]}"
    text = " ".join(re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", dom,
                           flags=re.S).split())
    assert f"{len(names)} matching runs" in text, text[:1500]


@pytest.mark.slow
def test_chart_view_screenshot(live, tmp_path):
    """The runs page in chart view, as a PNG (kept at $MLFLOW_UI_SCREENSHOT when set)."""
    from PIL import Image

    url = (f"{live['base']}/#/experiments/{live['experiment_id']}/runs"
           "?compareRunsMode=CHART&workflowType=machine_learning")
    shot = tmp_path / "chart.png"
    keep = os.environ.get("MLFLOW_UI_SCREENSHOT")
    # The charts fetch every metric's history before they draw: for the README's picture
    # a long virtual budget (~20 s here), else enough for the page and the run list.
    page = chromium(url, tmp_path / "profile", f"--window-size={SHOT[0]},{SHOT[1]}",
                    f"--screenshot={shot}", budget_ms=120000 if keep else 20000)
    assert page.returncode == 0 and shot.exists(), page.stderr[-2000:]
    assert shot.read_bytes()[:8] == PNG_MAGIC
    with Image.open(shot) as im:
        assert im.size == SHOT
        # a rendered page, not a blank one: many distinct colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
        if keep:  # a palette PNG: a fraction of the size, for the README
            im.convert("RGB").quantize(colors=128).save(keep, optimize=True)


# ------------------------------------------------- the addresses the lab prints, opened
VIEW = "?workflowType=machine_learning"
GENAI_OVERVIEW = ("Token Usage", "Observability")  # what the GenAI view shows instead


def printed_address(printed: str) -> str:
    """The UI address in a command's closing line (``See it with: mlflow ui ..., then
    open <address>``)."""
    found = re.findall(r"then open (http://\S+)", printed)
    assert len(found) == 1, printed
    return found[0]


def page_text(url: str, profile: Path, wanted: list[str]) -> tuple[str, str]:
    """The page's title and visible text in headless Chromium (a fresh ``profile``), with
    one retry on more virtual time until every string of ``wanted`` is there."""
    for budget in (20000, 60000):
        page = chromium(url, profile / str(budget), "--dump-dom", budget_ms=budget)
        assert page.returncode == 0, page.stderr[-2000:]
        title = re.search(r"<title>(.*?)</title>", page.stdout, flags=re.S)
        text = " ".join(re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ",
                               page.stdout, flags=re.S).split())
        if all(w in text for w in wanted):
            break
    return (title.group(1).strip() if title else ""), text


def test_addresses_open_the_model_training_view():
    from experiments.core import tracking

    local = "sqlite:////data/mlruns/mlflow.db"
    assert tracking.ui_url(local, "3", "abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert tracking.ui_url(local, "3") == (
        "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning")
    # a tracking server: its own host, never the credentials of the URI
    assert tracking.ui_url("https://me:s3cret@mlflow.example.org:8443/", "7", "r1") == (
        "https://mlflow.example.org:8443/#/experiments/7/runs/r1?workflowType=machine_learning")
    line = tracking.see_it("http://user:pw@10.0.0.5:5000", "2", "r9")
    assert line == "See it at http://10.0.0.5:5000/#/experiments/2/runs/r9?workflowType=machine_learning"
    line = tracking.see_it(local, "3", "abc")
    assert line == ("See it with: mlflow ui --backend-store-uri sqlite:////data/mlruns/mlflow.db, "
                    "then open http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert tracking.see_it(local, "3", "abc", experiment_only=True).endswith(
        "open http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning")


@pytest.mark.slow
def test_printed_addresses_open_the_runs_table_and_each_runs_page_in_chromium(live, tmp_path):
    """What ``python -m experiments.train`` prints opens, in a browser that has never seen
    MLflow, the run's own page, and one level up the runs table with every run: the
    "Model training" view, not the GenAI overview."""
    exp_id = live["experiment_id"]
    names = {f"{o}-digits-mlp-s0": r for o, r in zip(OPTIMIZERS, live["runs"].values())}
    experiment = http(live["base"], f"/api/2.0/mlflow/experiments/get?experiment_id={exp_id}")
    tags = {t["key"]: t["value"] for t in experiment["experiment"].get("tags", [])}
    assert tags.get("mlflow.experimentKind") == "custom_model_development"
    for name, result in names.items():
        address = printed_address(result["printed"])
        assert address == (f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/"
                           f"{result['run_id']}{VIEW}")
        url = address.replace("http://127.0.0.1:5000", live["base"])
        title, text = page_text(url, tmp_path / f"profile-{name}", [name, "Model metrics"])
        assert title.startswith(f"Run {result['run_id']}"), (title, text[:1500])
        assert name in text and "Model metrics" in text, text[:1500]
        assert not any(g in text for g in GENAI_OVERVIEW), text[:1500]
    from experiments.core import tracking

    url = tracking.ui_url(live["base"], exp_id)  # what compare prints, on this server
    assert url == f"{live['base']}/#/experiments/{exp_id}{VIEW}"
    title, text = page_text(url, tmp_path / "profile-experiment",
                            [*names, f"{len(names)} matching runs"])
    assert title.startswith("Runs - Experiment"), (title, text[:1500])
    missing = [n for n in names if n not in text]
    assert not missing and f"{len(names)} matching runs" in text, (missing, text[:1500])
    assert not any(g in text for g in GENAI_OVERVIEW), text[:1500]
