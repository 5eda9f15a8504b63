import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import WeightedRandomSampler

from training.datamodule import MhistDataModule, stratified_split
from training.mhist import MhistFolderError, read_annotations
from training.transforms import IMAGENET_MEAN


def rewrite_csv(root: Path, edit) -> None:
    path = root / "annotations.csv"
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    header, rows = edit(header, rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def make(root: Path, **kwargs) -> MhistDataModule:
    kwargs.setdefault("normalization", "imagenet")  # no network linked here to take statistics from
    dm = MhistDataModule(str(root), batch_size=8, num_workers=0, **kwargs)
    dm.setup("fit")
    return dm


def test_reads_the_published_layout(small_root: Path) -> None:
    records = read_annotations(small_root)
    dm = make(small_root)
    train, val, test = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert len(train) + len(val) == sum(r.partition == "train" for r in records) == 60
    assert [r.image for r in test] == [r.image for r in records if r.partition == "test"]
    assert not {r.image for r in val} & {r.image for r in train}
    with (small_root / "annotations.csv").open() as handle:
        labels = {row["Image Name"]: row["Majority Vote Label"] for row in csv.DictReader(handle)}
    assert all(labels[r.image] == ("SSA" if r.label else "HP") for r in records)
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 224, 224)
    assert images.dtype == torch.float32
    assert set(targets.tolist()) <= {0, 1}


def test_validation_split_is_stratified_and_seeded() -> None:
    labels = [1] * 31 + [0] * 69
    train, val = stratified_split(labels, 0.2, seed=7)
    assert sum(labels[i] for i in val) == 6  # round(31 * 0.2)
    assert len(val) == 6 + 14
    assert stratified_split(labels, 0.2, seed=7) == (train, val)
    assert stratified_split(labels, 0.2, seed=8)[1] != val


def test_pos_weight_is_the_train_ratio(small_root: Path) -> None:
    dm = make(small_root)
    counts = dm.class_counts(dm.splits["train"])
    assert dm.pos_weight == pytest.approx(counts["HP"] / counts["SSA"])
    assert make(small_root, balance="sampler").pos_weight is None


def test_weighted_sampler_balances_batches(small_root: Path) -> None:
    dm = make(small_root, balance="sampler")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, WeightedRandomSampler)
    drawn = torch.tensor([dm.train_set.records[i].label for _ in range(20) for i in loader.sampler])
    assert 0.4 < drawn.float().mean() < 0.6  # the split itself is ~31% SSA


def test_dataset_normalization_is_measured_on_the_train_split(small_root: Path) -> None:
    dm = make(small_root, normalization="dataset")
    pixels = (
        np.stack(
            [np.asarray(Image.open(small_root / "images" / r.image).convert("RGB")) for r in dm.splits["train"]]
        ).astype(np.float64)
        / 255
    )
    mean, std = dm.normalization
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 1, 2)), atol=1e-5)
    assert make(small_root).normalization[0] == IMAGENET_MEAN
    # Validation images come out normalized with those statistics.
    images, _ = next(iter(dm.val_dataloader()))
    assert abs(float(images.mean())) < 0.5


def test_missing_folder_and_csv_are_named(tmp_path: Path) -> None:
    with pytest.raises(MhistFolderError, match="does not exist"):
        read_annotations(tmp_path / "nowhere")
    with pytest.raises(MhistFolderError, match=r"annotations\.csv not found"):
        read_annotations(tmp_path)


def test_missing_columns_are_named(small_copy: Path) -> None:
    rewrite_csv(small_copy, lambda h, rows: ([c if c != "Partition" else "Split" for c in h], rows))
    with pytest.raises(MhistFolderError, match=r"missing column\(s\) \['Partition'\]"):
        read_annotations(small_copy)


def test_a_csv_that_cannot_be_read_is_named(small_copy: Path) -> None:
    """A spreadsheet saved as UTF-16, or an image saved under the name, was a UnicodeDecodeError traceback."""
    text = (small_copy / "annotations.csv").read_text()
    (small_copy / "annotations.csv").write_text(text, encoding="utf-16")
    with pytest.raises(MhistFolderError, match=r"^data\.root: .*annotations\.csv is not a readable CSV \("):
        read_annotations(small_copy)
    shutil.copy(small_copy / "images" / "demo_00001.png", small_copy / "annotations.csv")
    with pytest.raises(MhistFolderError, match=r"is not a readable CSV"):
        read_annotations(small_copy)


def test_short_rows_are_listed_not_a_traceback(small_copy: Path) -> None:
    rewrite_csv(small_copy, lambda h, rows: (h, [rows[0][:2], *rows[1:]]))
    with pytest.raises(MhistFolderError, match=r"line 2 \(demo_00000\.png\): annotator count '' is not 0\.\.7"):
        read_annotations(small_copy)


def test_every_bad_row_is_listed_at_once(small_copy: Path) -> None:
    def corrupt(header: list, rows: list) -> tuple:
        rows[0][1] = "TA"  # unknown label on line 2
        rows[4][3] = "holdout"  # unknown partition on line 6
        return header, rows

    rewrite_csv(small_copy, corrupt)
    with pytest.raises(MhistFolderError) as error:
        read_annotations(small_copy)
    message = str(error.value)
    assert "2 problem(s)" in message
    assert "line 2 (demo_00000.png): label 'TA'" in message
    assert "line 6 (demo_00004.png): partition 'holdout'" in message


def test_missing_and_undecodable_images_are_listed_at_once(small_copy: Path) -> None:
    (small_copy / "images" / "demo_00003.png").unlink()
    data = (small_copy / "images" / "demo_00007.png").read_bytes()
    (small_copy / "images" / "demo_00007.png").write_bytes(data[: len(data) // 3])
    dm = MhistDataModule(str(small_copy), num_workers=0)
    with pytest.raises(MhistFolderError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "line 5:" in message
    assert "demo_00003.png is missing" in message
    assert "line 9:" in message
    assert "demo_00007.png cannot be decoded" in message


def test_demo_data_command_writes_a_readable_set_and_refuses_bad_arguments(tmp_path: Path, capsys) -> None:
    from training.demo_data import main

    main([str(tmp_path / "demo"), "--n-train", "6", "--n-test", "3"])
    assert [r.partition for r in read_annotations(tmp_path / "demo")].count("test") == 3
    main([str(tmp_path / "demo"), "--n-train", "8"])  # an existing set is left as it is
    assert len(read_annotations(tmp_path / "demo")) == 9
    assert "already holds a data set" in capsys.readouterr().out
    (tmp_path / "a file").write_text("")
    with pytest.raises(
        SystemExit, match=r"^error: cannot write the demo data to (.*)/a file/demo: \1/a file is a file$"
    ):
        main([str(tmp_path / "a file" / "demo")])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty"), "--n-test", "0"])
    assert "--n-test 0: a partition needs at least one image" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()
