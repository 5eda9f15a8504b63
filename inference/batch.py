"""Score a folder or an S3 prefix of images with the serving predictor; write a CSV.

    python -m inference.batch IMAGES OUTPUT.csv --model-root models --model-name vit_base_patch16_224
    python -m inference.batch s3://bucket/prefix/ scores.csv --model-root /mnt/efs/models ...

When the folder is an MHIST folder (``annotations.csv`` beside ``images/``), the metrics against
its labels are printed too. This is what a batch job (Fargate, say) runs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import numpy as np
from tqdm import tqdm

from inference import errors
from inference.annotations import AnnotationsError, read_annotations
from inference.environment import precision_of
from inference.limits import Limits
from inference.metrics import auroc
from inference.predictor import FILES, Predictor, Variant, resolve_model_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


ANSWER_COLUMNS = ("probability", "label", "threshold", "in_distribution", "ood_score", "ood_reason")


def local_images(root: Path) -> list[tuple[str, Path]]:
    folder = root / "images" if (root / "images").is_dir() else root
    return [(p.name, p) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def s3_images(uri: str) -> Iterator[tuple[str, bytes]]:
    import boto3  # only a batch job on S3 needs it
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    try:
        s3 = boto3.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].lower().endswith(IMAGE_SUFFIXES):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    yield item["Key"].rsplit("/", 1)[-1], body
    except (BotoCoreError, ClientError) as error:  # credentials, network, bucket, access
        raise errors.ServingError("no_images", f"cannot read {uri}: {error}") from error


def mhist_labels(root: Path) -> dict[str, int]:
    """Image name -> 1 for SSA, 0 for HP when ``root`` is an MHIST folder; empty for a plain folder."""
    if not (root / "annotations.csv").is_file():
        return {}
    try:
        return {record.image: record.label for record in read_annotations(root)}
    except AnnotationsError as error:
        raise errors.ServingError("invalid_annotations", str(error)) from error


def against_labels(scores: np.ndarray, truth: np.ndarray, threshold: float) -> str:
    """The metrics a labelled folder allows: AUROC needs both classes, sensitivity SSA, specificity HP."""
    positives, negatives = int(truth.sum()), int(len(truth) - truth.sum())
    predicted = scores >= threshold
    found = [f"AUROC {auroc(scores, truth):.3f}"] if positives and negatives else ["no AUROC (one class only)"]
    if positives:
        found.append(f"sensitivity {float(predicted[truth == 1].mean()):.3f}")
    if negatives:
        found.append(f"specificity {float((~predicted[truth == 0]).mean()):.3f}")
    return (
        f"against annotations.csv ({len(truth)} images: {positives} SSA, {negatives} HP): "
        f"{', '.join(found)} at threshold {threshold:.3f}"
    )


def score(source: str, output: Path, predictor: Predictor, batch_size: int = 16) -> list[dict[str, object]]:
    """Score every image into ``output``. Rows are written as they are scored, to ``<output>.partial``,
    renamed into place at the end: a run that fails half-way (S3, the network) keeps what it scored,
    and an earlier CSV at ``output`` is never replaced by half a file."""
    items: Iterator[tuple[str, bytes]] | list[tuple[str, Path]]
    items = s3_images(source) if source.startswith("s3://") else local_images(Path(source))
    partial = output.with_name(output.name + ".partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = partial.open("w", newline="")
    except OSError as error:  # before any scoring: an unwritable place is the user's to fix
        reason = errors.unwritable_reason(partial, error)
        raise errors.ServingError("unwritable_output", f"cannot write {output} ({reason})") from error
    rows: list[dict[str, object]] = []
    pending: list[tuple[str, bytes]] = []
    with handle:
        writer = csv.DictWriter(handle, ["image", *ANSWER_COLUMNS, "model_run_id", "error"])
        writer.writeheader()

        def flush() -> None:
            for (name, _), result in zip(pending, _predict_each(predictor, pending), strict=True):
                rows.append({"image": name, **result, "model_run_id": predictor.version})
                writer.writerow(rows[-1])
            handle.flush()
            pending.clear()

        try:
            for name, item in tqdm(items, desc="scoring", unit="img"):
                pending.append((name, item.read_bytes() if isinstance(item, Path) else item))
                if len(pending) == batch_size:
                    flush()
            flush()
        except errors.ServingError as error:
            flush()  # the images already read are scored too
            if not rows:
                partial.unlink()
                raise
            kept = f"; the {len(rows)} images scored before are in {partial}"
            raise errors.ServingError(error.code, error.message + kept, error.status) from error
    partial.replace(output)
    return rows


def _predict_each(predictor: Predictor, pending: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    """The batch at once; if one image is bad, each alone, so one bad file costs one row."""
    try:
        return [_row(r) for r in predictor.predict([data for _, data in pending])] if pending else []
    except errors.ServingError:
        results = []
        for _, data in pending:
            try:
                results.append(_row(predictor.predict([data])[0]))
            except errors.ServingError as error:
                results.append(
                    {**dict.fromkeys(ANSWER_COLUMNS, ""), "threshold": predictor.threshold, "error": error.code}
                )
        return results


def _row(result: dict[str, object]) -> dict[str, object]:
    return {k: result[k] for k in ANSWER_COLUMNS} | {"error": ""}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a folder (or MHIST folder) of images, or s3://bucket/prefix")
    parser.add_argument("output", type=Path, help="CSV to write")
    parser.add_argument("--model-root", type=Path, required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--variant", choices=get_args(Variant), default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size}: expected at least 1")
    if not (args.model_root / args.model_name).is_dir():
        there = ", ".join(sorted(p.parent.name for p in args.model_root.glob(f"*/{FILES['fp32']}"))) or "none"
        sys.exit(f"error: no model {args.model_name} in {args.model_root} (there: {there})")
    variant: Variant = args.variant
    try:
        path = resolve_model_path(args.model_root, args.model_name, variant)
        # auto, as the EC2 service: the fastest runtime that reproduces the file here (bf16: OpenVINO's)
        predictor = Predictor.load(path, limits=Limits(), runtime="auto", precision=precision_of(variant))
        if not args.source.startswith("s3://") and not Path(args.source).is_dir():
            raise errors.ServingError("no_images", f"{args.source} is not a folder")
        labels = {} if args.source.startswith("s3://") else mhist_labels(Path(args.source))
        rows = score(args.source, args.output, predictor, args.batch_size)
    except errors.ServingError as error:
        sys.exit(f"error: {error.message}")
    failed = sum(1 for r in rows if r["error"])
    flagged = sum(1 for r in rows if r["in_distribution"] is False)
    counts = f"{failed} unreadable, {flagged} unlike the training images"
    print(f"scored {len(rows) - failed} images ({counts}) with {predictor.name} -> {args.output}")
    known = [(float(r["probability"]), labels[r["image"]]) for r in rows if r["image"] in labels and not r["error"]]
    if known:
        scores, truth = np.array([k[0] for k in known]), np.array([k[1] for k in known])
        print(against_labels(scores, truth, predictor.threshold))


if __name__ == "__main__":
    main()
