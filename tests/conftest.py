"""Test-wide environment: offline hubs, no telemetry, Prefect/GX state in temporary places."""

import os

for var, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false",
                   "BENTOML_DO_NOT_TRACK": "True", "DVC_NO_ANALYTICS": "1",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(var, value)
