"""Subprocesses of a retraining run: dvc and the stage commands, with retries of transient failures only."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from aster.env import setup_environment
from pipeline.retraining.registry import utc_now

# Output of a failed command that says "try again later", not "this is broken".
TRANSIENT = re.compile(r"Unable to acquire lock|database is locked|exited with -\d+|Resource temporarily unavailable|"
                       r"Temporary failure|Connection (reset|refused|timed out)", re.I)


class TransientError(RuntimeError):
    """Worth retrying: a timeout, a process killed by a signal, lock contention, a network hiccup."""


class PipelineError(RuntimeError):
    """Not worth retrying: the pipeline itself failed (bad data or params, a bug); the log says why."""


class Stopped(BaseException):
    """The retraining process was asked to stop (SIGTERM, SIGINT): not retried, recorded as the reason."""


def stop_on_signals() -> None:
    """SIGTERM and SIGINT raise Stopped: the running command's process group is killed on the way out
    (run_command), the run summary records the signal, and the process exits within seconds."""
    def handler(signum, frame):
        raise Stopped(f"stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def stop_reason(exc: BaseException) -> str | None:
    """"stopped by SIGTERM" for the exceptions a stop signal raises (Prefect's TerminationSignal inside a flow run,
    KeyboardInterrupt), else None. The running command's process group is killed on the way out (run_command)."""
    if isinstance(exc, Stopped):
        return str(exc)
    sig = getattr(exc, "signal", None)
    if isinstance(sig, int):
        return f"stopped by {signal.Signals(sig).name}"
    return "stopped by SIGINT" if isinstance(exc, KeyboardInterrupt) else None


# A running command is recorded in <run>.pid next to its log: {"owner": pid of the flow process, "pgid", "started"}.
# The stages run in their own process group, so a flow killed with SIGKILL leaves them running (and DVC's lock
# held); the next run (under the registry lock) finds the record of a dead owner and kills that group.
PID_SUFFIX = ".pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(registry_root: Path) -> list[str]:
    """Kill the process groups of commands whose flow process died (records of dead owners); return what was done."""
    import psutil

    done = []
    for record_path in sorted(registry_root.glob(f"*/runs/*{PID_SUFFIX}")):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("owner") and _alive(record["owner"]) and record["owner"] != os.getpid():
            continue  # a live retraining elsewhere owns it (the registry lock makes that rare)
        group = [p for p in psutil.process_iter(["pid", "create_time"])
                 if _pgid(p.pid) == record.get("pgid") and p.info["create_time"] >= record.get("started", 0) - 1]
        for p in group:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(group, timeout=10)
        record_path.unlink(missing_ok=True)
        done.append(f"{record_path.stem}: killed {len(group)} orphaned process(es) of a dead retraining run"
                    if group else f"{record_path.stem}: removed the record of a dead retraining run")
    return done


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def tool_env() -> dict:
    """The environment for dvc and the stage commands: this interpreter's bin/ first on PATH (stages call
    `python`), no telemetry, offline model hubs."""
    env = setup_environment(dict(os.environ))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def quick(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise PipelineError(f"{shlex.join(cmd)} (in {cwd}) exited with {r.returncode}: "
                            f"{(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def _is_transient(task, task_run, state) -> bool:
    """retry_condition_fn: retry TransientError only."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


@task(retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=_is_transient, cache_policy=NO_CACHE,
      task_run_name="{name}")
def run_command(cmd: list[str], cwd: str, log_path: str, timeout_s: float, name: str = "command") -> dict:
    """Run `cmd` in its own process group, output appended to `log_path`. Raises TransientError (retried) on a
    timeout, a signal or a transient message in the output, PipelineError (not retried) on any other failure."""
    log_path = Path(log_path)
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(cmd)}    # {utc_now()}\n")
        log.flush()
        start, t0 = log.tell(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=tool_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        record = log_path.with_suffix(PID_SUFFIX)
        record.write_text(json.dumps({"owner": os.getpid(), "pgid": proc.pid, "started": time.time(),
                                      "command": shlex.join(cmd)}))
        try:
            rc = proc.wait(timeout=timeout_s)
        except BaseException as e:  # timeout, or this process is being stopped: never leave the stages running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise TransientError(f"{shlex.join(cmd)}: timed out after {timeout_s:g} s (log: {log_path})") from None
            raise
        finally:
            record.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    with open(log_path) as f:
        f.seek(start)
        output = f.read()
    if rc == 0:
        return {"command": shlex.join(cmd), "seconds": round(seconds, 1), "log": str(log_path)}
    last = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
    msg = f"{shlex.join(cmd)} exited with {rc} after {seconds:.0f} s: {' | '.join(last)} (log: {log_path})"
    raise (TransientError if rc < 0 or TRANSIENT.search(output) else PipelineError)(msg)
