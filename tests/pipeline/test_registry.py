"""pipeline.retraining.registry: versions are complete or invisible, `current` always resolves to a complete version, whatever
fails (an exception or a hard kill) mid-promotion; one lock holder at a time."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.retraining.registry as registry_mod
from pipeline.retraining.registry import Registry, RegistryBusy

ROOT = Path(__file__).resolve().parents[1]


def make_export(root: Path, tag: str) -> Path:
    """export/DS-like directory: two series with a model and a card, plus an atomic_dir leftover to be ignored."""
    for sid in ("s1", "s2"):
        (root / sid).mkdir(parents=True)
        (root / sid / "model.onnx").write_bytes(f"onnx-{tag}-{sid}".encode() * 100)
        (root / sid / "card.json").write_text(json.dumps({"series": sid, "tag": tag}))
    (root / ".s3.tmpdir").mkdir()
    (root / ".s3.tmpdir" / "model.onnx").write_text("half-written")
    return root


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path / "registry")
    metrics = tmp_path / "m.json"
    metrics.write_text('{"mean": {"vus_pr": 0.5}}')
    r.promote("ds", make_export(tmp_path / "e1", "one"), {"fingerprint": {"params": {"a": 1}}}, metrics=metrics)
    return r


def served_tag(r: Registry, sid: str = "s1") -> str:
    """What a service pointed at registry/ds/current/SID would load."""
    d = r.root / "ds" / "current" / sid
    tag = json.loads((d / "card.json").read_text())["tag"]
    assert (d / "model.onnx").read_bytes() == f"onnx-{tag}-{sid}".encode() * 100  # card and model from one export
    return tag


def hidden(r: Registry) -> list[str]:
    return sorted(p.name for p in (r.root / "ds").iterdir() if p.name.startswith("."))


def test_promote_versions_and_pointer(reg, tmp_path):
    v1 = reg.current("ds")
    assert v1.name == "v0001" and os.readlink(reg.root / "ds" / "current") == "v0001"  # relative link
    assert v1.series() == ["s1", "s2"] and not (v1.path / ".s3.tmpdir").exists()
    assert json.loads(v1.metrics_path.read_text())["mean"]["vus_pr"] == 0.5
    rec = v1.record
    assert (rec["version"], rec["dataset"], rec["previous"], rec["fingerprint"]) == ("v0001", "ds", None,
                                                                                    {"params": {"a": 1}})
    v2 = reg.promote("ds", make_export(tmp_path / "e2", "two"), {"note": "second"})
    assert v2.name == "v0002" and reg.current("ds") == v2 and v2.record["previous"] == "v0001"
    assert served_tag(reg) == "two" and [v.name for v in reg.versions("ds")] == ["v0001", "v0002"]
    assert hidden(reg) == []


def test_version_is_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        src = make_export(tmp_path / "e", "x")
        os.chmod(src / "s1", 0o700)  # atomic_dir (mkdtemp) makes 0700 directories
        os.chmod(src / "s1" / "model.onnx", 0o600)
        v = Registry(tmp_path / "r").promote("ds", src, {})
    finally:
        os.umask(old)
    assert (v.path / "s1").stat().st_mode & 0o777 == 0o755
    assert (v.path / "s1" / "model.onnx").stat().st_mode & 0o777 == 0o644


def test_rollback_and_bad_versions(reg, tmp_path):
    reg.promote("ds", make_export(tmp_path / "e2", "two"), {})
    assert reg.set_current("ds", "v0001").name == "v0001" and served_tag(reg) == "one"
    v3 = reg.promote("ds", make_export(tmp_path / "e3", "three"), {})
    assert v3.name == "v0003" and v3.record["previous"] == "v0001"  # previous = what was served, not the newest
    with pytest.raises(ValueError, match="not a complete version"):
        reg.set_current("ds", "v0009")
    with pytest.raises(ValueError, match="invalid dataset name"):
        reg.current("../etc")
    assert Registry(tmp_path / "empty").current("ds") is None


def test_broken_pointer_is_an_error(reg):
    link = reg.root / "ds" / "current"
    link.unlink()
    link.symlink_to("v0042")
    with pytest.raises(ValueError, match="not a complete version"):
        reg.current("ds")


@pytest.mark.parametrize("where", ["copy", "seal", "rename"])
def test_failure_before_the_version_exists_changes_nothing(reg, tmp_path, monkeypatch, where):
    def boom(*a, **k):
        raise OSError(f"injected failure in {where}")

    if where == "copy":  # the second file copied fails: the temporary version is half-written
        calls, real = [], shutil.copyfile

        def copyfile(src, dst, **kw):
            calls.append(src)
            if len(calls) == 2:
                boom()
            return real(src, dst, **kw)
        monkeypatch.setattr(shutil, "copyfile", copyfile)
    elif where == "seal":
        monkeypatch.setattr(registry_mod, "_seal_tree", boom)
    else:
        monkeypatch.setattr(registry_mod.os, "rename", boom)
    with pytest.raises(OSError, match="injected"):
        reg.promote("ds", make_export(tmp_path / "e2", "two"), {})
    monkeypatch.undo()
    assert reg.current("ds").name == "v0001" and served_tag(reg) == "one" and served_tag(reg, "s2") == "one"
    assert [v.name for v in reg.versions("ds")] == ["v0001"] and hidden(reg) == []


def test_failure_at_the_pointer_swap_keeps_the_old_model(reg, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("injected failure in replace")

    monkeypatch.setattr(registry_mod.os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        reg.promote("ds", make_export(tmp_path / "e2", "two"), {})
    monkeypatch.undo()
    assert reg.current("ds").name == "v0001" and served_tag(reg) == "one" and hidden(reg) == []
    assert [v.name for v in reg.versions("ds")] == ["v0001", "v0002"]  # complete, never served
    assert reg.promote("ds", make_export(tmp_path / "e3", "three"), {}).name == "v0003"
    assert served_tag(reg) == "three"


def test_hard_kill_mid_copy_leaves_old_model_and_is_cleaned_up(reg, tmp_path):
    """A real crash (os._exit while copying): no `finally` runs, the hidden temporary stays behind."""
    src = make_export(tmp_path / "e2", "two")
    code = f"""
import os, shutil, sys
sys.path.insert(0, {str(ROOT)!r})
from pipeline.retraining.registry import Registry
real, n = shutil.copyfile, []
def copyfile(s, d, **k):
    n.append(s)
    if len(n) == 2:
        os._exit(9)
    return real(s, d, **k)
shutil.copyfile = copyfile
Registry({str(reg.root)!r}).promote("ds", {str(src)!r}, {{}})
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    leftovers = hidden(reg)
    assert len(leftovers) == 1 and leftovers[0].startswith(".v0002.tmp-")
    assert reg.current("ds").name == "v0001" and served_tag(reg) == "one"
    assert [v.name for v in reg.versions("ds")] == ["v0001"]
    assert reg.promote("ds", src, {}).name == "v0002" and hidden(reg) == [] and served_tag(reg) == "two"


def test_lock_is_exclusive_and_released(tmp_path):
    r = Registry(tmp_path / "registry")
    with r.lock():
        assert f"pid {os.getpid()}" in (r.root / ".lock").read_text()
        with pytest.raises(RegistryBusy, match=f"another retraining is running .*pid {os.getpid()}"):
            with Registry(tmp_path / "registry").lock():  # a second open file description: flock conflicts
                pass
    with r.lock():  # released on exit
        pass


def test_runs_get_unique_names(tmp_path):
    r = Registry(tmp_path / "registry")
    a, b = r.new_run("ds"), r.new_run("ds")
    assert a != b and a.with_suffix(".log").exists() and b.with_suffix(".log").exists()
    js, md = r.write_run(a, {"decision": "skipped"}, "# skipped\n")
    assert json.loads(js.read_text())["decision"] == "skipped" and md.read_text() == "# skipped\n"
