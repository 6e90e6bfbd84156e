"""The process environment of every entry point, set in one place: offline model hubs and no telemetry.

Entry points (stage scripts, the `aster` command, the service, retraining, benchmarks, tests) call
`setup_environment()` once; library modules never touch `os.environ`. Values already set win, so
`HF_HUB_OFFLINE=0 dvc repro` still lets a machine with a hub download a backbone.
"""

from __future__ import annotations

import os

ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",  # no model hub here: without it a missing backbone retries the network for ~50 s
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def setup_environment(env: dict | None = None) -> dict:
    """Fill in ENVIRONMENT's defaults in `env` (default: this process's os.environ) and return it."""
    env = os.environ if env is None else env
    for var, value in ENVIRONMENT.items():
        env.setdefault(var, value)
    return env
