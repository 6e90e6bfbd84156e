"""Thin DVC stage scripts (one per stage, each reading its own block of params.yaml) and Prefect flows."""
