"""The training loop: optimiser/schedule, history, checkpoints, resume, non-finite loss, early stopping."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aulib.methods.base import Method
from aulib.train import NonFiniteLossError, TrainConfig, fit, lr_factor, seed_everything
from aulib.train.loop import build_optimizer


class Regress(Method):
    """Tiny deterministic method: linear + BatchNorm regression with two logged terms."""

    def __init__(self, nan_at: int | None = None, nan_term: str = "mse"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        self.nan_at, self.nan_term = nan_at, nan_term
        self.after_calls: list[tuple[int, int]] = []

    def training_step(self, batch, step):
        x, y = batch
        mse = ((self.net(x).squeeze(-1) - y) ** 2).mean()
        reg = 1e-3 * sum((p**2).sum() for p in self.parameters())
        if self.nan_at is not None and step == self.nan_at:
            if self.nan_term == "mse":
                mse = mse * float("nan")
            else:
                reg = reg * float("inf")
        return {"loss": mse + reg, "mse": mse, "reg": reg}

    def on_after_optimizer_step(self, step, total_steps):
        self.after_calls.append((step, total_steps))


def make_loader(n=48, bs=8, shuffle=True):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle)


def fresh(seed=0, **kw):
    seed_everything(seed)
    return Regress(**kw)


CFG = dict(optimizer="sgd", lr=0.05, momentum=0.9, schedule="step", step_size=1, gamma=0.5, progress=False)


def test_history_table_and_files(tmp_path):
    m = fresh()
    h = fit(m, make_loader(), TrainConfig(epochs=2, **CFG), out_dir=tmp_path)
    assert list(h["epoch"]) == [1, 2]
    assert list(h["step"]) == [6, 12]
    for col in ("loss", "mse", "reg", "lr", "time"):
        assert col in h.columns
    # step schedule: lr halves each epoch; the logged lr is the one after the epoch's last step
    assert h["lr"].tolist() == pytest.approx([0.025, 0.0125])
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "history.csv").is_file()
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv"), h, check_dtype=False)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["config"]["lr"] == 0.05 and info["method"] == "Regress"
    assert "torch" in info["versions"] and "git_revision" in info
    # on_after_optimizer_step sees every step once, with the total
    assert m.after_calls == [(s, 12) for s in range(12)]
    # mse of the epoch is the mean of the per-step values: loss = mse + reg
    assert h["loss"].to_numpy() == pytest.approx((h["mse"] + h["reg"]).to_numpy(), rel=1e-5)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_resume_equals_uninterrupted_run(tmp_path):
    loader = make_loader()
    full = fresh()
    h_full = fit(full, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "full")

    # killed after epoch 1 by a failing callback, then started again with the same arguments
    class Killed(Exception):
        pass

    def kill(info):
        if info["epoch"] == 1:
            raise Killed

    part = fresh()
    with pytest.raises(Killed):
        fit(part, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "part", callbacks=[kill])
    again = fresh(seed=99)  # different init: everything must come from the checkpoint
    h_res = fit(again, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "part")

    for k, v in _state(full).items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0, msg=k)
    timing = ["time", "data_time"]  # wall clock; everything else must match exactly
    pd.testing.assert_frame_equal(h_res.drop(columns=timing), h_full.drop(columns=timing))


def test_resume_epochs_1_then_2(tmp_path):
    loader = make_loader()
    full = fresh()
    fit(full, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "a")
    one = fresh()
    fit(one, loader, TrainConfig(epochs=1, **CFG), out_dir=tmp_path / "b")
    two = fresh()
    h = fit(two, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "b")
    assert list(h["epoch"]) == [1, 2]
    for k, v in full.state_dict().items():
        torch.testing.assert_close(two.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # a finished run returns its history without training again
    done = fresh(seed=5)
    h2 = fit(done, loader, TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "b")
    assert len(h2) == 2
    torch.testing.assert_close(done.state_dict()["net.0.weight"], full.state_dict()["net.0.weight"])


def test_resume_refuses_a_different_config(tmp_path):
    fit(fresh(), make_loader(), TrainConfig(epochs=1, **CFG), out_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        fit(fresh(), make_loader(), TrainConfig(epochs=2, **{**CFG, "lr": 0.1}), out_dir=tmp_path)


@pytest.mark.parametrize("term", ["mse", "reg"])
def test_non_finite_loss_names_step_and_term(term):
    with pytest.raises(NonFiniteLossError, match=rf"step 3\b.*{term}="):
        fit(fresh(nan_at=3, nan_term=term), make_loader(), TrainConfig(epochs=1, **CFG))
    # checked in windows (as on CUDA): still the first bad step and its term
    with pytest.raises(NonFiniteLossError, match=rf"step 3\b.*{term}=(nan|inf)"):
        fit(fresh(nan_at=3, nan_term=term), make_loader(), TrainConfig(epochs=1, check_finite_every=4, **CFG))


def test_steps_per_epoch_cycles_a_short_loader():
    h = fit(fresh(), make_loader(n=16, bs=8), TrainConfig(epochs=2, steps_per_epoch=5, **CFG))
    assert list(h["step"]) == [5, 10]


def test_early_stopping_and_best_restore(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.4, 0.9, 0.9])
    snapshots = {}

    def evaluate(method, epoch):
        snapshots[epoch] = method.net[0].weight.detach().clone()
        return {"f1": next(scores)}

    m = fresh()
    h = fit(m, make_loader(), TrainConfig(epochs=7, monitor="f1", patience=3, **CFG), out_dir=tmp_path,
            evaluate=evaluate)
    # best at epoch 2; epochs 3, 4, 5 do not improve -> stop after epoch 5
    assert list(h["epoch"]) == [1, 2, 3, 4, 5]
    assert h.attrs["best_epoch"] == 2 and h.attrs["stopped_early"]
    assert h["f1"].tolist() == [0.5, 0.7, 0.6, 0.65, 0.4]
    torch.testing.assert_close(m.net[0].weight, snapshots[2])  # best weights restored


def test_lr_schedules_hand_worked():
    c = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=1)
    # 2 steps an epoch: warm-up 2 steps (1/2, 2/2), then cosine over 6 steps
    f = [lr_factor(s, c, 2) for s in range(8)]
    assert f[:2] == pytest.approx([0.5, 1.0])
    assert f[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 6)) for t in range(6)])
    s = TrainConfig(epochs=4, schedule="step", step_size=2, gamma=0.1)
    assert [lr_factor(i, s, 3) for i in range(0, 12, 3)] == pytest.approx([1, 1, 0.1, 0.1])
    assert lr_factor(7, TrainConfig(schedule="none"), 3) == 1.0


def test_optimizers_and_parameter_groups():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    for name, cls in [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                      ("adagrad", torch.optim.Adagrad)]:
        opt = build_optimizer([{"params": a.parameters(), "lr": 0.5}, *b.parameters()],
                              TrainConfig(optimizer=name, lr=0.1, weight_decay=0.01))
        assert type(opt) is cls
        lrs = sorted(g["lr"] for g in opt.param_groups)
        assert lrs == [0.1, 0.5] and all(g["weight_decay"] == 0.01 for g in opt.param_groups)
    with pytest.raises(ValueError, match="adamw"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(TypeError, match="valid fields"):
        TrainConfig.from_dict({"epochs": 1, "learning_rate": 0.1})


def test_grad_clip_bounds_the_update():
    class Big(Method):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def training_step(self, batch, step):
            return {"loss": (self.w * torch.tensor([300.0, 400.0, 0.0])).sum()}

    m = Big()
    fit(m, [0], TrainConfig(epochs=1, optimizer="sgd", momentum=0.0, lr=1.0, grad_clip=1.0, progress=False,
                            device="cpu"))
    # gradient (300, 400, 0) has norm 500, clipped to 1 -> step (0.6, 0.8, 0)
    torch.testing.assert_close(m.w.detach(), torch.tensor([-0.6, -0.8, 0.0]))


def test_method_sees_the_optimizer_for_weight_decay_schedules():
    from aulib.methods.base import cosine_ramp

    seen = []

    class WD(Regress):
        def parameter_groups(self):
            return [{"params": self.net[0].parameters(), "weight_decay": 0.04},
                    {"params": self.net[3].parameters(), "weight_decay": 0.0}]

        def on_after_optimizer_step(self, step, total_steps):
            self.optimizer.param_groups[0]["weight_decay"] = cosine_ramp(step + 1, total_steps, 0.04, 0.4)
            seen.append(self.optimizer.param_groups[0]["weight_decay"])

    seed_everything(0)
    m = WD()
    fit(m, make_loader(), TrainConfig(epochs=1, optimizer="adamw", lr=1e-3, progress=False))
    assert len(seen) == 6 and seen[-1] == pytest.approx(0.4)
    assert seen[2] == pytest.approx(0.4 - 0.36 * (1 + math.cos(math.pi * 0.5)) / 2)  # halfway: 0.22
    assert m.optimizer is None  # only set during fit
    assert cosine_ramp(0, 10, 0.98, 1.0) == pytest.approx(0.98)


def test_resume_with_a_balanced_batch_sampler(tmp_path):
    from aulib.train.samplers import make_batch_sampler

    g = torch.Generator().manual_seed(7)
    x = torch.randn(40, 4, generator=g)
    labels = (x[:, :2] > 0.3).float()  # two "AUs"
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0])

    def loader():
        s = make_batch_sampler("oversampling", labels.numpy(), None, n_pos=2, n_neg=2, steps_per_epoch=3, seed=1)
        return DataLoader(TensorDataset(x, y), batch_sampler=s)

    full = fresh()
    fit(full, loader(), TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "a")
    fit(fresh(), loader(), TrainConfig(epochs=1, **CFG), out_dir=tmp_path / "b")
    res = fresh(seed=3)
    fit(res, loader(), TrainConfig(epochs=2, **CFG), out_dir=tmp_path / "b")
    for k, v in full.state_dict().items():
        torch.testing.assert_close(res.state_dict()[k], v, rtol=0, atol=0, msg=k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_cuda_amp_training_runs(amp_dtype):
    seen = {}

    class Spy(Regress):
        def training_step(self, batch, step):
            seen["autocast"] = torch.is_autocast_enabled("cuda")
            seen["dtype"] = self.net[0](batch[0]).dtype
            return super().training_step(batch, step)

    m = fresh()
    m.__class__ = Spy
    h = fit(m, make_loader(), TrainConfig(epochs=2, amp=True, amp_dtype=amp_dtype, grad_clip=1.0, device="cuda",
                                          optimizer="adamw", lr=1e-2, progress=False))
    assert seen["autocast"] and seen["dtype"] == (torch.bfloat16 if amp_dtype == "bf16" else torch.float16)
    assert next(m.parameters()).device.type == "cuda" and next(m.parameters()).dtype == torch.float32
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]


def test_history_counts_images_and_data_wait():
    import time as _time

    class SlowLoader:
        """Two batches of 5 and 3 samples, each taking 50 ms to produce."""

        def __iter__(self):
            for n in (5, 3):
                _time.sleep(0.05)
                yield {"image": torch.zeros(n, 1, 96, 96), "labels": torch.zeros(n, 2), "valid": torch.ones(n, 2, dtype=torch.bool)}

        def __len__(self):
            return 2

    from aulib.methods.supervised import Supervised, SupervisedConfig

    model = Supervised(SupervisedConfig(backbone="baseline_cnn", num_aus=2, in_chans=1))
    h = fit(model, SlowLoader(), TrainConfig(epochs=1, lr=1e-3, progress=False, device="cpu"))
    assert h["images"].iloc[0] == 8
    assert 0.1 <= h["data_time"].iloc[0] <= h["time"].iloc[0]
