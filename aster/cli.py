"""`aster` console command: what users do by hand (list datasets, validate a file, make the synthetic set, score)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _entry() -> None:
    from aster.env import setup_environment

    setup_environment()


def _options(pairs: list[str] | None) -> dict:
    """`key=value` pairs (values parsed as YAML: numbers, lists, booleans) into loader options."""
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"option {pair!r} is not of the form key=value")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def datasets() -> None:
    """List every loader (dataset format) with its options."""
    from aster.data.loaders import describe_loaders

    for kind, info in sorted(describe_loaders().items()):
        typer.echo(f"{kind:10s} {info['summary']}")
        for name, default in (info.get("options") or {}).items():
            typer.echo(f"{'':12s}{name} = {default!r}")


@app.command()
def validate(kind: str, path: Annotated[Optional[str], typer.Argument()] = None,
             option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="loader option key=value")] = None,
             window: int = 100, train_fraction: float = 0.8, constant_channels: str = "keep") -> None:
    """Load a dataset in its original format and run the Great Expectations checks on every series."""
    from aster.data import DataError
    from aster.data.loaders import load
    from aster.data.validation import validate_series

    try:
        series = load(kind, path, **_options(option))
    except (DataError, FileNotFoundError) as e:
        _fail(str(e))
    failed = False
    for ds in series:
        try:
            result = validate_series(ds, window, train_fraction, constant_channels)
        except ValueError as e:
            _fail(str(e))
        status = "ok" if result.success else "FAILED"
        typer.echo(f"{ds.name}: train {ds.train.shape}, test {ds.test.shape}, "
                   f"{100 * ds.test_labels.mean():.2f} % anomalous test steps: {status}")
        for line in result.failures:
            typer.echo(f"  - {line}")
        for line in result.warnings:
            typer.echo(f"  ! {line}")
        failed |= not result.success
    raise typer.Exit(1 if failed else 0)


@app.command()
def synthetic(out: Path, seed: int = 2021, n_channels: int = 12, train_length: int = 8000,
              test_length: int = 5000, plot: bool = True) -> None:
    """Write the synthetic default dataset (ingested format: .npz + .json) and a PNG of it to OUT."""
    from aster.data.store import save_series
    from aster.data.synthetic import SyntheticConfig, make_synthetic, plot_synthetic

    try:
        ds = make_synthetic(SyntheticConfig(n_channels=n_channels, train_length=train_length,
                                            test_length=test_length, seed=seed))
    except ValueError as e:
        _fail(str(e))
    path = save_series(ds, out)
    typer.echo(f"wrote {path} (train {ds.train.shape}, test {ds.test.shape}, "
               f"{100 * ds.test_labels.mean():.2f} % anomalous test steps)")
    if plot:
        typer.echo(f"wrote {plot_synthetic(ds, out / 'synthetic.png')}")


@app.command()
def score(export_dir: Path, csv: Path, out: Annotated[Optional[Path], typer.Option(help="output CSV")] = None,
          stride: int = 1, device: str = "auto") -> None:
    """Score a CSV (header = the model's channel names) with an exported model; write per-step scores and flags."""
    import numpy as np
    import pandas as pd

    from aster.inference import ExportedModel

    try:
        model = ExportedModel(export_dir, device)
        frame = pd.read_csv(csv)
    except (FileNotFoundError, ValueError, pd.errors.ParserError) as e:
        _fail(str(e))
    channels = list(model.channels)
    missing = [c for c in channels if c not in frame.columns]
    if missing:
        _fail(f"{csv}: missing column(s) {missing}; the model expects {channels}")
    values = frame[channels]
    non_numeric = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if non_numeric:
        _fail(f"{csv}: column(s) {non_numeric} are not numeric")
    series = values.to_numpy(np.float64)
    if not np.isfinite(series).all():
        row, col = np.argwhere(~np.isfinite(series))[0]
        _fail(f"{csv}: row {row + 2} column {channels[col]!r} is not a finite number")
    if len(series) < model.window:
        _fail(f"{csv}: {len(series)} rows, the model's window needs {model.window}")
    try:
        scores = model.score_series(series, stride, progress=True)
    except ValueError as e:
        _fail(f"{csv}: {e}")
    threshold = model.threshold
    result = pd.DataFrame({"score": scores, "anomaly": model.flags(scores)})
    target = out or csv.with_name(csv.stem + ".scores.csv")
    from aster.io import atomic_path

    with atomic_path(target, ".csv") as tmp:
        result.to_csv(tmp, index_label="row")
    typer.echo(f"wrote {target}: {len(result)} steps, {int(result['anomaly'].sum())} above the threshold "
               f"{threshold:.4g} (providers: {', '.join(model.providers)})")


if __name__ == "__main__":
    app()
