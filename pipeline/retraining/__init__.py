"""Scheduled retraining, built on DVC's own machinery: `dvc status` and dvc.lock say what is stale and what a model
was built from, `dvc repro` / `dvc exp run` rebuild it, `dvc metrics diff` feeds the gate.

    dvc.py       staleness and what changed, read from DVC (status, dvc.lock)
    runner.py    subprocesses: dvc and stage commands, retries of transient failures
    gate.py      the candidate export check and the promotion gate
    report.py    run summaries (markdown) and `status`
    registry.py  the promotion store: immutable versions and an atomically switched `current`
    flow.py      the Prefect flow tying them together (CLI: pipeline/retrain.py)
"""
