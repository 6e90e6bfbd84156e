"""Loaders: tiny fixtures in each original layout (written into tmp_path), bad-input errors, and real-data checks
on ../shared/data when it is there (override with ASTER_SHARED_DATA)."""

import hashlib
import io
import logging
import lzma
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aster.data import DataError, Dataset
from aster.data.loaders import LOADERS, describe_loaders, load, read_psm_labels, read_telemanom

SHARED = Path(os.environ.get("ASTER_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def csv_bytes(df: pd.DataFrame, **kw) -> bytes:
    return df.to_csv(index=False, **kw).encode()


def rng_frame(rows: int, cols: list[str], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).random((rows, len(cols))).round(6), columns=cols)


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


def test_synthetic_loader_passes_config_and_records_source():
    (ds,) = load("synthetic", n_channels=8, train_length=1000, test_length=3000, seed=3)
    assert ds.train.shape == (1000, 8) and ds.test.shape == (3000, 8)
    assert ds.provenance["loader"] == "synthetic" and ds.provenance["config"]["seed"] == 3
    assert next(iter(ds.provenance["sha256"])).endswith("synthetic.py")
    with pytest.raises(DataError, match="synthetic: .*n_channels"):
        load("synthetic", n_channels=3)


# ---------------------------------------------------------------------------------------------------------------
# PSM: train.csv / test.csv / test_label.csv, timestamp_(min) + feature_0..24

PSM_COLS = [f"feature_{i}" for i in range(25)]


def make_psm(d: Path, n_train=40, n_test=30, nan_cells=((3, "feature_2"), (4, "feature_2"), (7, "feature_9")),
             xz_labels=True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    train = rng_frame(n_train, PSM_COLS, 1)
    for r, c in nan_cells:
        train.loc[r, c] = np.nan
    train.insert(0, "timestamp_(min)", np.arange(n_train, dtype=float))
    test = rng_frame(n_test, PSM_COLS, 2)
    test.insert(0, "timestamp_(min)", np.arange(n_train, n_train + n_test, dtype=float))
    labels = pd.DataFrame({"timestamp_(min)": test["timestamp_(min)"], "label": (np.arange(n_test) % 7 == 0) * 1})
    train.to_csv(d / "train.csv", index=False)
    test.to_csv(d / "test.csv", index=False)
    if xz_labels:
        (d / "test_label.csv.xz").write_bytes(lzma.compress(csv_bytes(labels)))
    else:
        labels.to_csv(d / "test_label.csv", index=False)
    return d


def test_psm_gap_policies(tmp_path, caplog):
    d = make_psm(tmp_path / "PSM")
    with pytest.raises(DataError, match=r"train\.csv: 2 missing values .* column 'feature_2' \(and 1 more"):
        load("psm", d)
    with caplog.at_level(logging.INFO, logger="aster.data.loaders"):
        (ds,) = load("psm", d, gap_policy="zero")
    assert "filled 3 values" in caplog.text
    assert ds.name == "PSM" and ds.channels == PSM_COLS
    assert ds.train.shape == (40, 25) and ds.test.shape == (30, 25) and ds.test_labels.sum() == 5
    assert ds.train[3, 2] == 0 and ds.train[7, 9] == 0 and not np.isnan(ds.train).any()
    assert ds.provenance["gaps_filled"] == {str(d / "train.csv"): {"feature_2": 2, "feature_9": 1}}
    digest = hashlib.sha256((d / "train.csv").read_bytes()).hexdigest()
    assert ds.provenance["sha256"][str(d / "train.csv")] == digest
    (ff,) = load("psm", d, gap_policy="ffill")
    raw = pd.read_csv(d / "train.csv")
    assert ff.train[3, 2] == ff.train[4, 2] == np.float32(raw.loc[2, "feature_2"])
    assert ff.train[7, 9] == np.float32(raw.loc[6, "feature_9"])
    (lead,) = load("psm", make_psm(tmp_path / "lead", nan_cells=((0, "feature_0"),)), gap_policy="ffill")
    assert lead.train[0, 0] == lead.train[1, 0]  # a leading gap takes the first valid value


def test_psm_bad_inputs_name_the_file(tmp_path):
    d = make_psm(tmp_path / "a", nan_cells=(), xz_labels=False)
    df = pd.read_csv(d / "test_label.csv")
    df.iloc[:-1].to_csv(d / "test_label.csv", index=False)
    with pytest.raises(DataError, match=r"test_label\.csv: 29 labels for 30 test rows"):
        load("psm", d)

    d = make_psm(tmp_path / "b", nan_cells=())
    pd.read_csv(d / "test.csv").drop(columns="feature_24").to_csv(d / "test.csv", index=False)
    with pytest.raises(DataError, match=r"test\.csv: 24 feature columns"):
        load("psm", d)

    d = make_psm(tmp_path / "c", nan_cells=())
    df = pd.read_csv(d / "train.csv").astype({"feature_3": object})
    df.loc[5, "feature_3"] = "abc"
    df.to_csv(d / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv: non-numeric value 'abc' in column 'feature_3' at line 7"):
        load("psm", d)

    d = make_psm(tmp_path / "d", nan_cells=())
    lines = (d / "test.csv").read_text().splitlines()
    lines[3] += ",0.5"
    (d / "test.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test\.csv: malformed CSV, wrong number of fields .*line 4"):
        load("psm", d)

    d = make_psm(tmp_path / "e", nan_cells=())
    (d / "test_label.csv.xz").unlink()
    with pytest.raises(DataError, match=r"test_label\.csv not found"):
        load("psm", d)


# ---------------------------------------------------------------------------------------------------------------
# PUMP (NSIBF zips): timestamp, sensor_00.., machine_status, label; label only used from test

def make_pump(d: Path) -> Path:
    d.mkdir()
    sensors = [f"sensor_{i:02d}" for i in range(4)]
    for part, n, seed in (("train", 20, 1), ("test", 15, 2)):
        df = rng_frame(n, sensors, seed)
        df.insert(0, "timestamp", pd.date_range("2018-04-01", periods=n, freq="min").astype(str))
        df["machine_status"] = "NORMAL"
        df["label"] = (np.arange(n) >= n - 3) * 1
        with zipfile.ZipFile(d / f"PUMP_{part}.zip", "w") as z:
            z.writestr(f"PUMP_{part}.csv", csv_bytes(df))
    return d


def test_pump_keeps_sensors_and_test_labels(tmp_path):
    (ds,) = load("pump", make_pump(tmp_path / "PUMP"))
    assert ds.channels == ["sensor_00", "sensor_01", "sensor_02", "sensor_03"]
    assert ds.train.shape == (20, 4) and ds.test.shape == (15, 4)
    assert ds.test_labels.tolist() == [0] * 12 + [1] * 3
    assert len(ds.provenance["sha256"]) == 2


# ---------------------------------------------------------------------------------------------------------------
# SWaT: iTrust Normal/Attack (whitespace in headers, "A ttack"), and NSIBF SWaT_train/SWaT_test zips

SWAT_HEADER = [" Timestamp", "FIT101", "LIT101", " MV101", "P101", " AIT201", "Normal/Attack"]


def swat_frame(n: int, labels: list[str], seed: int) -> pd.DataFrame:
    df = rng_frame(n, SWAT_HEADER[1:-1], seed)
    df.insert(0, SWAT_HEADER[0], [f" 22/12/2015 4:{i:02d}:00 PM" for i in range(n)])
    df[SWAT_HEADER[-1]] = labels
    return df


def test_swat_itrust_files(tmp_path):
    d = tmp_path / "SWaT"
    d.mkdir()
    title = "Physical Properties,,,,,,\n"  # iTrust exports carry title rows above the header
    (d / "SWaT_Dataset_Normal_v0.csv").write_text(title + swat_frame(12, ["Normal"] * 12, 1).to_csv(index=False))
    labels = ["Normal"] * 5 + ["Attack", "A ttack", " Attack"] + ["Normal"] * 2
    swat_frame(10, labels, 2).to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    (ds,) = load("swat", d, train_skip=2)
    assert ds.channels == ["FIT101", "LIT101", "MV101", "P101", "AIT201"]
    assert ds.train.shape == (10, 5) and ds.test.shape == (10, 5)
    assert ds.test_labels.tolist() == [0] * 5 + [1] * 3 + [0] * 2

    bad = swat_frame(10, labels[:-1] + ["Maybe"], 2)
    bad.to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    with pytest.raises(DataError, match=r"Attack_v0\.csv: label 'Maybe' .* at line 11"):
        load("swat", d)
    bad.drop(columns="P101").to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    with pytest.raises(DataError, match=r"Attack_v0\.csv: 4 feature columns, expected the 5"):
        load("swat", d)


def test_swat_nsibf_zips(tmp_path):
    d = tmp_path / "SWAT"
    d.mkdir()
    for part, n, lab in (("train", 8, ["Normal"] * 8), ("test", 6, ["Normal", "Attack", "Attack", "Normal",
                                                                     "Normal", "A ttack"])):
        df = swat_frame(n, lab, 3)
        df.columns = [c.strip() for c in df.columns]
        with zipfile.ZipFile(d / f"SWaT_{part}.zip", "w") as z:
            z.writestr(f"SWaT_{part}.csv", csv_bytes(df))
    (ds,) = load("swat", d)
    assert ds.train.shape == (8, 5) and ds.test_labels.tolist() == [0, 1, 1, 0, 0, 1]


# ---------------------------------------------------------------------------------------------------------------
# CATSv2 release: data.csv (timestamp, 17 channels, y, category) + metadata.csv

CATS_CH = ["aimp", "amud", "adbr", "adfl", "arnd", "asin1", "asin2", "bed1", "bed2", "bfo1", "bfo2", "bso1",
           "bso2", "bso3", "ced1", "cfo1", "cso1"]


def make_cats(d: Path, with_y: bool) -> Path:
    d.mkdir()
    n = 100
    df = rng_frame(n, CATS_CH, 4)
    ts = pd.date_range("2023-01-01", periods=n, freq="s")
    df.insert(0, "timestamp", ts.astype(str))
    y = np.zeros(n, int)
    y[[*range(30, 36), *range(80, 91)]] = 1
    if with_y:
        df["y"] = y
    df["category"] = 0
    df.to_csv(d / "data.csv", index=False)
    pd.DataFrame({"start_time": [str(ts[30]), str(ts[80])], "end_time": [str(ts[35]), str(ts[90])],
                  "root_cause": ["bso3", "bfo2"], "affected": ["['cfo1']", "['cso1']"], "category": [12, 1]}
                 ).to_csv(d / "metadata.csv", index=False)
    return d


@pytest.mark.parametrize("with_y", [True, False])
def test_catsv2_subsets_and_labels(tmp_path, with_y):
    d = make_cats(tmp_path / "cats", with_y)
    with pytest.raises(DataError, match="subsets=.*is required"):
        load("catsv2", d)
    a, b = load("catsv2", d, subsets=[(0, 50, 20), (50, 100, 25)])
    assert a.channels == CATS_CH and a.name == "CATSv2/0-50"
    assert a.train.shape == (20, 17) and a.test.shape == (30, 17) and b.train.shape == (25, 17)
    assert a.test_labels.sum() == 6 and b.test_labels.sum() == 11
    assert np.flatnonzero(b.test_labels)[[0, -1]].tolist() == [5, 15]  # rows 80 and 90, inclusive end
    with pytest.raises(DataError, match="start < start \\+ train_len < end"):
        load("catsv2", d, subsets=[(0, 50, 60)])


# ---------------------------------------------------------------------------------------------------------------
# TAB long CSV

def tab_long(x: np.ndarray, y: np.ndarray, names: list[str], date: bool = True) -> pd.DataFrame:
    n = len(x)
    blocks = [pd.DataFrame({"data": x[:, j], "cols": c}) for j, c in enumerate(names)]
    blocks.append(pd.DataFrame({"data": y, "cols": "label"}))
    df = pd.concat(blocks, ignore_index=True)
    if date:
        df.insert(0, "date", np.tile(pd.date_range("2020-01-01", periods=n, freq="min").astype(str), len(names) + 1))
    return df


def test_tab_csv_pivot_split_and_meta(tmp_path):
    x = np.random.default_rng(5).random((30, 3)).round(6)
    y = (np.arange(30) >= 25).astype(int)
    names = ["zeta", "alpha", "mid"]  # order of first appearance, not sorted
    f = tmp_path / "TOY.csv"
    tab_long(x, y, names).to_csv(f, index=False)
    (ds,) = load("tab_csv", f, train_lens=20)
    assert ds.name == "TOY" and ds.channels == names
    np.testing.assert_allclose(ds.train, x[:20], rtol=1e-6)
    assert ds.test.shape == (10, 3) and ds.test_labels.tolist() == [0] * 5 + [1] * 5
    with pytest.raises(DataError, match="train_lens not given and no DETECT_META.csv"):
        load("tab_csv", f)
    pd.DataFrame({"file_name": ["TOY.csv", "OTHER.csv"], "freq": ["min", "min"], "train_lens": [24, 5]}).to_csv(
        tmp_path / "DETECT_META.csv", index=False)
    assert load("tab_csv", f)[0].train.shape == (24, 3)

    g = tmp_path / "INTERLEAVED.csv"  # same values, rows shuffled across channels but stable within each
    long = tab_long(x, y, names, date=False)
    order = np.argsort(np.tile(np.arange(30), 4), kind="stable")
    long.iloc[order].to_csv(g, index=False)
    (di,) = load("tab_csv", g, train_lens=20)
    assert di.channels == names and np.array_equal(di.train, ds.train)


def test_tab_csv_bad_inputs(tmp_path):
    x = np.random.default_rng(6).random((10, 2))
    y = np.zeros(10, int)
    long = tab_long(x, y, ["a", "b"])
    f = tmp_path / "BAD.csv"
    long.iloc[:-1].to_csv(f, index=False)
    with pytest.raises(DataError, match=r"BAD\.csv: channel 'label' has 9 values, others 10"):
        load("tab_csv", f, train_lens=5)
    tab_long(x, y, ["a", "b"]).pipe(lambda d: pd.concat([d.iloc[20:], d.iloc[:20]])).to_csv(f, index=False)
    with pytest.raises(DataError, match="'label' block must be the last one"):
        load("tab_csv", f, train_lens=5)
    bad = long.astype({"data": object})
    bad.loc[13, "data"] = "n/a?"
    bad.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"BAD\.csv: non-numeric value 'n/a\?' in column 'data' at line 15"):
        load("tab_csv", f, train_lens=5)
    long.rename(columns={"cols": "channel"}).to_csv(f, index=False)
    with pytest.raises(DataError, match="expected date,data,cols or data,cols"):
        load("tab_csv", f, train_lens=5)


# ---------------------------------------------------------------------------------------------------------------
# TSB-AD CSV (and the Daphnet alias)

def make_tsbad(d: Path, name="018_Daphnet_id_1_HumanActivity_tr_40_1st_50.csv", n=60, xz=True) -> Path:
    d.mkdir(exist_ok=True)
    df = rng_frame(n, ["ankle_horiz_fwd", "ankle_vert", "trunk_vert"], 7).mul(1000).round()
    df["Label"] = (np.arange(n) >= 50) * 1
    data = csv_bytes(df)
    path = d / (name + ".xz" if xz else name)
    path.write_bytes(lzma.compress(data) if xz else data)
    return path


def test_tsbad_csv_and_daphnet(tmp_path):
    f = make_tsbad(tmp_path / "Daphnet")
    (ds,) = load("tsbad_csv", f)
    assert ds.name == "018_Daphnet_id_1_HumanActivity"
    assert ds.train.shape == (40, 3) and ds.test.shape == (20, 3) and ds.test_labels.sum() == 10
    (dp,) = load("daphnet", tmp_path / "Daphnet")
    assert np.array_equal(dp.test, ds.test) and "not TAB-comparable" in dp.provenance["notes"][0]
    g = make_tsbad(tmp_path / "other", name="plain.csv", xz=False)
    with pytest.raises(DataError, match=r"plain\.csv: no '_tr_<N>_'"):
        load("tsbad_csv", g)
    assert load("tsbad_csv", g, train_len=30)[0].train.shape == (30, 3)
    df = pd.read_csv(g)
    df.loc[10, "Label"] = 2
    df.to_csv(g, index=False)
    with pytest.raises(DataError, match=r"plain\.csv: label column 'Label' has '2' at line 12"):
        load("tsbad_csv", g, train_len=30)


# ---------------------------------------------------------------------------------------------------------------
# NASA telemanom (MSL / SMAP)

def make_telemanom(tmp_path: Path, as_tar=True, num_values_fix=0) -> Path:
    rng = np.random.default_rng(8)
    rows = [("T-9", "MSL", "[[2, 4]]", 10), ("C-1", "MSL", "[[0, 0], [8, 9]]", 12), ("P-2", "SMAP", "[[1, 2]]", 6),
            ("A-1", "SMAP", "[[3, 3]]", 7), ("P-10", "MSL", "[]", 5)]
    files = {"labeled_anomalies.csv": csv_bytes(pd.DataFrame(
        [(c, s, a, "[point]", n) for c, s, a, n in rows],
        columns=["chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"]))}
    for c, s, _, n in rows:
        width = 5 if s == "MSL" else 3
        for part, length in (("train", n + 3), ("test", n + (num_values_fix if c == "C-1" else 0))):
            b = io.BytesIO()
            np.save(b, rng.random((length, width)))
            files[f"data/{part}/{c}.npy"] = b.getvalue()
    if as_tar:
        return write_tar(tmp_path / "msl_data.tar.xz", files)
    d = tmp_path / "telemanom"
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return d


def test_msl_smap_order_labels_and_float64_internals(tmp_path):
    src = make_telemanom(tmp_path)
    t = read_telemanom(src, "MSL")
    assert t.chan_ids == ["C-1", "P-10", "T-9"]  # string sort
    assert t.train.dtype == np.float64 and t.train.shape == (15 + 8 + 13, 5) and t.test.shape == (27, 5)
    assert t.labels.dtype == bool
    assert np.flatnonzero(t.labels).tolist() == [0, 8, 9, 12 + 5 + 2, 12 + 5 + 3, 12 + 5 + 4]
    (ds,) = load("msl", src)
    assert ds.name == "MSL" and ds.channels[:2] == ["value", "cmd_1"] and ds.test_labels.sum() == 6
    np.testing.assert_array_equal(ds.test, t.test.astype(np.float32))
    d = tmp_path / "dir"
    d.mkdir()
    (sm,) = load("smap", make_telemanom(d, as_tar=False))
    assert sm.provenance["chan_ids"] == ["A-1"] and sm.train.shape == (10, 3)  # P-2 dropped by default
    assert load("smap", src, exclude=[])[0].provenance["chan_ids"] == ["A-1", "P-2"]


def test_truncated_archive_is_a_data_error(tmp_path):
    src = make_telemanom(tmp_path)
    src.write_bytes(src.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"msl_data\.tar\.xz: cannot read archive"):
        load("msl", src)


def test_msl_num_values_mismatch(tmp_path):
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: chan C-1 num_values 12 but .*test/C-1\.npy has 13"):
        load("msl", make_telemanom(tmp_path, num_values_fix=1))


# ---------------------------------------------------------------------------------------------------------------
# SMD (OmniAnomaly layout)

def smd_files(machines: dict[str, tuple[int, int] | None], width=38, seed=9) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {"ServerMachineDataset/LICENSE": b"MIT\n"}
    for m, shape in machines.items():
        n_test = shape[1] if shape else 11
        lab = (np.arange(n_test) % 5 == 0).astype(int)
        files[f"ServerMachineDataset/test_label/{m}.txt"] = "".join(f"{v}\n" for v in lab).encode()
        files[f"ServerMachineDataset/interpretation_label/{m}.txt"] = b"0-1:1,2\n"
        if shape:
            for part, n in (("test", shape[1]), ("train", shape[0])):  # archive order: test before train
                x = rng.random((n, width))
                files[f"ServerMachineDataset/{part}/{m}.txt"] = "".join(
                    ",".join(f"{v:.6f}" for v in row) + "\n" for row in x).encode()
    return files


def test_smd_per_machine_and_concat(tmp_path):
    src = write_tar(tmp_path / "ServerMachineDataset.tar.xz",
                    smd_files({"machine-1-10": (6, 7), "machine-1-2": (8, 9), "machine-1-1": None}))
    per = load("smd", src)
    assert [d.name for d in per] == ["SMD/machine-1-2", "SMD/machine-1-10"]  # natural order; 1-1 has labels only
    assert per[0].train.shape == (8, 38) and per[0].test_labels.sum() == 2
    (cat,) = load("smd", src, mode="concat")
    assert cat.name == "SMD/concat-2" and cat.train.shape == (14, 38) and cat.test.shape == (16, 38)
    assert cat.provenance["train_offsets"] == [0, 8, 14] and any("NOT TAB's SMD" in n for n in cat.provenance["notes"])
    np.testing.assert_array_equal(cat.test[9:], per[1].test)
    (one,) = load("smd", src, machines=["1-10"])
    assert one.name == "SMD/machine-1-10"
    with pytest.raises(DataError, match=r"no train/test features for \['machine-1-1'\] .*labels only"):
        load("smd", src, machines=["machine-1-1"])
    with pytest.raises(DataError, match="mode='both'"):
        load("smd", src, mode="both")


def test_smd_directory_errors_name_the_file(tmp_path):
    files = smd_files({"machine-2-1": (5, 6)})
    files["ServerMachineDataset/test_label/machine-2-1.txt"] = b"0\n1\n0\n"
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=r"test_label/machine-2-1\.txt: 3 labels for 6 test rows"):
        load("smd", tmp_path / "ServerMachineDataset")
    train = tmp_path / "ServerMachineDataset/train/machine-2-1.txt"
    rows = train.read_text().splitlines()
    cells = rows[2].split(",")
    cells[4] = "x"
    rows[2] = ",".join(cells)
    train.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"train/machine-2-1\.txt: non-numeric value 'x' in field 5 at line 3"):
        load("smd", tmp_path)  # also found from the parent directory


# ---------------------------------------------------------------------------------------------------------------
# SKAB v0.9

SKAB_COLS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
             "Voltage", "Volume Flow RateRMS"]


def skab_csv(n: int, seed: int, labelled=True) -> bytes:
    df = rng_frame(n, SKAB_COLS, seed)
    df.insert(0, "datetime", pd.date_range("2020-03-09 10:14:33", periods=n, freq="s").astype(str))
    if labelled:
        df["anomaly"] = (np.arange(n) >= n - 10).astype(float)
        df["changepoint"] = (np.arange(n) == n - 10).astype(float)
    return csv_bytes(df, sep=";")


def test_skab_series_and_split(tmp_path):
    src = write_tar(tmp_path / "SKAB_data.tar.xz", {
        "data/anomaly-free/anomaly-free.csv": skab_csv(50, 0, labelled=False), "data/other/2.csv": skab_csv(30, 1),
        "data/valve1/10.csv": skab_csv(25, 2), "data/valve1/9.csv": skab_csv(28, 3)})
    out = load("skab", src, train_rows=12)
    assert [d.name for d in out] == ["SKAB/other/2", "SKAB/valve1/9", "SKAB/valve1/10"]
    assert out[0].channels == SKAB_COLS and out[0].train.shape == (12, 8) and out[0].test.shape == (18, 8)
    assert all(d.test_labels.sum() == 10 for d in out)
    assert "TAB's split inside a SKAB file is unknown" in out[0].provenance["notes"][0]
    (one,) = load("skab", src, series=["valve1/9"], train_rows=12)
    assert one.name == "SKAB/valve1/9"
    with pytest.raises(DataError, match=r"other/2\.csv: train_rows=40 out of range for 30 rows"):
        load("skab", src, train_rows=40)


# ---------------------------------------------------------------------------------------------------------------
# ASD (InterFusion pickles), restricted unpickler

def legacy_pickle(a: np.ndarray) -> bytes:
    """Protocol-3 pickle referencing numpy.core.multiarray, like the InterFusion files (written by numpy 1.x)."""
    return pickle.dumps(a, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def asd_files(n_ent=3, train=20, test=10) -> dict[str, bytes]:
    rng = np.random.default_rng(10)
    files = {"data/interpretation_label/anomaly_type.txt": b"dataset,anomaly_segment,anomaly_type\n"}
    for i in range(1, n_ent + 1):
        p = f"data/processed/omi-{i}"
        files[f"{p}_train.pkl"] = legacy_pickle(rng.random((train - (i == n_ent), 19)).astype(np.float32))
        files[f"{p}_test.pkl"] = legacy_pickle(rng.random((test, 19)).astype(np.float32))
        files[f"{p}_test_label.pkl"] = legacy_pickle((np.arange(test) < i).astype(np.float64))
    return files


def test_asd_entities(tmp_path):
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy_pickle(np.zeros(2))
    src = write_tar(tmp_path / "ASD_data.tar.xz", asd_files())
    out = load("asd", src)
    assert [d.name for d in out] == ["ASD/omi-1", "ASD/omi-2", "ASD/omi-3"]
    assert out[2].train.shape == (19, 19) and out[2].test.shape == (10, 19)
    assert [int(d.test_labels.sum()) for d in out] == [1, 2, 3]
    assert [d.name for d in load("asd", src, entities=[2])] == ["ASD/omi-2"]


def test_asd_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    files = asd_files(1)
    files["data/processed/omi-1_test_label.pkl"] = pickle.dumps(Evil(), protocol=3)
    with pytest.raises(DataError, match=r"omi-1_test_label\.pkl: refused or unreadable pickle .*not allowed"):
        load("asd", write_tar(tmp_path / "ASD_data.tar.xz", files))
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------------------------
# our ingested format: round trip

def test_npz_round_trip(tmp_path):
    from aster.data.store import save_series

    ds = Dataset("SKAB/valve1/0", np.random.rand(20, 3), np.random.rand(10, 3), np.arange(10) % 2, ["a", "b", "c"],
                 {"loader": "skab", "notes": ["x"]})
    save_series(ds, tmp_path)
    (back,) = load("npz", tmp_path)
    assert back.name == ds.name and back.channels == ds.channels
    np.testing.assert_array_equal(back.train, ds.train)
    np.testing.assert_array_equal(back.test_labels, ds.test_labels)
    assert back.provenance["original"] == {"loader": "skab", "notes": ["x"]}


# ---------------------------------------------------------------------------------------------------------------
# real data in ../shared/data (skipped cleanly when absent)

def shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def npy_sha(a: np.ndarray) -> str:
    b = io.BytesIO()
    np.save(b, a)
    return hashlib.sha256(b.getvalue()).hexdigest()


def test_real_msl_reproduces_reference_sha256():
    t = read_telemanom(shared("MSL/msl_data.tar.xz"), "MSL")
    assert t.train.shape == (58317, 55) and t.test.shape == (73729, 55) and t.labels.sum() == 7766
    assert npy_sha(t.train) == "d767ecfc8ea344f7a6e78f815a84dc7923f600df1beb14359f3e73202148b058"
    assert npy_sha(t.test) == "8b479ebeeabb63ff636e8adeb095a7bcc46a0cdc7befa189b45b05b1e90c9425"
    assert npy_sha(t.labels) == "23e120c30a645000f093ff5311de177601b8220ba3ca4281c6376883444f7b97"
    (ds,) = load("msl")
    assert ds.provenance["sha256"][str(SHARED / "MSL/msl_data.tar.xz")].startswith("663f0ab8")


def test_real_smd_one_machine():
    (ds,) = load("smd", shared("SMD/ServerMachineDataset.tar.xz"), machines=["machine-1-2"])
    assert ds.train.shape == (23694, 38) and ds.test.shape == (23694, 38) and ds.test_labels.sum() == 542
    assert 0 <= ds.train.min() and ds.train.max() <= 1


def test_real_skab_34_series():
    out = load("skab", shared("SKAB/SKAB_data.tar.xz"))
    assert len(out) == 34 and all(d.train.shape == (400, 8) for d in out)
    assert sum(len(d.train) + len(d.test) for d in out) == 37401
    other2 = next(d for d in out if d.name == "SKAB/other/2")
    assert "train part holds" in other2.provenance["notes"][1] and "holds 0 " not in other2.provenance["notes"][1]


def test_real_asd_12_entities():
    out = load("asd", shared("ASD/ASD_data.tar.xz"))
    assert [d.name for d in out] == [f"ASD/omi-{i}" for i in range(1, 13)]
    assert [len(d.train) for d in out] == [8640] * 11 + [7291]
    assert all(d.test.shape == (4320, 19) for d in out)
    assert [int(d.test_labels.sum()) for d in out] == [441, 55, 146, 151, 74, 198, 87, 188, 297, 373, 250, 132]


def test_real_daphnet():
    (ds,) = load("daphnet", shared("Daphnet"))
    assert len(ds.train) + len(ds.test) == 38774 and ds.train.shape == (9693, 9)
    assert ds.test_labels.sum() == 2306


def test_real_psm_labels():
    ts, labels = read_psm_labels(shared("PSM/test_label.csv.xz"))
    assert len(labels) == 87841 and labels.sum() == 24381
    assert ts[0] == 132480.0 and np.all(np.diff(ts) == 1.0)
    assert np.count_nonzero(np.diff(np.concatenate([[0], labels, [0]])) == 1) == 72
    with pytest.raises(DataError, match=r"PSM: train\.csv not found"):
        load("psm")
