"""Smoke runs of every benchmark command on tiny data: runner (baselines + a fast ASTER), report, speed scripts."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = {"loader": "synthetic", "options": {"n_channels": 8, "train_length": 1000, "test_length": 2000, "seed": 1}}
FAST_ASTER = ["window=16", "model.patch=4", "model.backbone=none", "model.d_model=16", "model.depth=1", "train.epochs=1",
              "train.steps=null"]


def script(name: str):
    """Import benchmarks/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_variant_builds_a_valid_model_over_params_yaml():
    from pipeline.train import aster_config

    run = script("run")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, variant in run.load_variants().items():
        p = run.run_params(base, {}, "aster", [], variant)
        assert aster_config(p["model"], 3, p["window"]).window == p["window"], name


def test_params_precedence_and_bad_overrides():
    run = script("run")
    base = {"window": 100, "prepare": {"train_fraction": 0.8}, "model": {"name": "aster", "baseline": {"window": 100}},
            "train": {"epochs": 5}}
    p = run.run_params(base, {"loader": "x", "window": 64, "set": {"train.epochs": 2}}, "hbos",
                       ["train.epochs=3", "model.baseline.max_train_rows=null"])
    assert p["window"] == 64 and p["train"]["epochs"] == 3 and p["model"]["name"] == "hbos"
    assert p["model"]["baseline"] == {"window": 100, "max_train_rows": None}
    assert base["window"] == 100 and base["train"]["epochs"] == 5  # the base params are not mutated
    assert run.run_params(base, {"loader": "x", "window": 64}, "pca", ["window=16"])["window"] == 16
    for bad in ("train.epochs", "nosuch.key=1", "nosuchkey=1", "train.epochs.deeper=1"):
        with pytest.raises(SystemExit):
            run.set_key({"train": {"epochs": 5}}, bad)


def test_catalog_has_the_real_datasets():
    run = script("run")
    catalog = run.load_catalog()
    assert {"msl", "asd", "skab", "daphnet", "smd"} <= set(catalog)
    assert catalog["skab"]["window"] < 80  # SKAB: 400 train rows -> 80 validation rows
    assert catalog["smd"]["options"]["mode"] == "per_machine"
    for name in ("msl", "asd", "skab", "daphnet", "smd"):
        assert (ROOT / catalog[name]["path"]).resolve().is_relative_to((ROOT.parent / "shared" / "data").resolve())


def test_run_then_report(tmp_path):
    run, report = script("run"), script("report")
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"tiny": TINY}))
    common = ["--catalog", str(catalog), "--datasets", "tiny", "--out-root", str(tmp_path / "runs"),
              "--results", str(tmp_path / "results")]
    assert run.main([*common, "--models", "hbos", "pca", "--set", "window=16"]) == 0
    assert run.main([*common, "--models", "aster", "--tag", "aster-tiny", "--set", *FAST_ASTER]) == 0

    results = {t: json.loads((tmp_path / "results" / "tiny" / f"{t}.json").read_text())
               for t in ("hbos", "pca", "aster-tiny")}
    for tag, r in results.items():
        assert r["tag"] == tag and r["n_series"] == 1 and set(r["series"]) == {"synthetic"}
        for k in ("f1", "auroc", "aupr", "vus_roc", "vus_pr", "f1_label_free"):
            assert 0.0 <= r["mean"][k] <= 1.0, (tag, k)
        assert r["run"]["params"]["window"] == 16 and r["run"]["seconds"]["total"] > 0
        assert r["run"]["machine"]["usable_cpus"] >= 1
    assert results["pca"]["run"]["params"]["model"]["name"] == "pca"
    assert results["aster-tiny"]["run"]["params"]["model"]["backbone"] == "none"
    assert results["aster-tiny"]["run"]["series_info"]["synthetic"]["epochs"] == 1
    # every model saw the same prepared arrays: one shared ingest and one prepare for window 16
    assert sorted(d.name for d in (tmp_path / "runs" / "_shared").iterdir()) == ["data", "w16-tf0.8"]
    assert (tmp_path / "runs" / "aster-tiny" / "models" / "tiny" / "synthetic" / "model.safetensors").exists()
    diag, c_scores, labels = script("diagnose").diagnose_series(
        tmp_path / "runs" / "aster-tiny" / "models" / "tiny" / "synthetic",
        tmp_path / "runs" / "_shared" / "w16-tf0.8" / "data" / "prepared" / "tiny" / "synthetic",
        stride=results["aster-tiny"]["run"]["params"]["evaluate"]["score_stride"])  # as evaluate scored
    assert set(diag) == {"C", "kNN(F)", "kNN(raw)"} and all(0 <= v["auroc"] <= 1 for v in diag.values())
    assert c_scores.shape == labels.shape and labels.any()  # one C score per test step: what the seed ensemble averages
    assert diag["C"]["auroc"] == pytest.approx(results["aster-tiny"]["mean"]["auroc"], abs=1e-6)  # = evaluate

    # --weights-from: aster-tiny's weights under another step mean, not retrained; a training change is refused
    tiny_models = tmp_path / "runs" / "{}" / "models" / "tiny" / "synthetic" / "model.safetensors"
    assert run.main([*common, "--models", "aster", "--tag", "aster-tiny-arith", "--weights-from", "aster-tiny",
                     "--set", *FAST_ASTER, "model.step_mean=arithmetic"]) == 0
    arith = json.loads((tmp_path / "results" / "tiny" / "aster-tiny-arith.json").read_text())
    assert arith["run"]["weights_from"] == "aster-tiny" and arith["run"]["params"]["model"]["step_mean"] == "arithmetic"
    assert Path(str(tiny_models).format("aster-tiny-arith")).read_bytes() == Path(
        str(tiny_models).format("aster-tiny")).read_bytes()
    assert not (tmp_path / "runs" / "aster-tiny-arith" / "checkpoints" / "tiny" / "synthetic").exists()  # no training
    assert run.main([*common, "--models", "aster", "--tag", "aster-tiny-span", "--weights-from", "aster-tiny",
                     "--set", *FAST_ASTER, "model.pseudo_span=0.5"]) == 1
    assert "differ: model.pseudo_span" in json.loads(
        (tmp_path / "results" / "tiny" / "aster-tiny-span.failed.json").read_text())["error"]

    before = (tmp_path / "results" / "tiny" / "pca.json").stat().st_mtime_ns  # resumable: existing result skipped
    assert run.main([*common, "--models", "pca", "--set", "window=16"]) == 0
    assert (tmp_path / "results" / "tiny" / "pca.json").stat().st_mtime_ns == before

    assert run.main([*common, "--models", "kmeans", "--set", "window=16", "model.baseline.n_clusters=100000"]) == 1
    failed = json.loads((tmp_path / "results" / "tiny" / "kmeans.failed.json").read_text())
    assert "clusters" in failed["error"]

    (tmp_path / "results" / "speed").mkdir()
    (tmp_path / "results" / "speed" / "x.json").write_text(json.dumps(
        {"title": "X speed", "headers": ["a", "b"], "rows": [["r1", "1.5"]], "notes": ["n1"], "machine": {}}))
    out, png = tmp_path / "B.md", tmp_path / "b.png"
    text = report.render(tmp_path / "results", out, png)
    assert out.read_text() == text and png.stat().st_size > 1000
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| hbos |") for line in table) and any(line.startswith("| aster-tiny |")
                                                                       for line in table)
    best_vus_pr = max(results, key=lambda t: results[t]["mean"]["vus_pr"])
    row = next(line for line in table if line.startswith(f"| {best_vus_pr} |"))
    assert f"**{results[best_vus_pr]['mean']['vus_pr']:.3f}**" in row
    assert "### X speed" in text and "| r1 | 1.5 |" in text
    assert "## Failed runs" in text and "tiny / kmeans" in text


def test_run_trains_every_member_of_an_ensemble(tmp_path):
    run = script("run")
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"tiny": TINY}))
    assert run.main(["--catalog", str(catalog), "--datasets", "tiny", "--out-root", str(tmp_path / "runs"),
                     "--results", str(tmp_path / "results"), "--models", "aster", "--tag", "aster-two",
                     "--set", *FAST_ASTER, "model.members=2"]) == 0
    result = json.loads((tmp_path / "results" / "tiny" / "aster-two.json").read_text())
    assert 0.0 <= result["mean"]["auroc"] <= 1.0 and result["run"]["params"]["model"]["members"] == 2
    checkpoints = tmp_path / "runs" / "aster-two" / "checkpoints" / "tiny" / "synthetic"
    assert sorted(d.name for d in checkpoints.iterdir()) == ["member-0", "member-1"]  # seeds 2021 and 2022
    meta = json.loads((tmp_path / "runs" / "aster-two" / "models" / "tiny" / "synthetic" / "meta.json").read_text())
    assert sorted({h["member"] for h in meta["history"]}) == [0, 1]


def test_report_lists_published_rows(tmp_path):
    report, published = script("report"), script("published")
    r = {"tag": "hbos", "n_series": 1, "mean": {"f1": 0.3, "f1_label_free": 0.1, "auroc": 0.99, "aupr": 0.5,
                                                 "vus_roc": 0.7, "vus_pr": 0.3},
         "series": {"s": {"f1_ratio": 2.0}}, "run": {"params": {"window": 100}, "seconds": {"train": 1}}}
    lines = report.dataset_table("msl", {"hbos": r})
    text = "\n".join(lines)
    assert "published (TAB PDF): best of 58" in text and "0.684 (CATCH)" in text and "GPT4TS" in text
    hbos = next(line for line in lines if line.startswith("| hbos |"))
    assert "0.990 ▲" in hbos and "0.300 ▲ (r 2)" in hbos and "0.700 ▲" not in hbos  # beats 0.684 / 0.256, not 0.750
    assert "not comparable" in "\n".join(report.dataset_table("smd", {"hbos": r}))
    for ds, rows in published.ROWS.items():
        assert set(rows) == {"GPT4TS (full)", "TimesNet", "KMeans", "CATCH"}
        for metric, (value, _) in published.BEST[ds].items():  # a best is never below a listed row
            assert value >= max(row[published.METRICS.index(metric)] for row in rows.values()) - 1e-9


def test_bench_vus_smoke(tmp_path):
    fig = script("bench_vus").main(["--smoke", "--json", str(tmp_path)])
    assert fig["small"]["max_abs_diff"] < 1e-9
    doc = json.loads((tmp_path / "vus.smoke.json").read_text())
    assert doc["smoke"] and doc["rows"] and len(doc["headers"]) == len(doc["rows"][0])


def test_bench_training_smoke(tmp_path):
    results = script("bench_training").main(["--smoke", "--device", "cpu", "--out-dir", str(tmp_path)])
    assert [(r["config"], r["patch"]) for r in results] == [("default", 10), ("old-default", 1)]
    assert all(r["windows_per_s"] > 0 and r["flops_per_step"] > 0 for r in results)
    assert results[0]["flops_per_step"] < results[1]["flops_per_step"]  # 10x fewer tokens
    rows = json.loads((tmp_path / "training.smoke.json").read_text())["rows"]
    assert [r[1] for r in rows] == ["default", "old-default"] and rows[0][7] == "1.0x"


def test_bench_ingest_smoke(tmp_path):
    data = script("bench_ingest").main(["--smoke", "--out-dir", str(tmp_path)])
    assert data["ingest"]["maxrss_mb"] > 0 and data["prepare"]["seconds"] > 0
    rows = [s["rows"] for s in data["scaling"]]
    assert rows == sorted(rows) and rows[-1] == 8000
    peaks = np.array([s["traced_peak_mb"] for s in data["scaling"]])
    assert (np.diff(peaks) > 0).all()  # grows with the series
    assert json.loads((tmp_path / "ingest.smoke.json").read_text())["name"] == "ingest"


def test_bench_serving_smoke():
    """The load + engine benchmark end to end on a tiny model: a real `bentoml serve`, bounded in time."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_serving.py"), "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "windows/s" in out.stdout + out.stderr


def test_ablation_table_puts_our_variants_next_to_the_papers():
    report, published = script("report"), script("published")

    def result(auroc, overrides):
        return {"mean": {"f1": 0.2, "auroc": auroc, "aupr": 0.1, "vus_roc": 0.6, "vus_pr": 0.2},
                "run": {"overrides": overrides}}

    assert report.ablation_table("msl", {"old-aster": result(0.6, []), "hbos": result(0.9, [])}) == []  # one variant
    lines = report.ablation_table("msl", {"old-aster": result(0.633, []), "hbos": result(0.9, []),
                                          "old-aster-no-lm": result(0.512, ["model.backbone=none"])})
    rows = [line for line in lines if line.startswith("| ") and "variant" not in line]
    assert len(rows) == 2 and rows[0].startswith("| adapter only (no LM) | old-aster-no-lm (model.backbone=none) |")
    assert "| 0.512 |" in rows[0] and "| 0.633 |" in rows[1] and "defaults" in rows[1]
    psm_lora = " / ".join(f"{v:.3f}" for v in published.PAPER_ABLATIONS["lora"]["PSM"])
    assert psm_lora == "0.512 / 0.697 / 0.501" and psm_lora in rows[1]


def test_report_merges_seeds_into_mean_and_std():
    report = script("report")
    runs = {f"aster-s{s}": {"tag": f"aster-s{s}", "mean": {"auroc": a, "vus_pr": v}, "series": {"x": {}},
                            "run": {"seconds": {"train": 10.0}}}
            for s, a, v in ((2021, 0.6, 0.2), (2022, 0.8, 0.4))}
    runs["knn"] = {"tag": "knn", "mean": {"auroc": 0.7, "vus_pr": 0.3}, "series": {}, "run": {}}
    merged = report.merge_seeds(runs)
    assert set(merged) == {"aster", "knn"} and merged["aster"]["seeds"] == ["2021", "2022"]
    assert merged["aster"]["mean"]["auroc"] == pytest.approx(0.7) and merged["aster"]["std"]["auroc"] == pytest.approx(0.1)
    assert report.cell_value(merged["aster"], "vus_pr") == "0.300 ± 0.100" and report.cell_value(runs["knn"], "auroc") == "0.700"
