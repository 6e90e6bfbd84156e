"""`aster` console command: what users do by hand (list datasets, validate a file, make the synthetic set, score)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

for _var, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(_var, _value)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


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
             window: int = 100, train_fraction: float = 0.8) -> None:
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
        result = validate_series(ds, window, train_fraction)
        status = "ok" if result.success else "FAILED"
        typer.echo(f"{ds.name}: train {ds.train.shape}, test {ds.test.shape}, "
                   f"{100 * ds.test_labels.mean():.2f} % anomalous test steps: {status}")
        for line in result.failures:
            typer.echo(f"  - {line}")
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


if __name__ == "__main__":
    app()
