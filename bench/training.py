"""Training throughput: images/s of a training step, per model and phase, loader alone and step alone.

    python -m bench.training --configs vit.yaml mlp.yaml                 # CPU here, the configured batch
    python -m bench.training --configs vit.yaml --accelerator gpu --channels-last --compile

Three measurements per config and fine-tuning phase (head only, then all weights):
- ``loader``: the configured train DataLoader alone (decode, augment, collate; its workers);
- ``step``: the Lightning training step alone (forward, loss, backward, optimizer) on a batch
  already in memory, at the configured precision;
- ``fit``: both together, as ``fit.py`` runs them. Its row also says what share of the loop's time
  went to waiting for the next batch (fetch and copy to the device, between one step's end and the
  next one's start) and how long its steps took beside the loader's workers.
Data loading is not the bottleneck when ``loader`` images/s is above ``step``'s and ``fit`` waits
for data only a small share of its time. The wait is timed within one run, so unlike ``fit``
against ``step`` (two runs minutes apart) it does not move with the machine's drift.
Models have random weights (speed does not depend on them); images are the generated demo set at
224 px unless ``--data-root`` names the MHIST folder. The scheduler is switched off because no
validation runs here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import BaseFinetuning
from torch.utils.data import DataLoader, Dataset

from bench.common import (
    TRAINING_HEADERS,
    add_output_arguments,
    at_least,
    describe,
    markdown_table,
    publish,
    training_cells,
)
from training.cli import MhistCLI, accelerator_problem, config_path, lightning_notices_hidden
from training.datamodule import MhistDataModule
from training.demo_data import generate_demo_dataset
from training.errors import TrainingSetupError
from training.finetuning import FreezeThenUnfreeze

PHASES = {"head only": 10**6, "all weights": 0}  # FreezeThenUnfreeze.unfreeze_at_epoch per phase


class StepTimer(Callback):
    """Seconds per step (batch start to end) and between step ends (loading included).

    Needs a warm-up step: the first step has no previous end to time its wait from."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.steps, self.intervals, self.images = warmup, [], [], []
        self._started = self._last_end = 0.0

    @staticmethod
    def _now(module: LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._started = self._now(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        ended = self._now(pl_module)
        if trainer.global_step > self.warmup:
            self.steps.append(ended - self._started)
            self.intervals.append(ended - self._last_end)
            self.images.append(len(batch[0]))
        self._last_end = ended


class SameBatch(Dataset):
    """One collated batch, served ``length`` times (``batch_size=None``): the step without loading."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch


def read_config(config: str) -> tuple[Path, dict]:
    """The config's path (bare names resolve to ``training/configs/``, as in ``fit.py``) and its YAML."""
    try:
        path = Path(config_path(config))
    except TrainingSetupError as error:
        raise SystemExit(f"error: --configs: {error}") from None
    if not path.is_file():
        raise SystemExit(f"error: --configs {config}: no such file")
    return path, yaml.safe_load(path.read_text())


def instantiate(
    path: Path, raw: dict, data_root: Path, batch_size: int | None, num_workers: int | None = None
) -> tuple[LightningModule, MhistDataModule, dict]:
    """Model and data module exactly as ``fit.py`` builds them from the config, random weights."""
    args = [
        "--config",
        str(path),
        "--data.root",
        str(data_root),
        "--trainer.logger",
        "false",
        "--model.scheduler",
        "null",
    ]
    if raw["model"]["net"]["class_path"].endswith("TimmClassifier"):
        args += ["--model.net.init_args.pretrained", "false"]
    if batch_size:
        args += ["--data.batch_size", str(batch_size)]
    if num_workers is not None:
        args += ["--data.num_workers", str(num_workers)]
    cli = MhistCLI(args=args)
    return (
        cli.model,
        cli.datamodule,
        {
            "config": path.name,
            "trainer": raw.get("trainer", {}),
            "unfreeze_at_epoch": cli.config.finetuning.unfreeze_at_epoch,
        },
    )


def loader_batches(steps: int, num_workers: int) -> int:
    """Enough batches that the rate is not the workers' prefetch (2 batches each) handed over at once."""
    return max(steps, 6 * max(1, num_workers))


def loader_alone(data: MhistDataModule, steps: int) -> dict:
    """Images/s of the train loader alone over ``loader_batches``, the clock running from the
    iterator's creation (worker start-up included, so the rate is a floor); the first batch apart."""
    loader = data.train_dataloader()
    wanted = min(loader_batches(steps, data.hparams.num_workers), len(loader))
    started = time.perf_counter()
    batches = iter(loader)
    first = next(batches)
    first_s, images = time.perf_counter() - started, len(first[0])
    for _ in range(wanted - 1):
        images += len(next(batches)[0])
    total_s = time.perf_counter() - started
    return {
        "mode": "loader",
        "images_per_s": images / total_s,
        "ms_per_step": total_s / wanted * 1000,
        "first_batch_s": first_s,
        "batch_size": len(first[0]),
        "batches": wanted,
    }


def trainer_for(args: argparse.Namespace, precision: str, phase: str, steps: int, timer: StepTimer) -> Trainer:
    return Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=precision,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[FreezeThenUnfreeze(unfreeze_at_epoch=PHASES[phase]), timer],
    )


def timed_fit(
    model: LightningModule, data: MhistDataModule, args: argparse.Namespace, precision: str, phase: str, mode: str
) -> dict:
    """``step``: the same in-memory batch every step; ``fit``: the real loader. Warm-up steps untimed."""
    BaseFinetuning.make_trainable(model.net)  # the previous phase may have frozen the backbone
    steps = args.warmup + args.steps
    timer = StepTimer(args.warmup)
    trainer = trainer_for(args, precision, phase, steps, timer)
    fitted = torch.compile(model) if args.compile else model
    on_gpu = isinstance(trainer.accelerator, CUDAAccelerator)  # the model is back on the CPU after fit
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()  # each row's own peak, not the run's so far
    if mode == "step":
        batch = next(iter(data.train_dataloader()))
        if args.channels_last:
            batch = (batch[0].contiguous(memory_format=torch.channels_last), batch[1])
        trainer.fit(fitted, train_dataloaders=DataLoader(SameBatch(batch, steps), batch_size=None))
    else:
        trainer.fit(fitted, datamodule=data)
    seconds = timer.steps if mode == "step" else timer.intervals
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else float("nan")
    row = {
        "mode": mode,
        "images_per_s": sum(timer.images) / sum(seconds),
        "batch_size": data.hparams.batch_size,
        "ms_per_step": statistics.median(seconds) * 1000,
        "peak_gpu_gib": peak,
    }
    if mode == "fit":
        row |= loader_wait(timer.steps, timer.intervals)
    return row


def loader_wait(steps: list[float], intervals: list[float]) -> dict[str, float]:
    """The share of the loop's time spent between steps (waiting for and moving the next batch),
    and the median step within the fit, to set beside the step alone."""
    waited = sum(interval - step for step, interval in zip(steps, intervals, strict=True))
    return {"data_wait_share": max(0.0, waited) / sum(intervals), "step_ms_in_fit": statistics.median(steps) * 1000}


def bench_config(path: Path, raw: dict, args: argparse.Namespace, data_root: Path) -> list[dict]:
    model, data, info = instantiate(path, raw, data_root, args.batch_size, args.num_workers)
    data.setup("fit")  # every mode draws from the train split (``--modes step`` alone had none)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    phases = list(PHASES) if info["unfreeze_at_epoch"] > 0 else ["all weights"]
    precision = args.precision or str(info["trainer"].get("precision", "32-true"))
    rows = []
    for phase in phases:
        for mode in args.modes:
            if mode == "loader" and phase != phases[0]:
                continue  # the loader does not depend on the phase
            result = (
                loader_alone(data, args.steps)
                if mode == "loader"
                else timed_fit(model, data, args, precision, phase, mode)
            )
            rows.append(
                {
                    "config": info["config"],
                    "model": model.model_name,
                    "phase": phase,
                    "precision": precision,
                    "num_workers": data.hparams.num_workers,
                    **result,
                }
            )
            print(f"{info['config']} {phase} {mode}: {result['images_per_s']:.1f} images/s", flush=True)
    return rows


def markdown(result: dict) -> str:
    s = result["settings"]
    precision = s["precision"] or "as configured"
    header = (
        f"Training throughput on {describe(result['machine'])}, {result['machine']['date']}: accelerator "
        f"{s['accelerator']}, precision {precision}, channels-last {s['channels_last']}, compile {s['compile']}, "
        f"{s['steps']} timed steps after {s['warmup']} warm-up.\n\n"
    )
    headers = (*TRAINING_HEADERS, "step ms in fit", "peak GPU GiB")
    nan = float("nan")
    rows = [(*training_cells(r), r.get("step_ms_in_fit", nan), r.get("peak_gpu_gib", nan)) for r in result["rows"]]
    return header + markdown_table(headers, rows)


def demo_data(root: Path, images: int) -> Path:
    """Generated 224 px images in the MHIST layout, enough for the loader; kept for the next run."""
    if not (root / "annotations.csv").exists():
        generate_demo_dataset(root, n_train=images, n_test=8)
    return root


def trainer_problem(accelerator: str, precision: str | None) -> str | None:
    """Why Lightning would refuse ``--accelerator``/``--precision``, asked of a throwaway Trainer."""
    if problem := accelerator_problem(accelerator):
        return f"--accelerator {accelerator}: {problem}"
    try:
        Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False, enable_checkpointing=False)
    except (ValueError, ImportError, MisconfigurationException) as error:
        return f"--accelerator {accelerator} --precision {precision}: {error}"
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["vit.yaml", "mlp.yaml"])
    parser.add_argument("--modes", nargs="+", choices=("loader", "step", "fit"), default=["loader", "step", "fit"])
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default=None, help="default: the config's (bf16-mixed in vit.yaml, mlp.yaml)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the module (compiles in the warm-up)")
    parser.add_argument("--batch-size", type=at_least(1), default=None, help="default: the config's")
    parser.add_argument("--num-workers", type=at_least(0), default=None, help="loader workers; default: the config's")
    parser.add_argument("--steps", type=at_least(1), default=3)
    parser.add_argument("--warmup", type=at_least(1), default=1, help="untimed steps first (start-up, compile)")
    parser.add_argument("--data-root", type=Path, default=None, help="the MHIST folder; default: generated images")
    add_output_arguments(parser, store=False)
    args = parser.parse_args(argv)
    with lightning_notices_hidden():
        if problem := trainer_problem(args.accelerator, args.precision):  # before data or a model is made
            parser.error(problem)
    rows = []
    for config in args.configs:
        path, raw = read_config(config)
        batch = args.batch_size or int(raw.get("data", {}).get("batch_size", 64))
        workers = args.num_workers if args.num_workers is not None else int(raw.get("data", {}).get("num_workers", 4))
        batches = max(args.steps + args.warmup + 2, loader_batches(args.steps, workers))
        images = int(batches * batch / 0.8) + 1  # the validation split takes 20%
        data_root = args.data_root or demo_data(Path("outputs/bench") / f"train-data-{images}", images)
        try:
            with lightning_notices_hidden():
                rows += bench_config(path, raw, args, data_root)
        except TrainingSetupError as error:  # a --data-root or config fit.py would refuse too
            raise SystemExit(f"error: {config}: {error}") from None
    settings = {
        k: getattr(args, k) for k in ("accelerator", "precision", "channels_last", "compile", "steps", "warmup")
    }
    return publish(args.out, "training", {"settings": settings, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
