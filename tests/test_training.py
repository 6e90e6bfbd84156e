import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aster
from aster.training import TrainConfig, load_checkpoint, load_weights, train
from aster.windows import SlidingWindows


@dataclass
class ToyConfig:
    n_channels: int = 3
    window: int = 8
    d_model: int = 8


class ToyAster(nn.Module):
    """Same interface as aster.model.Aster, with randomness (noise, dropout) in the training step."""

    def __init__(self, config: ToyConfig = ToyConfig()):
        super().__init__()
        self.config = config
        self.extractor = nn.Linear(config.n_channels, config.d_model)
        self.generator = nn.Linear(config.d_model, config.d_model)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(config.d_model, 1))
        self.calls = 0

    def forward(self, x):
        return self.classifier(self.extractor(x).mean(1)).squeeze(-1)

    def score(self, x):
        return torch.sigmoid(self(x))

    def pseudo_anomalies(self, h):
        return h + self.generator(h + torch.randn_like(h))

    def training_losses(self, x):
        self.calls += 1
        h = self.extractor(x)
        hp = self.pseudo_anomalies(h.detach())
        ln, lp = self.classifier(h.mean(1)).squeeze(-1), self.classifier(hp.mean(1)).squeeze(-1)
        cls_n = F.binary_cross_entropy_with_logits(ln, torch.zeros_like(ln))
        cls_p = F.binary_cross_entropy_with_logits(lp, torch.ones_like(lp))
        recon = (hp - h.detach()).pow(2).mean()
        loss = cls_n + cls_p + 0.1 * recon
        return {"loss": loss, "recon": recon.detach(), "cls_normal": cls_n.detach(), "cls_pseudo": cls_p.detach()}


def toy_series(T=300, C=3, seed=0):
    return np.random.default_rng(seed).normal(size=(T, C)).astype(np.float32)


def make_model(seed=0):
    torch.manual_seed(seed)
    return ToyAster()


CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05, momentum=0.9, seed=7, device="cpu", log_every=5)


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def drop_timing(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "step_seconds")} for h in history]


def test_same_seed_same_weights_and_history(tmp_path):
    x = toy_series(T=200)
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    m1, m2, m3 = make_model(), make_model(), make_model()
    h1 = train(m1, x, cfg, tmp_path / "a", progress=False)
    h2 = train(m2, SlidingWindows(x, 8), cfg, tmp_path / "b", progress=False)
    train(m3, x, TrainConfig(**{**cfg.__dict__, "seed": 8}), tmp_path / "c", progress=False)
    assert_same_weights(m1, m2)
    assert drop_timing(h1) == drop_timing(h2)
    assert not torch.equal(m1.extractor.weight, m3.extractor.weight)
    assert [h["epoch"] for h in h1] == [1, 2]
    assert set(h1[0]) == {"epoch", "loss", "recon", "cls_normal", "cls_pseudo", "seconds", "step_seconds", "steps"}
    assert not torch.equal(m1.extractor.weight, make_model().extractor.weight)  # it did train


def test_resume_is_bit_identical(tmp_path):
    x = toy_series()
    straight = make_model()
    h_straight = train(straight, x, CFG, tmp_path / "straight", progress=False)
    # "crash" after epoch 1: a fresh process builds a differently initialised model with a different RNG state
    train(make_model(), x, TrainConfig(**{**CFG.__dict__, "epochs": 1}), tmp_path / "resumed", progress=False)
    resumed = make_model(seed=123)
    torch.manual_seed(999)
    h_resumed = train(resumed, x, CFG, tmp_path / "resumed", progress=False)
    assert_same_weights(straight, resumed)
    assert drop_timing(h_straight) == drop_timing(h_resumed)
    assert resumed.calls == 2 * 19  # only epochs 2 and 3 ran: 293 windows, 19 batches of 16
    ck = load_checkpoint(tmp_path / "resumed")
    assert ck["epoch"] == 3 and len(ck["history"]) == 3
    assert_same_weights(load_weights(make_model(seed=5), tmp_path / "resumed"), straight)
    # a finished run resumed again does nothing
    assert drop_timing(train(resumed, x, CFG, tmp_path / "resumed", progress=False)) == drop_timing(h_straight)


def test_checkpoint_of_other_data_or_settings_is_not_resumed(tmp_path):
    x = toy_series()
    train(make_model(), x, CFG, tmp_path / "run", progress=False)
    for other_x, cfg in ((x, TrainConfig(**{**CFG.__dict__, "lr": 0.1})), (toy_series(seed=1), CFG)):
        model = make_model()
        train(model, other_x, cfg, tmp_path / "run", progress=False)
        assert model.calls == 3 * 19  # all three epochs ran again: a fresh start, not the old run's result
    straight = make_model()
    train(straight, toy_series(seed=1), CFG, tmp_path / "straight", progress=False)
    assert_same_weights(straight, load_weights(make_model(), tmp_path / "run"))


def test_crash_while_writing_checkpoint_keeps_previous(tmp_path, monkeypatch):
    x = toy_series()
    out = tmp_path / "run"
    model = make_model()
    train(model, x, TrainConfig(**{**CFG.__dict__, "epochs": 1}), out, progress=False)
    after_epoch1 = {k: v.clone() for k, v in model.state_dict().items()}

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train(model, x, CFG, out, progress=False)
    monkeypatch.undo()
    ck = load_checkpoint(out)
    assert ck["epoch"] == 1
    assert all(torch.equal(ck["model"][k], v) for k, v in after_epoch1.items())
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # no temporary file left behind


def test_max_steps_progress_and_errors(tmp_path, capsys):
    x = toy_series()
    model = make_model()
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 2, "max_steps_per_epoch": 3, "log_every": 2})
    hist = train(model, x, cfg, tmp_path / "a", progress=True)
    assert model.calls == 6 and len(hist) == 2
    out = capsys.readouterr()
    assert "epoch 2/2:" in out.err  # the bar
    assert "epoch 2/2 loss=" in out.out and "cls_pseudo=" in out.out  # the per-epoch summary line
    with pytest.raises(ValueError, match="windows have stride 1 but TrainConfig.stride is 2"):
        train(model, SlidingWindows(x, 8), TrainConfig(**{**CFG.__dict__, "stride": 2}), tmp_path / "b")
    with pytest.raises(FloatingPointError, match="lower lr"):
        train(make_model(), x * 1e30, TrainConfig(**{**CFG.__dict__, "lr": 1e30}), tmp_path / "c", progress=False)


def test_step_budget_is_independent_of_series_length(tmp_path):
    """`steps` gives a short and a long series the same number of updates; the last epoch is partial."""
    assert TrainConfig(steps=50).plan(19) == [19, 19, 12] and TrainConfig(epochs=2).plan(19) == [19, 19]
    assert TrainConfig(steps=38).plan(19) == [19, 19] and TrainConfig(steps=5, max_steps_per_epoch=2).plan(19) == [2] * 2 + [1]
    for T in (60, 600):  # 53 windows (4 batches) and 593 windows (38 batches)
        model = make_model()
        cfg = TrainConfig(**{**CFG.__dict__, "steps": 45, "checkpoint_steps": 20})
        hist = train(model, toy_series(T=T), cfg, tmp_path / f"run{T}", progress=False)
        assert model.calls == 45 and hist[-1]["steps"] == 45
        assert load_checkpoint(tmp_path / f"run{T}")["history"][-1]["steps"] == 45


def test_step_budget_resume_with_sparse_checkpoints_is_bit_identical(tmp_path):
    """A crash between sparse checkpoints resumes from the last one and ends with the uninterrupted weights."""
    x = toy_series(T=60)  # 4 batches an epoch: a checkpoint every >= 10 steps, i.e. after steps 12, 24 and 30
    cfg = TrainConfig(**{**CFG.__dict__, "steps": 30, "checkpoint_steps": 10, "optimizer": "adamw",
                         "schedule": "cosine", "lr": 0.01})
    straight = make_model()
    h_straight = train(straight, x, cfg, tmp_path / "straight", progress=False)
    crashing = make_model()
    real = crashing.training_losses

    def crash_at_step_27(x):
        if crashing.calls == 26:
            raise KeyboardInterrupt("killed")
        return real(x)

    crashing.training_losses = crash_at_step_27
    with pytest.raises(KeyboardInterrupt):
        train(crashing, x, cfg, tmp_path / "cut", progress=False)
    assert load_checkpoint(tmp_path / "cut")["history"][-1]["steps"] == 24
    resumed = make_model(seed=9)
    h_resumed = train(resumed, x, cfg, tmp_path / "cut", progress=False)
    assert resumed.calls == 6  # steps 25..30 only
    assert_same_weights(straight, resumed)
    assert drop_timing(h_resumed) == drop_timing(h_straight)


def test_inference_only_settings_do_not_retrain(tmp_path):
    """score_level and step_mean only change how scores map to steps: a finished run resumes, no step is taken."""
    from aster.model import Aster, AsterConfig

    x = toy_series(T=120)
    cfg = TrainConfig(**{**CFG.__dict__, "steps": 4, "checkpoint_steps": 1})
    kw = dict(n_channels=3, window=8, patch=2, backbone="none", d_model=8, n_heads=2, depth=1, pseudo="anchored",
              target="token", pooling="max")
    torch.manual_seed(0)
    first = Aster(AsterConfig(**kw, score_level="window"))
    train(first, x, cfg, tmp_path / "run", progress=False)
    torch.manual_seed(1)
    again = Aster(AsterConfig(**kw, score_level="token", step_mean="geometric"))
    again.training_losses = lambda _: pytest.fail("a finished run was trained again")
    train(again, x, cfg, tmp_path / "run", progress=False)
    assert_same_weights(first, again)
    torch.manual_seed(1)
    other = Aster(AsterConfig(**kw, score_level="window", pseudo_span=0.5))  # a training setting: starts afresh
    train(other, x, cfg, tmp_path / "run", progress=False)
    assert not torch.equal(other.classifier.head.weight, first.classifier.head.weight)


def test_optimizer_choices_and_errors():
    from aster.training import make_optimizer

    model = make_model()
    opt, sched = make_optimizer(model, TrainConfig(optimizer="adamw", schedule="cosine", lr=0.1), total_steps=10)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] < 0.1 and lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs == sorted(lrs, reverse=True)
    for kw, msg in ((dict(optimizer="adam"), "optimizer"), (dict(schedule="step"), "schedule"),
                    (dict(steps=0), "steps")):
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**kw)


def test_dvclive_logs_per_epoch_metrics(tmp_path, monkeypatch):
    from dvclive import Live

    monkeypatch.chdir(tmp_path)  # not a git repo: with save_dvc_exp=False dvclive needs none
    x = toy_series()
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    with Live("live", save_dvc_exp=False, dvcyaml=False) as live:
        train(make_model(), x, cfg, "run", live=live, progress=False)
    loss = (tmp_path / "live/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert loss[0].split("\t") == ["step", "loss"] and [r.split("\t")[0] for r in loss[1:]] == ["0", "1"]
    for k in ("recon", "cls_normal", "cls_pseudo", "step_seconds"):
        assert len((tmp_path / f"live/plots/metrics/train/{k}.tsv").read_text().splitlines()) == 3
    # resumed training with a fresh (non-resumed) Live replays the earlier epochs, so the curve is complete
    with Live("live2", save_dvc_exp=False, dvcyaml=False) as live:
        train(make_model(), x, TrainConfig(**{**cfg.__dict__, "epochs": 3}), "run", live=live, progress=False)
    steps = [r.split("\t")[0] for r in (tmp_path / "live2/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == ["0", "1", "2"]


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_training import ToyAster, toy_series, CFG
from aster.training import TrainConfig, train
import torch.distributed as dist
torch.manual_seed(int(__import__("os").environ["RANK"]))  # different init per rank: DDP must broadcast rank 0's
model = ToyAster()
hist = train(model, toy_series(), TrainConfig(**{{**CFG.__dict__, "epochs": 1}}), {out!r}, progress=False)
torch.save({{"state": model.state_dict(), "hist": hist, "calls": model.calls}}, {out!r} + f"/rank{{__import__('os').environ['RANK']}}.pt")
"""


def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "PYTHONPATH": str(Path(aster.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert r0["state"].keys() == r1["state"].keys()
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    assert drop_timing(r0["hist"]) == drop_timing(r1["hist"])  # loss means all-reduced
    assert r0["calls"] == r1["calls"] == 10  # each rank ran its half: ceil(293 / 2) = 147 windows, 10 batches of 16
    ck = load_checkpoint(out)
    assert ck["epoch"] == 1 and ck["world_size"] == 2 and len(ck["rng"]) == 2
    assert all(torch.equal(ck["model"][k], r0["state"][k]) for k in ck["model"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "rank0.pt", "rank1.pt"]


def test_real_aster_trains_and_resumes(tmp_path):
    model_mod = pytest.importorskip("aster.model")
    cfg_m = model_mod.AsterConfig(n_channels=4, window=16, backbone="none", d_model=16, depth=1)
    x = toy_series(T=200, C=4)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01, seed=3, device="cpu", max_steps_per_epoch=4)
    torch.manual_seed(0)
    straight = model_mod.Aster(cfg_m)
    hist = train(straight, x, cfg, tmp_path / "a", progress=False)
    assert {"loss", "elbo", "recon", "kl", "cls_normal", "cls_pseudo", "feat_distance"} <= set(hist[0])
    torch.manual_seed(0)
    train(model_mod.Aster(cfg_m), x, TrainConfig(**{**cfg.__dict__, "epochs": 1}), tmp_path / "b", progress=False)
    torch.manual_seed(1)
    resumed = model_mod.Aster(cfg_m)
    train(resumed, x, cfg, tmp_path / "b", progress=False)
    assert_same_weights(straight, resumed)
