"""Loader registry and dispatch (aster/data/loaders/__init__.py) and the shared option checks (_common.py):
unknown kinds and options, gap_policy values, missing sources.

Per-family tests are beside this module (test_loaders_<family>.py); real-data checks are in
test_loaders_real_data.py."""

import pytest

from aster.data import DataError
from aster.data.loaders import LOADERS, describe_loaders, load

# ---------------------------------------------------------------------------------------------------------------
# registry and dispatch

def test_registry_covers_every_kind_and_rejects_unknowns(tmp_path):
    assert {"psm", "pump", "swat", "catsv2", "tab_csv", "tsbad_csv", "daphnet", "msl", "smap", "smd", "skab",
            "asd", "npz", "synthetic"} <= set(LOADERS)
    assert describe_loaders()["smd"]["options"]["mode"] == "per_machine"
    with pytest.raises(DataError, match="unknown dataset kind 'nope'"):
        load("nope", tmp_path)
    with pytest.raises(DataError, match=r"smd: unknown option\(s\) \['machnes'\]"):
        load("smd", tmp_path, machnes=["1-1"])
    with pytest.raises(DataError, match="gap_policy='mean'"):
        load("psm", tmp_path, gap_policy="mean")
    with pytest.raises(DataError, match="does-not-exist.*not found"):
        load("msl", tmp_path / "does-not-exist.tar.xz")
