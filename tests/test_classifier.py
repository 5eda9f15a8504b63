"""MhistClassifier as Lightning drives it with the real data module."""

from functools import partial

import pytest
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch.optim import SGD
from torch.optim.lr_scheduler import CosineAnnealingLR

from tests.helpers import cpu_trainer, tensor_loaders, tiny_classifier
from training.classifier import MhistClassifier
from training.datamodule import MhistDataModule
from training.errors import TrainingSetupError
from training.networks import MlpClassifier
from training.optim import OneCycle, Plateau


def test_model_summary_counts_the_networks_flops(tmp_path, small_root) -> None:
    """The summary printed at the start of every fit said "Total FLOPs: 0" until the module had an
    example input; it now takes one of the data's size."""
    model = MhistClassifier(MlpClassifier(input_size=32, hidden_sizes=(12, 6)), pos_weight=2.0)
    data = MhistDataModule(
        str(small_root), 16, num_workers=0, normalization="dataset", network_input=model.net.expected_input
    )
    cpu_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=data)
    weights = 3 * 32 * 32 * 12 + 12 * 6 + 6 * 1
    assert ModelSummary(model).total_flops == 2 * weights  # a multiply and an add per weight, one image


def test_a_net_built_in_python_is_not_a_hyperparameter_and_not_warned_about(recwarn) -> None:
    """Lightning warns when a module lands in the hyperparameters; the classifier drops it itself
    (the weights carry it), so the warning only confused ``export.py --checkpoint`` users."""
    model = MhistClassifier(
        MlpClassifier(input_size=8, hidden_sizes=(4,)), optimizer=partial(SGD, lr=0.1), pos_weight=0.5
    )
    assert {"net", "optimizer", "scheduler"}.isdisjoint(model.hparams)  # a checkpoint torch.load(weights_only) reads
    assert model.hparams.pos_weight == 0.5
    assert not [w for w in recwarn if "instance of `nn.Module`" in str(w.message)]


def test_an_image_size_the_network_does_not_take_is_refused_before_the_first_step(tmp_path, small_root) -> None:
    data = MhistDataModule(str(small_root), batch_size=16, num_workers=0, input_size=64, normalization="imagenet")
    model = MhistClassifier(MlpClassifier(input_size=32, hidden_sizes=(4,)), pos_weight=2.0)
    with pytest.raises(TrainingSetupError, match="data.input_size is 64 but mlp-4 takes 32x32 images"):
        cpu_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=data)


def test_soft_targets_train_on_the_votes_and_score_on_the_majority_label(tmp_path, small_root) -> None:
    model = MhistClassifier(MlpClassifier(input_size=32, hidden_sizes=(8,)), pos_weight=2.0)
    net_input = model.net.expected_input
    data = MhistDataModule(
        str(small_root), 16, num_workers=0, normalization="dataset", targets="votes", network_input=net_input
    )
    data.setup("fit")
    assert sorted({round(t * 7) for _, t in data.train_set}) != [0, 7]  # shares of 7, not labels
    assert {t for _, t in data.val_set} == {0, 1}
    cpu_trainer(tmp_path, max_epochs=1).fit(model, datamodule=data)
    logged = cpu_trainer(tmp_path).validate(model, datamodule=data)[0]
    assert 0 <= logged["val/sensitivity"] <= 1


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "message"),
    [
        (partial(SGD, lr=-1), None, "model.optimizer: Invalid learning rate: -1"),
        (partial(SGD, lr=0.1, nesterov=True), None, "model.optimizer: Nesterov momentum requires a momentum"),
        (SGD, partial(OneCycle, pct_start=1.5), "model.scheduler: Expected float between 0 and 1 pct_start"),
    ],
)
def test_what_torch_refuses_in_the_optimizer_or_schedule_is_refused_when_the_model_is_built(
    optimizer, scheduler, message: str
) -> None:
    with pytest.raises(TrainingSetupError, match=f"^{message}"):
        MhistClassifier(MlpClassifier(input_size=8, hidden_sizes=(4,)), optimizer=optimizer, scheduler=scheduler)


@pytest.mark.parametrize(
    ("schedule", "interval"), [(CosineAnnealingLR, "step"), (OneCycle, "step"), (Plateau, "epoch")]
)
def test_each_schedule_spans_the_fit_and_steps_at_its_interval(tmp_path, schedule, interval: str) -> None:
    model = tiny_classifier(optimizer=partial(SGD, lr=0.1), scheduler=schedule)
    train, val = tensor_loaders()
    trainer = cpu_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, train, val)
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == interval
    steps = 2 * len(train)
    if schedule is CosineAnnealingLR:
        assert config.scheduler.T_max == steps
    if schedule is OneCycle:
        assert config.scheduler.total_steps == steps
        assert config.scheduler.last_epoch == steps  # one cycle, ended with the fit
    if schedule is Plateau:
        assert config.monitor == "val/loss"
