"""Test-wide environment: offline hubs, no telemetry, Prefect/GX state in temporary places."""


from aster.env import setup_environment

setup_environment()
