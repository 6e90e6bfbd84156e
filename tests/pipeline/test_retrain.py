"""The retraining flow end to end on a temporary copy of this repository with tiny params.

The module-scoped `project` is shared by the flow tests, which run in file order and build on each other:
(a) first run promotes v0001 -> (b) unchanged inputs: skipped, nothing trained -> (c) new seed, gate demands an
impossible improvement: rejected, v0001 still served (and a second run skips the rejected build) -> (d) crash
injected mid-promotion: flow fails, v0001 still served, nothing half-written visible -> (e) the same candidate via
`dvc exp run`: promoted as v0002 -> (f) --force rebuilds every stage, and the identical model is not a new version.
One full pipeline run (a) and one train+evaluate+export run (c) dominate the time (~2 min on 2 CPU cores).
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

if "PREFECT_HOME" not in os.environ:  # before prefect is imported: it reads its settings once
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="aster-test-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from pipeline.retraining.dvc import changes, clear_persisted, lock_entries  # noqa: E402
from pipeline.retraining.flow import RetrainFailed, retrain  # noqa: E402
from pipeline.retraining.gate import gate  # noqa: E402
from pipeline.retraining.registry import Registry  # noqa: E402
from pipeline.retraining.runner import PipelineError, run_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("data/ingested/", "data/prepared/", "reports/", "models/", "checkpoints/", "dvclive/", "plots/",
           "metrics/", "export/", "registry/")
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    with prefect_test_harness(server_startup_timeout=60):
        yield


def tiny_params(path: Path, **train) -> None:
    p = yaml.safe_load(path.read_text())
    p["datasets"] = {"synthetic": {**p["datasets"]["synthetic"],
                                   "options": {"n_channels": 8, "train_length": 1000, "test_length": 2000,
                                               "seed": 2021}}}
    p["window"] = 16
    p["model"].update(name="aster", backbone="none", d_model=16, depth=1, patch=4)
    p["train"].update({"epochs": 1, "steps": None, "stride": 8, "seed": 2021, "device": "cpu", **train})
    p["train"]["threshold"]["score_stride"] = 8
    p["evaluate"]["score_stride"] = 8
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """This repository's source (tracked and untracked-but-not-ignored files, no pipeline outputs), tiny params,
    one commit (dvclive refuses a repo without commits)."""
    dst = tmp_path_factory.mktemp("retrain") / "project"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in files:
        if f and not f.startswith(OUTPUTS) and f != "dvc.lock" and (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    tiny_params(dst / "params.yaml")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tiny project"]):
        subprocess.run(GIT + cmd, cwd=dst, check=True)
    return dst


def served(project: Path):
    """Load what a service started now would serve (ASTER_MODEL_DIR = the promoted pointer)."""
    from serving.service import AnomalyScorer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTER_MODEL_DIR", str(project / "registry" / "synthetic" / "current"))  # every series of it
        mp.setenv("ASTER_DEVICE", "cpu")
        svc = AnomalyScorer()
    model = svc.models["synthetic"]
    scores = svc.score_windows(np.zeros((3, model.window, len(model.channels)), np.float32), series_id="synthetic")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    return Path(svc.metadata()["model_dir"]).name, model.card["onnx"]["sha256"]


def last_run(project: Path) -> dict:
    runs = sorted((project / "registry" / "synthetic" / "runs").glob("*.json"))
    return json.loads(runs[-1].read_text())


def run(project: Path, **kw) -> dict:
    return retrain(datasets=["synthetic"], project_dir=str(project), **kw)["datasets"]["synthetic"]


# ----------------------------------------------------------------------------- end to end (ordered)

@pytest.mark.slow  # the ordered end-to-end tests: all or none (they share `project`)
def test_a_first_run_promotes(project):
    r = run(project)
    assert r["decision"] == "promoted" and r["version"] == "v0001", r["reason"]
    assert os.readlink(project / "registry" / "synthetic" / "current") == "v0001"
    version, sha = served(project)
    assert version == "v0001" and sha == r["series"]["synthetic"]
    md = Path(r["summary"][1]).read_text()
    assert "promoted v0001" in md and "| mean.vus_pr |" in md
    record = Registry(project / "registry").current("synthetic").record
    assert record["dvc_lock"] == lock_entries(project, "synthetic")  # what DVC says the served model was built from
    assert record["dvc_lock"]["train@synthetic"]["params"]["params.yaml"]["train"]["seed"] == 2021
    assert record["changes"] == ["no promoted model yet"]


@pytest.mark.slow
def test_b_unchanged_inputs_are_skipped(project):
    watched = [project / "dvc.lock", project / "models/synthetic/synthetic/model.safetensors",
               project / "export/synthetic/synthetic/model.onnx"]
    before = [p.stat().st_mtime_ns for p in watched]
    r = run(project)
    assert r["decision"] == "skipped" and r["version"] == "v0001" and r["changes"] == [] and r["dvc_status"] == {}
    assert "same inputs as v0001" in r["reason"]
    assert [p.stat().st_mtime_ns for p in watched] == before  # nothing was trained or exported
    assert "pipeline" not in r and Path(r["summary"][0]).with_suffix(".log").read_text() == ""  # no command ran


@pytest.mark.slow
def test_c_worse_candidate_is_rejected(project):
    tiny_params(project / "params.yaml", seed=2022)
    r = run(project, max_drop=-1.0)  # the candidate must improve VUS-PR by 1.0: impossible
    assert r["decision"] == "rejected", r["reason"]
    assert r["changes"] == ["params: train.seed: 2021 -> 2022"] and r["cleared"] == ["checkpoints/synthetic"]
    assert "mean.vus_pr" in r["reason"] and r["gate"]["command"] == "dvc metrics diff --json --all HEAD"
    assert r["gate"]["dvc_metrics_diff"]["metrics/synthetic.json"]["mean.vus_pr"]["old"] == r["gate"]["old"]
    candidate = json.loads((project / "export/synthetic/synthetic/card.json").read_text())["onnx"]["sha256"]
    version, sha = served(project)
    assert version == "v0001" and sha != candidate  # a different model was trained, the old one is served
    assert last_run(project)["decision"] == "rejected"
    again = run(project, max_drop=-1.0)  # nothing changed since: DVC is up to date, the rejected build is not redone
    assert again["decision"] == "skipped" and "already rejected this build" in again["reason"]


@pytest.mark.slow
def test_d_crash_mid_promotion_keeps_the_old_model(project, monkeypatch):
    real, copied = shutil.copyfile, []

    def copyfile(src, dst, **kw):  # the second file of the new version fails: it is half-written
        copied.append(src)
        if len(copied) == 2:
            raise OSError("injected: disk full")
        return real(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with pytest.raises(RetrainFailed, match="injected: disk full"):
        run(project, max_drop=1.0)
    monkeypatch.undo()
    reg = Registry(project / "registry")
    assert reg.current("synthetic").name == "v0001" and [v.name for v in reg.versions("synthetic")] == ["v0001"]
    assert not [p for p in (project / "registry" / "synthetic").iterdir() if p.name.startswith(".")]
    assert served(project)[0] == "v0001"
    assert last_run(project)["decision"] == "failed" and last_run(project)["version"] == "v0001"


@pytest.mark.slow
def test_e_candidate_via_experiment_is_promoted(project):
    r = run(project, max_drop=1.0, use_experiments=True)
    assert r["decision"] == "promoted" and r["version"] == "v0002", r["reason"]
    exp = Registry(project / "registry").current("synthetic").record["experiment"]
    assert exp["name"].startswith("retrain-synthetic-") and len(exp["rev"]) == 40
    assert served(project) == ("v0002", json.loads(
        (project / "export/synthetic/synthetic/card.json").read_text())["onnx"]["sha256"])


@pytest.mark.slow
def test_f_force_rebuilds_but_an_identical_model_is_not_a_new_version(project):
    r = run(project, max_drop=1.0, force=True)
    log = Path(r["pipeline"]["log"]).read_text()
    assert "repro export@synthetic -f" in r["pipeline"]["command"] and "Running stage 'train@synthetic'" in log
    assert r["decision"] == "skipped" and "identical to v0002" in r["reason"], r["reason"]
    assert [v.name for v in Registry(project / "registry").versions("synthetic")] == ["v0001", "v0002"]


@pytest.mark.slow
def test_g_second_retraining_is_refused_while_one_runs(project):
    with Registry(project / "registry").lock():
        out = retrain(datasets=["synthetic"], project_dir=str(project))
    assert out["status"] == "busy" and "another retraining is running" in out["reason"] and out["datasets"] == {}


def start_slow_retraining(project: Path) -> tuple[subprocess.Popen, Path]:
    """`python -m pipeline.retrain run` as a real process, with a training that would take minutes; returns once
    the train stage is running (the process and the run's log)."""
    tiny_params(project / "params.yaml", steps=200_000, seed=2023)
    runs = project / "registry" / "synthetic" / "runs"
    before = set(runs.glob("*.log"))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.retrain", "--project-dir", str(project), "run",
                             "--datasets", "synthetic", "--max-drop", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        logs = set(runs.glob("*.log")) - before
        if logs and "Running stage 'train@synthetic'" in next(iter(logs)).read_text():
            time.sleep(3)  # well inside training
            return proc, next(iter(logs))
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the train stage did not start within 240 s")


def group_of(record: Path) -> list:
    import psutil

    pgid = json.loads(record.read_text())["pgid"]
    group = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                group.append(p)
        except OSError:
            pass
    return group


@pytest.mark.slow
def test_h_sigterm_stops_within_seconds_with_the_reason(project):
    proc, log = start_slow_retraining(project)
    record = log.with_suffix(".pid")
    assert record.exists() and group_of(record)  # the pipeline runs in its own process group
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 15 and proc.returncode == 143, out[-3000:]
    summary = json.loads(log.with_suffix(".json").read_text())
    assert summary["decision"] == "failed" and "SIGTERM" in summary["reason"], summary["reason"]
    assert not record.exists() and Registry(project / "registry").current("synthetic").name == "v0002"


@pytest.mark.slow
def test_i_after_a_sigkill_no_child_survives_the_next_run(project):
    proc, log = start_slow_retraining(project)
    record = log.with_suffix(".pid")
    proc.kill()  # SIGKILL: no handler runs; the stages (own process group) keep running, DVC's lock held
    proc.wait()
    orphans = group_of(record)
    assert orphans and all(p.is_running() for p in orphans)
    assert Registry(project / "registry").current("synthetic").name == "v0002"  # complete, still served
    tiny_params(project / "params.yaml", seed=2023)  # a quick training this time
    r = run(project, max_drop=1.0)
    assert r["decision"] == "promoted" and r["version"] == "v0003", r["reason"]  # not "busy": recovered
    assert not record.exists() and not any(p.is_running() for p in orphans)
    assert served(project)[0] == "v0003"


@pytest.mark.slow
def test_j_after_a_data_change_the_gate_scores_both_models_on_the_new_data(project):
    from pipeline.retraining.gate import same_data_metrics

    champion = Registry(project / "registry").current("synthetic")
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["datasets"]["synthetic"]["options"]["seed"] = 2024  # new data: another test part
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    r = run(project, max_drop=1.0)
    assert r["decision"] == "promoted", r["reason"]
    assert "params: datasets.synthetic.options.seed: 2021 -> 2024" in r["changes"]
    rescored = same_data_metrics({"champion": champion.path}, project / "data/prepared/synthetic",
                                 p["evaluate"], ["synthetic"])["champion"]["mean"]["vus_pr"]
    stored = json.loads(champion.metrics_path.read_text())["mean"]["vus_pr"]  # on the old data
    assert r["gate"]["old"] == pytest.approx(rescored) and r["gate"]["old"] != pytest.approx(stored)
    challenger = json.loads(Path(r["summary"][0]).with_name(r["run"] + ".challenger.json").read_text())
    assert r["gate"]["new"] == challenger["mean"]["vus_pr"] and "current prepared data" in r["gate"]["scored_on"]


# ----------------------------------------------------------------------------- retries

def test_transient_failures_are_retried_permanent_ones_not(tmp_path):
    marker, log = tmp_path / "attempted", tmp_path / "cmd.log"
    killed_once = ("import os, pathlib, signal; p = pathlib.Path(%r)\n"
                   "if not p.exists(): p.touch(); os.kill(os.getpid(), signal.SIGKILL)\nprint('ok')" % str(marker))
    fast = run_command.with_options(retry_delay_seconds=0)

    @flow
    def probe(code: str) -> dict:
        return fast([sys.executable, "-c", code], str(tmp_path), str(log), 60.0, name="probe")

    assert probe(killed_once)["command"].startswith(sys.executable)
    assert log.read_text().count("$ ") == 2  # killed by a signal (transient), retried once, succeeded
    log.write_text("")
    with pytest.raises(PipelineError, match=r"exited with 3 after .*: bad input"):
        probe("import sys; print('bad input'); sys.exit(3)")
    assert log.read_text().count("$ ") == 1  # a real failure is not retried


# ----------------------------------------------------------------------------- pieces

def test_persisted_outputs_of_stages_that_rerun_are_cleared(tmp_path):
    shutil.copy2(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "checkpoints" / "synthetic").mkdir(parents=True)
    assert clear_persisted(tmp_path, "synthetic", ["export@synthetic"]) == []  # train does not re-run: kept
    assert clear_persisted(tmp_path, "synthetic", ["prepare@synthetic"]) == ["checkpoints/synthetic"]
    (tmp_path / "checkpoints" / "synthetic").mkdir(parents=True)
    assert clear_persisted(tmp_path, "synthetic", None) == ["checkpoints/synthetic"]  # --force: all


def test_changes_between_builds_and_gate():
    def stage(deps, outs, params):
        return {"deps": deps, "outs": outs, "params": {"params.yaml": params}}

    old = {"prepare@d": stage({"d.csv": "1", "a.py": "1"}, {"data/prepared/d": "p"}, {"window": 100}),
           "train@d": stage({"data/prepared/d": "p", "t.py": "1"}, {"models/d": "m"},
                            {"train": {"lr": 0.1, "seed": 1}})}
    new = {"prepare@d": stage({"d.csv": "2", "a.py": "1"}, {"data/prepared/d": "q"}, {"window": 100}),
           "train@d": stage({"data/prepared/d": "q", "t.py": "1", "b.py": "1"}, {"models/d": "n"},
                            {"train": {"lr": 0.01}})}
    assert changes(old, new) == ["params: train.lr: 0.1 -> 0.01", "params: train.seed: 1 -> (unset)",
                                 "deps: b.py added", "deps: d.csv changed"]  # data/prepared/d follows from d.csv
    assert changes(old, old) == [] and changes(None, new) == ["no promoted model yet"]
    assert gate(0.50, 0.495, "k", 0.01)[0] and not gate(0.50, 0.48, "k", 0.01)[0]
    assert not gate(0.50, 0.505, "k", -0.01)[0] and gate(0.50, 0.52, "k", -0.01)[0]  # must improve by 0.01
    assert not gate(0.5, float("nan"), "k", 0.01)[0] and gate(None, 0.1, "k", 0.01)[0]
