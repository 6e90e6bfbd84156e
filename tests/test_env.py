"""The process environment is set by entry points through aster.env, never by importing a library module."""

import json
import os
import subprocess
import sys
from pathlib import Path

from aster.env import ENVIRONMENT, setup_environment

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_library_leaves_the_environment_alone():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "aster").rglob("*.py")
                     if p.name != "__init__.py")
    code = ("import importlib, json, os, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(json.dumps({{v: os.environ.get(v) for v in {sorted(ENVIRONMENT)!r}}}))")
    clean = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {v: None for v in ENVIRONMENT}


def test_setup_fills_defaults_and_keeps_what_is_set():
    env = setup_environment({"HF_HUB_OFFLINE": "0"})
    assert env["HF_HUB_OFFLINE"] == "0"  # a user's explicit choice wins
    assert env["GX_ANALYTICS_ENABLED"] == "false" and set(ENVIRONMENT) <= set(env)
