from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim.lr_scheduler import CosineAnnealingLR

from tests.helpers import cpu_trainer, tensor_loaders, tiny_classifier
from training.finetuning import FreezeThenUnfreeze
from training.optim import OneCycle, Plateau

SCHEDULES = {"none": None, "cosine": CosineAnnealingLR, "onecycle": OneCycle, "plateau": Plateau}


class Recorder(Callback):
    """Per epoch: did backbone/head get gradients, how many groups, and every group's lr per step."""

    def __init__(self) -> None:
        self.backbone_grads: dict[int, bool] = {}
        self.head_grads: dict[int, bool] = {}
        self.groups: dict[int, int] = {}
        self.lrs: list[tuple[int, list[float]]] = []
        self.in_optimizer: dict[int, int] = {}

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch, net = trainer.current_epoch, pl_module.net
        self.backbone_grads[epoch] = any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in net.features.parameters()
        )
        self.head_grads[epoch] = all(p.grad is not None for p in net.head.parameters())

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        optimizer = trainer.optimizers[0]
        self.groups[trainer.current_epoch] = len(optimizer.param_groups)
        self.lrs.append((trainer.current_epoch, [g["lr"] for g in optimizer.param_groups]))
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        self.in_optimizer[trainer.current_epoch] = len(ids)


def fit(tmp_path, scheduler: str, unfreeze_at_epoch: int = 1, epochs: int = 3) -> tuple[Recorder, LightningModule]:
    train, val = tensor_loaders()
    model = tiny_classifier(optimizer=partial(torch.optim.AdamW, lr=0.05), scheduler=SCHEDULES[scheduler])
    recorder = Recorder()
    callbacks = [FreezeThenUnfreeze(unfreeze_at_epoch=unfreeze_at_epoch, unfreeze_lr=0.01), recorder]
    cpu_trainer(tmp_path, max_epochs=epochs, callbacks=callbacks).fit(model, train, val)
    return recorder, model


@pytest.mark.parametrize("scheduler", ["none", "cosine", "onecycle", "plateau"])
def test_phase_one_trains_only_the_head_phase_two_everything(tmp_path, scheduler: str) -> None:
    recorder, model = fit(tmp_path, scheduler)
    n_head = sum(1 for _ in model.net.head.parameters())
    n_all = sum(1 for _ in model.net.parameters())
    assert recorder.head_grads == {0: True, 1: True, 2: True}
    assert recorder.backbone_grads == {0: False, 1: True, 2: True}
    # every parameter is in the optimizer from the start, the backbone's in its own group
    assert recorder.groups == {0: 2, 1: 2, 2: 2}
    assert recorder.in_optimizer == {0: n_all, 1: n_all, 2: n_all}
    assert n_head < n_all
    assert all(p.requires_grad for p in model.net.parameters())


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "plateau"])
def test_schedulers_drive_the_backbone_group_from_the_unfreeze_on(tmp_path, scheduler: str) -> None:
    recorder, model = fit(tmp_path, scheduler, epochs=4)
    phase_two = [lrs for epoch, lrs in recorder.lrs if epoch >= 1]
    # Both groups run at the same scheduled rate, starting from unfreeze_lr.
    assert all(len(lrs) == 2 and lrs[0] == pytest.approx(lrs[1]) for lrs in phase_two)
    assert max(lrs[0] for lrs in phase_two) <= 0.01 * 1.0001
    scheduler_obj = model.trainer.lr_scheduler_configs[0].scheduler
    if scheduler == "plateau":
        assert len(scheduler_obj.min_lrs) == 2
    else:
        assert len(scheduler_obj.base_lrs) == 2
        assert phase_two[-1][1] < phase_two[0][1]  # the backbone's rate follows the decay too


def test_unfreeze_at_zero_trains_everything_from_the_start(tmp_path) -> None:
    recorder, _ = fit(tmp_path, "cosine", unfreeze_at_epoch=0, epochs=2)
    assert recorder.backbone_grads == {0: True, 1: True}
    assert recorder.groups == {0: 2, 1: 2}
    assert all(lrs[0] == lrs[1] for _, lrs in recorder.lrs)  # the backbone at the model's lr throughout


def test_weights_of_the_frozen_backbone_do_not_move_in_phase_one(tmp_path) -> None:
    train, val = tensor_loaders()
    model = tiny_classifier(optimizer=partial(torch.optim.AdamW, lr=0.05, weight_decay=0.1))
    before = {k: v.clone() for k, v in model.net.features.state_dict().items()}
    head_before = model.net.head.weight.clone()
    trainer = cpu_trainer(tmp_path, max_epochs=1, callbacks=[FreezeThenUnfreeze(unfreeze_at_epoch=1)])
    trainer.fit(model, train, val)
    assert all(torch.equal(before[k], v) for k, v in model.net.features.state_dict().items())
    assert not torch.equal(head_before, model.net.head.weight)


class Replica(Callback):
    """Each process's weights when the fit ends, saved as ``rank<N>.pt`` beside the others'."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        weights = {name: p.detach().clone() for name, p in pl_module.net.named_parameters()}
        torch.save(weights, self.folder / f"rank{trainer.global_rank}.pt")


def test_ddp_replicas_stay_alike_after_the_unfreeze(tmp_path) -> None:
    """DDP wraps the model after setup froze the backbone, and reduces only the gradients that were wanted
    then: without the callback's own averaging, each process stepped its backbone on its own batches and the
    two replicas ended 0.02 apart (Lightning issue 20340). Two CPU processes, gloo, as several GPUs would."""
    train, val = tensor_loaders()
    model = tiny_classifier(optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    initial = {name: p.detach().clone() for name, p in model.net.named_parameters()}
    callbacks = [FreezeThenUnfreeze(unfreeze_at_epoch=1, unfreeze_lr=0.05), Replica(tmp_path)]
    trainer = cpu_trainer(tmp_path, devices=2, strategy="ddp_spawn", max_epochs=3, callbacks=callbacks)
    trainer.fit(model, train, val)
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert first.keys() == second.keys() == initial.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)  # the same model in both processes
    backbone = [name for name in first if name.startswith("features.")]
    assert backbone
    assert all(not torch.equal(first[name], initial[name]) for name in backbone)  # and it trained
