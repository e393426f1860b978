import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.models import resnet
from pretrain.objective import Objective
from pretrain.tricks.distill import distillation_term, teacher_logits
from pretrain.tricks.label_smoothing import smooth_one_hot
from pretrain.tricks.lr_schedule import linear_scaled_lr, lr_at
from pretrain.tricks.mixup import mixup, sample_lambda
from pretrain.tricks.param_groups import param_groups
from pretrain.tricks.soft_ce import soft_cross_entropy


# -- linear scaling, warmup, step and cosine decay (§2.1, §3.1, §5.1) ---------------
def test_linear_scaling():
    assert linear_scaled_lr(0.1, 1024) == pytest.approx(0.4)
    assert linear_scaled_lr(0.1, 256) == pytest.approx(0.1)


def test_warmup_start_end_and_off():
    kw = dict(peak_lr=0.4, steps_per_epoch=10, epochs=20, decay="cosine")
    assert lr_at(0, warmup_epochs=5, **kw) == pytest.approx(0.4 / 50)
    assert lr_at(49, warmup_epochs=5, **kw) == pytest.approx(0.4)
    assert lr_at(25, warmup_epochs=5, **kw) == pytest.approx(0.4 * 26 / 50)
    assert lr_at(0, warmup_epochs=0, **kw) == pytest.approx(0.4)  # off: full lr at once


def test_cosine_excludes_warmup_and_ends_near_zero():
    kw = dict(peak_lr=1.0, steps_per_epoch=10, epochs=20, warmup_epochs=5, decay="cosine")
    assert lr_at(50, **kw) == pytest.approx(1.0)  # first step after warmup
    T = 150
    assert lr_at(50 + 75, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 75 / T)))
    assert lr_at(199, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 149 / T)))
    assert lr_at(199, **kw) < 1e-3


def test_step_decay_is_the_baseline():
    kw = dict(peak_lr=0.1, steps_per_epoch=10, epochs=120, decay="step", milestones=(30, 60, 90))
    assert lr_at(299, **kw) == pytest.approx(0.1)
    assert lr_at(300, **kw) == pytest.approx(0.01)
    assert lr_at(1199, **kw) == pytest.approx(0.0001)
    assert lr_at(1199, **{**kw, "decay": "cosine"}) != pytest.approx(0.0001)


# -- no bias decay (§3.1) -----------------------------------------------------------
def test_no_bias_decay_splits_exactly_conv_and_linear_weights():
    model = resnet(18, "D", num_classes=10)
    groups, counts = param_groups(model, 1e-4, no_bias_decay=True)
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert {id(p) for p in groups[0]["params"]} == weights and groups[0]["weight_decay"] == 1e-4
    rest = {id(p) for p in model.parameters()} - weights
    assert {id(p) for p in groups[1]["params"]} == rest and groups[1]["weight_decay"] == 0.0
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert counts == {"decay": len(weights), "no_decay": 2 * n_bn + 1}  # gamma, beta per BN; fc bias


def test_without_no_bias_decay_everything_decays():
    model = resnet(18, "B", num_classes=10)
    groups, counts = param_groups(model, 1e-4, no_bias_decay=False)
    assert len(groups) == 1 and counts["no_decay"] == 0
    assert len(groups[0]["params"]) == len(list(model.parameters()))


# -- label smoothing (§5.2) ---------------------------------------------------------
def test_label_smoothing_targets_sum_to_one_and_match_formula():
    labels = torch.tensor([0, 3, 9])
    t = smooth_one_hot(labels, 10, 0.1)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert t[1, 3].item() == pytest.approx(0.9 + 0.01) and t[1, 0].item() == pytest.approx(0.01)
    assert torch.equal(smooth_one_hot(labels, 10, 0.0), F.one_hot(labels, 10).float())


def test_label_smoothing_loss_equals_pytorch_builtin():
    logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    ours = soft_cross_entropy(logits, smooth_one_hot(labels, 10, 0.1))
    assert ours.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


# -- mixup (§5.4) -------------------------------------------------------------------
def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2).clone()
    y = F.one_hot(torch.arange(4), 4).float()
    xm, ym, lam = mixup(x, y, 0.2, g)
    assert 0.0 <= lam <= 1.0 and torch.allclose(ym.sum(1), torch.ones(4))
    g2 = torch.Generator().manual_seed(0)
    lam2 = sample_lambda(0.2, g2)
    perm = torch.randperm(4, generator=g2)
    assert lam == lam2
    assert torch.allclose(xm, lam * x + (1 - lam) * x[perm])
    assert torch.allclose(ym, lam * y + (1 - lam) * y[perm])


def test_mixup_off_returns_batch_unchanged():
    x, y = torch.randn(4, 3, 2, 2), torch.eye(4)
    xm, ym, lam = mixup(x, y, 0.0, torch.Generator())
    assert xm is x and ym is y and lam == 1.0


def test_mixup_lambda_follows_beta_distribution():
    g = torch.Generator().manual_seed(1)
    lams = torch.tensor([sample_lambda(0.2, g) for _ in range(4000)])
    # Beta(0.2, 0.2): mean 0.5, variance 1 / (4 * 1.4) = 0.1786; mostly near 0 or 1.
    assert lams.mean().item() == pytest.approx(0.5, abs=0.03)
    assert lams.var().item() == pytest.approx(0.25 / 1.4, abs=0.015)


# -- distillation (§5.3) ------------------------------------------------------------
def test_distillation_term_matches_formula_and_scales_with_T_squared():
    z, r = torch.randn(5, 10), torch.randn(5, 10)
    T = 20.0
    expected = T * T * torch.mean(torch.sum(-F.softmax(r / T, 1) * F.log_softmax(z / T, 1), 1))
    assert distillation_term(z, r, T).item() == pytest.approx(expected.item(), rel=1e-5)


def test_distillation_leaves_the_teacher_untouched_and_needs_eval_mode():
    teacher = resnet(18, "B", num_classes=10, base_channels=8).eval()
    student = resnet(18, "B", num_classes=10, base_channels=8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    obj = Objective(10, teacher=teacher, temperature=20.0)
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    x, targets = obj.prepare(x, labels, torch.Generator())
    loss = obj.loss(student(x), targets, x)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN stats too
    with pytest.raises(RuntimeError, match="eval mode"):
        teacher_logits(teacher.train(), x)


def test_objective_with_everything_off_is_plain_cross_entropy():
    logits, labels = torch.randn(6, 10), torch.randint(0, 10, (6,))
    obj = Objective(10)
    x, targets = obj.prepare(torch.zeros(6, 3, 4, 4), labels, torch.Generator())
    assert obj.loss(logits, targets, x).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    with_ls = Objective(10, label_smoothing=0.1)
    _, t2 = with_ls.prepare(torch.zeros(6, 3, 4, 4), labels, torch.Generator())
    assert not torch.allclose(t2, targets)


def test_mixup_switched_off_for_the_last_epochs():
    obj = Objective(10, mixup_alpha=0.2)
    x, labels = torch.randn(4, 3, 8, 8), torch.tensor([1, 2, 3, 4])
    xm, tm = obj.prepare(x, labels, torch.Generator().manual_seed(0), use_mixup=True)
    xo, to = obj.prepare(x, labels, torch.Generator().manual_seed(0), use_mixup=False)
    assert torch.equal(xo, x) and torch.equal(to, F.one_hot(labels, 10).float())
    assert not torch.equal(xm, x)


def test_fp16_autocast_with_loss_scaling_trains_on_cpu():
    from pretrain.engine import train_one_epoch

    torch.manual_seed(0)
    model = resnet(18, "B", num_classes=10, base_channels=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler("cpu")
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(8)]
    before = model.fc.weight.clone()
    stats = train_one_epoch(model, batches, opt, Objective(10), lr_at=lambda s: 0.01, first_step=0,
                            device=torch.device("cpu"), precision="fp16", scaler=scaler,
                            generator=torch.Generator(), use_mixup=False)
    assert stats["next_step"] == 8 and math.isfinite(stats["train_loss"])
    # Dynamic loss scaling: steps whose fp16 gradients overflow are skipped and the scale
    # halves from 2^16 until they fit; then the weights move.
    assert scaler.get_scale() < 2.0**16 and not torch.equal(before, model.fc.weight)
