"""SMD loader (aster/data/loaders/smd.py): OmniAnomaly layout, per machine and concatenated."""

import numpy as np
import pytest
from loaders_testutil import write_tar

from aster.data import DataError
from aster.data.loaders import load

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
