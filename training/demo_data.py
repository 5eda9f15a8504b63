"""A small synthetic data set in the MHIST layout, for smoke tests and the demo.

This is NOT medical data. Images are pink "tissue" with purple "crypts"; SSA images have
bluer, denser, more elongated crypts on a slightly bluer stain, with enough overlap between classes that a model has to
learn something (a good one reaches an AUROC around 0.95, not 1.0). The signal survives the
training augmentations (quarter turns and flips), so it stays learnable.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from inference.annotations import ANNOTATORS_COLUMN, IMAGE_COLUMN, LABEL_COLUMN, PARTITION_COLUMN
from inference.errors import unwritable_reason


def draw_image(rng: np.random.Generator, positive: bool, size: int = 224) -> Image.Image:
    """One synthetic patch: a pink field with crypts, bluer and more elongated for SSA."""
    blueness = float(np.clip(rng.normal(0.75 if positive else 0.0, 0.4), -0.6, 1.4))
    stain = np.array([236, 196, 216]) + blueness * np.array([-10, -4, 8])
    background = stain + rng.normal(0, 6, 3)
    pixels = background + rng.normal(0, 10, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    crypt = np.array([150, 70, 150]) + blueness * np.array([-45, 0, 60])
    for _ in range(int(rng.poisson(11 if positive else 8))):
        cx, cy = rng.uniform(0, size, 2)
        rx = rng.uniform(8, 20)
        ry = rx * rng.uniform(1.0, 2.2 if positive else 1.4)
        if rng.random() < 0.5:
            rx, ry = ry, rx
        colour = tuple(int(c) for c in np.clip(crypt + rng.normal(0, 12, 3), 0, 255))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour, outline=(90, 40, 110))
    return image.filter(ImageFilter.GaussianBlur(0.8))


def draw_evidence_image(seed: int = 0, size: int = 224) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """An HP image with one quadrant of SSA, and that quadrant's box: where a heatmap should look."""
    rng = np.random.default_rng(seed)
    image = draw_image(rng, False, size)
    box = (size // 2, 0, size, size // 2)  # the top right quarter
    image.paste(draw_image(rng, True, size).crop(box), box[:2])
    return image, box


def generate_demo_dataset(
    root: str | Path,
    *,
    n_train: int = 320,
    n_test: int = 160,
    positive_fraction: float = 0.31,
    size: int = 224,
    seed: int = 0,
) -> Path:
    """Write ``annotations.csv`` and ``images/*.png`` under ``root``; returns ``root``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for partition, count in (("train", n_train), ("test", n_test)):
        n_positive = round(count * positive_fraction)
        labels = np.array([1] * n_positive + [0] * (count - n_positive))
        rng.shuffle(labels)
        for positive in labels:
            name = f"demo_{len(rows):05d}.png"
            draw_image(rng, bool(positive), size).save(root / "images" / name)
            votes = int(rng.integers(4, 8) if positive else rng.integers(0, 4))
            rows.append((name, "SSA" if positive else "HP", votes, partition))
    with (root / "annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((IMAGE_COLUMN, LABEL_COLUMN, ANNOTATORS_COLUMN, PARTITION_COLUMN))
        writer.writerows(rows)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--n-train", type=int, default=320)
    parser.add_argument("--n-test", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for flag, count in (("--n-train", args.n_train), ("--n-test", args.n_test)):
        if count < 1:
            parser.error(f"{flag} {count}: a partition needs at least one image")
    if (args.root / "annotations.csv").exists():
        print(f"{args.root} already holds a data set; leaving it as it is")
        return
    try:
        generate_demo_dataset(args.root, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    except OSError as error:  # a folder that cannot be made or written: the user's path, not our bug
        sys.exit(f"error: cannot write the demo data to {args.root}: {unwritable_reason(args.root / 'images', error)}")
    print(f"wrote {args.n_train + args.n_test} demo images to {args.root} (synthetic, not medical data)")


if __name__ == "__main__":
    main()
