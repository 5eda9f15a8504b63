"""The app's pages. Each calls the APIs through ``frontend.session`` and draws; the only numbers
computed here are an evaluation's metrics, by the project's one implementation (``inference.metrics``)."""

from __future__ import annotations

import base64
import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from frontend import client, images, session
from frontend.images import ImagesError, Item
from frontend.plots import curves, probability_bar
from inference import metrics
from inference.annotations import CLASS_NAMES

BORDERLINE = 0.05  # an answer this close to the threshold is said to be borderline
METRIC_ORDER = (
    "sensitivity",
    "specificity",
    "balanced_accuracy",
    "auroc",
    "average_precision",
    "precision",
    "f1",
    "mcc",
    "accuracy",
    "tp",
    "fn",
    "tn",
    "fp",
)
SPLIT_ORDER = ("train", "val", "validation", "test")
GLOSSARY = (
    "**HP**: hyperplastic polyp (benign). **SSA**: sessile serrated adenoma/lesion (precancerous: the costly "
    "miss). **P(SSA)**: the model's calibrated probability that the patch shows an SSA; at or above the "
    "model's threshold the answer is SSA."
)


@dataclass(frozen=True)
class Context:
    backends: list[client.Backend]
    root: Path  # the labelled folder (MHIST_ROOT)
    mlflow_url: str = ""  # where a run's page is: <url>/#/runs/<run id>
    mlflow_auth: tuple[str, str] | None = None  # the MLflow server's basic auth, when it has one

    @classmethod
    def current(cls) -> Context:
        """From .streamlit/secrets.toml, overridden by environment variables of the same names."""
        try:
            secrets = {key: str(value) for key, value in st.secrets.items()}
        except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
            secrets = {}
        config = {**secrets, **os.environ}
        user, password = config.get("MLFLOW_TRACKING_USERNAME"), config.get("MLFLOW_TRACKING_PASSWORD")
        return cls(
            backends=client.backends_from_env(config),
            root=Path(config.get("MHIST_ROOT", "demo_data")),
            mlflow_url=config.get("MLFLOW_URL", ""),
            mlflow_auth=(user, password) if user and password else None,
        )

    def run_link(self, run: object) -> str | None:
        return f"{self.mlflow_url.rstrip('/')}/#/runs/{run}" if self.mlflow_url and run else None


def choose_backend(context: Context, label: str = "Backend") -> client.Backend:
    names = [b.name for b in context.backends]
    return context.backends[names.index(st.selectbox(label, names, key=f"backend-{label}"))]


# --- one answer -----------------------------------------------------------------------------------------------


def show_failure(answer: client.Answer) -> None:
    st.error(f"{answer.backend}: {answer.error}")
    if answer.detail:
        with st.expander("what the service said"):
            st.code(answer.detail)


def show_answer(answer: client.Answer, item: Item, input_size: int) -> None:
    if not answer.ok:
        show_failure(answer)
        return
    data = answer.data
    probability, threshold = float(data["probability"]), float(data["threshold"])
    verdict = f"**{data['label']}**  (P(SSA) {probability:.3f}, threshold {threshold:.3f})"
    if item.truth:
        verdict += f"  -  truth {item.truth}: {client.outcome(item.truth, data['label'])}"
    st.markdown(f"{answer.backend}: {verdict}")
    if data.get("in_distribution") is False:  # the model's answer on an image unlike what it learned is not one
        reason = data.get("ood_reason") or "unlike the training images"
        st.warning(f"Out of distribution: {reason}. Not an H&E patch like those the model learned: do not trust this.")
    if abs(probability - threshold) < BORDERLINE:
        st.warning(
            f"Borderline: P(SSA) is within {BORDERLINE} of the threshold; a slightly different patch could "
            "flip the answer. Read the slide."
        )
    st.html(probability_bar(probability, threshold))
    if note := images.shape_note(item.data, input_size):
        st.caption(note)
    st.caption(f"{data['model']} (run {data.get('model_version', '?')}), {answer.latency_ms:.0f} ms round trip")


def show_explanation(column: DeltaGenerator, explanation: dict[str, Any]) -> None:
    """The overlay, and a legend that says what bright means for this method."""
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
    if explanation["method"] == "occlusion":
        legend = "yellow: hiding this area lowers P(SSA) most (evidence for SSA); dark blue: raises it (for HP)"
    else:
        legend = "yellow: where the class token attends most (attention rollout); dark blue: least"
    column.image(overlay, caption=f"{explanation['method']}, {explanation['latency_ms']:.0f} ms", width="stretch")
    column.caption(legend)


def show_image(column: DeltaGenerator, item: Item) -> None:
    image = images.drawable(item.data)
    if image is None:  # the API judges it all the same
        column.warning(f"{item.name}: cannot be displayed here")
    else:
        column.image(image, caption=item.name, width="stretch")


# --- where images come from ---------------------------------------------------------------------------------------


def _keep_uploads(key: str) -> None:
    """The uploader's files, copied when they change: Streamlit forgets a widget's files when its page is left."""
    files = st.session_state.get(key) or []
    session.state()[f"kept-{key}"] = [Item(f.name, f.getvalue()) for f in files]


def uploads(key: str, backend_limits: client.Limits, label: str = "PNG, JPEG or TIFF images") -> list[Item]:
    """Files from the uploader, kept across pages and sources; a file of another type is named, not hidden.
    The uploader's own limit (Streamlit's "MB" are MiB) is the backend's, so the two never contradict."""
    st.file_uploader(
        label,
        accept_multiple_files=True,
        key=key,
        on_change=_keep_uploads,
        args=(key,),
        max_upload_size=max(1, backend_limits.max_bytes // 2**20),
    )
    kept: list[Item] = session.state().get(f"kept-{key}", [])
    wrong = [i.name for i in kept if not i.name.lower().endswith(images.SUFFIXES)]
    if wrong:
        st.error(f"Not sent: {', '.join(wrong)}: only PNG, JPEG and TIFF images are read")
    return [i for i in kept if i.name not in wrong]


def labelled_image(context: Context) -> list[Item]:
    """One random image of a chosen class and partition of the labelled folder (the test partition first:
    a right answer on a training image means little)."""
    labelled, problem = client.labelled_folder(context.root)
    if problem:
        st.warning(problem.replace("\n", "  \n"))  # markdown keeps the listed problems on their own lines
        return []
    partitions = sorted({i.partition for i in labelled}, key=lambda p: (p != "test", p))
    partition = st.selectbox("Partition", partitions, help="images the model did not learn: test")
    label = st.selectbox("Class", sorted(CLASS_NAMES, reverse=True))  # SSA first
    drawn = session.state().get("drawn")
    if st.button("Draw a random image") or drawn is None or (drawn.label, drawn.partition) != (label, partition):
        drawn = session.state()["drawn"] = client.draw(labelled, label, partition, random.Random())
    if drawn is None:
        st.info(f"{context.root / 'annotations.csv'} has no {label} image in partition {partition}")
        return []
    return [Item(drawn.path.name, drawn.path.read_bytes(), drawn.label)]


def some_images(context: Context, key: str, backend_limits: client.Limits) -> list[Item]:
    source = st.radio("Images", ["Upload", "Random image from a labelled folder"], horizontal=True, key=f"src-{key}")
    return uploads(key, backend_limits) if source == "Upload" else labelled_image(context)


def input_size(answer: client.Answer) -> int:
    size = answer.data.get("input_size") if answer.ok else None
    return int(size[-1]) if isinstance(size, list) and size else 224


# --- pages ----------------------------------------------------------------------------------------------------


def predict_page(context: Context) -> None:
    st.header("Predict")
    backend = choose_backend(context)
    card = session.card(backend)
    size = input_size(card)
    learned = ((card.data.get("card") or {}).get("data") or {}).get("description") if card.ok else None
    if learned:
        st.info(f"{card.data['model_name']} learned from: {learned}")
    why = st.toggle("Why: show where the answer came from", help="a heatmap from the API's /explain")
    for item in some_images(context, "predict", session.limits(backend)):
        left, right = st.columns([1, 3])
        show_image(left, item)
        with right, st.spinner(f"asking {backend.name}..."):
            answer = session.ask("explain" if why else "predict", backend, item)
            show_answer(answer, item, size)
        if why and answer.ok:
            show_explanation(left, answer.data["explanation"])


def _source_items(context: Context) -> tuple[str, list[Item]]:
    """(a name for the source, its images) from files, a ZIP, or a folder on this machine."""
    source = st.radio("Images from", ["Files", "A ZIP", "A folder on this machine"], horizontal=True)
    try:
        if source == "Files":
            items = uploads("many", client.Limits(max_bytes=64 * 1024 * 1024), "PNG, JPEG or TIFF images, many at once")
            table = st.file_uploader("Labels (optional): a CSV of image,label or MHIST's annotations.csv", type="csv")
            if table is not None and items:
                labels = images.labels_from_csv(table.getvalue().decode("utf-8-sig"), table.name)
                items = [Item(i.name, i.data, labels.get(i.name)) for i in items]
            return "files", items
        if source == "A ZIP":
            archive = st.file_uploader(
                "A ZIP of images (with annotations.csv or labels.csv to evaluate)", type="zip", max_upload_size=2048
            )
            return (archive.name, images.from_zip(archive.getvalue(), archive.name)) if archive else ("", [])
        folder = st.text_input("Folder", str(context.root), help="an MHIST folder, or images with a labels.csv")
        return folder, images.from_folder(Path(folder))
    except ImagesError as error:
        st.error(str(error))
        return "", []


def results_table(items: Sequence[Item], answers: Sequence[client.Answer]) -> pd.DataFrame:
    rows = []
    for item, answer in zip(items, answers, strict=True):
        data = answer.data if answer.ok else {}
        label = data.get("label")
        rows.append(
            {
                "image": item.name,
                "P(SSA)": data.get("probability"),
                "label": label,
                "in distribution": data.get("in_distribution"),
                "truth": item.truth,
                "correct": (label == item.truth) if (item.truth and label) else None,
                "error": answer.error or None,
            }
        )
    return pd.DataFrame(rows)


def score_page(context: Context) -> None:
    st.header("Score and evaluate many images")
    backend = choose_backend(context)
    name, items = _source_items(context)
    if not items:
        return
    labelled = sum(1 for i in items if i.truth)
    st.write(f"{len(items)} images" + (f", {labelled} with a label" if labelled else ", no labels"))
    progress = st.progress(0.0, text=f"0 of {len(items)} scored")

    def advance(done: int) -> None:
        progress.progress(done / len(items), text=f"{done} of {len(items)} scored by {backend.name}")

    answers = session.ask_many(backend, items, advance)
    table = results_table(items, answers)
    shown = table.assign(thumbnail=[session.thumbnail(i) for i in items])
    failed = int(table["error"].notna().sum())
    if failed:
        st.error(f"{failed} of {len(items)} images got no answer: see the error column")
    flagged = int((table["in distribution"] == False).sum())  # noqa: E712 - None is "no answer", not False
    if flagged:
        st.warning(f"{flagged} images are out of distribution: their answers are not to be trusted")
    st.dataframe(
        shown,
        hide_index=True,
        column_order=["thumbnail", "image", "P(SSA)", "label", "truth", "correct", "in distribution", "error"],
        column_config={
            "thumbnail": st.column_config.ImageColumn("image", width="small"),
            "P(SSA)": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.download_button(
        "Download the results (CSV)", table.to_csv(index=False), f"scores-{Path(name).stem}.csv", "text/csv"
    )
    answered = [(i, a) for i, a in zip(items, answers, strict=True) if a.ok and i.truth]
    if answered:
        evaluation(answered, len(items) - len(answered))


def evaluation(answered: list[tuple[Item, client.Answer]], left_out: int) -> None:
    """Sensitivity first (a missed SSA is the costly error), with 95% intervals, at the served threshold;
    the slider shows what another threshold would do, and serves nothing."""
    st.subheader("Evaluation against the labels")
    probs = np.array([float(a.data["probability"]) for _, a in answered])
    truth = np.array([int(i.truth == "SSA") for i, _ in answered])
    served = float(answered[0][1].data["threshold"])
    st.caption(
        f"{len(truth)} labelled images answered ({int(truth.sum())} SSA, {int(len(truth) - truth.sum())} HP)"
        + (f"; {left_out} without a label or an answer left out" if left_out else "")
    )
    chosen = st.slider(
        "What if the threshold were",
        0.0,
        1.0,
        served,
        0.005,
        help="the service keeps answering with the model's threshold",
    )
    at = {
        "served": metrics.binary_metrics(probs, truth, served),
        "slider": metrics.binary_metrics(probs, truth, chosen),
    }
    intervals = session.intervals(probs, truth, served)  # not again for each move of the slider
    rows = []
    for name in ("sensitivity", "specificity", "balanced_accuracy", "auroc"):
        low, high = intervals[name]
        rows.append(
            {
                "metric": name,
                f"served threshold {served:.3f}": at["served"][name],
                "95% interval": f"{low:.3f} - {high:.3f}",
                f"threshold {chosen:.3f}": at["slider"][name],
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    m = at["slider"]
    st.write(f"Confusion at threshold {chosen:.3f}")
    confusion = pd.DataFrame(
        {"called SSA": [m["tp"], m["fp"]], "called HP": [m["fn"], m["tn"]]}, index=["truly SSA", "truly HP"]
    ).astype(int)
    st.dataframe(confusion)
    if 0 < truth.sum() < len(truth):
        thresholds = {"served": served} | ({"slider": chosen} if chosen != served else {})
        st.pyplot(curves(probs, truth, thresholds), width="stretch")
    else:
        st.info("ROC and precision-recall need both classes among the labels")


def compare_page(context: Context) -> None:
    st.header("Lambda against EC2")
    if len(context.backends) < 2:
        st.info("Set LAMBDA_API_URL (and LAMBDA_API_KEY) to compare the Lambda API with the EC2 service.")
    for backend in context.backends:
        card = session.card(backend)
        if card.ok:
            st.caption(
                f"{backend.name} serves {card.data.get('model_name')} (run {card.data.get('mlflow_run_id')}, "
                f"{card.data.get('file')}, {card.data.get('runtime')})"
            )
        else:
            show_failure(card)
    smallest = min((session.limits(b) for b in context.backends), key=lambda limit: limit.max_bytes)
    items = some_images(context, "compare", smallest)
    if items and st.button("Send to every backend"):
        for backend in context.backends:
            with st.spinner(f"asking {backend.name}..."):
                for item in (i for i in items if session.known("predict", backend, i) is None):  # asked once
                    answer = session.ask("predict", backend, item)
                    calls = session.state().setdefault("calls", [])
                    calls.append({"backend": backend.name, "ok": answer.ok, "latency_ms": answer.latency_ms})
    answered = {b.name: [session.known("predict", b, i) for i in items] for b in context.backends}
    if not items or not any(a for column in answered.values() for a in column):
        return
    rows = []
    for n, item in enumerate(items):
        row: dict[str, Any] = {"image": item.name}
        got = {name: column[n] for name, column in answered.items()}
        for name, answer in got.items():
            row[f"{name} P(SSA)"] = answer.data.get("probability") if answer else None
            row[f"{name} label"] = answer.data.get("label") if answer else "no answer"
            row[f"{name} in distribution"] = answer.data.get("in_distribution") if answer else None
        probabilities = [a.data["probability"] for a in got.values() if a]
        complete = len(probabilities) == len(got)
        row["|difference|"] = max(probabilities) - min(probabilities) if complete and len(got) > 1 else None
        labels = {a.data["label"] for a in got.values() if a}
        row["agree"] = ("yes" if len(labels) == 1 else "NO") if complete else "not compared"
        rows.append(row)
    table = pd.DataFrame(rows)
    compared = table[table["agree"] != "not compared"]
    st.metric("Backends agree", f"{int((compared['agree'] == 'yes').sum())} of {len(compared)} images both answered")
    if len(compared) < len(table):
        st.warning(f"{len(table) - len(compared)} of {len(table)} images were not answered by every backend")
    st.dataframe(
        table.style.apply(lambda r: ["background-color: #fde2e2" if r["agree"] == "NO" else ""] * len(r), axis=1),
        hide_index=True,
    )
    latency_summary(pd.DataFrame(session.state().get("calls", [])))


def latency_summary(calls: pd.DataFrame) -> None:
    """Round trips of the answers that came back; a failure's time says nothing about speed."""
    if calls.empty:
        return
    good = calls[calls["ok"]].copy()
    for backend, group in good.groupby("backend"):
        first, warm = group["latency_ms"].iloc[0], group["latency_ms"].iloc[1:].tolist()
        if warm:
            st.write(
                f"{backend}: first call {first:.0f} ms (possibly cold); warm p50 "
                f"{client.percentile(warm, 0.5):.0f} ms, p95 {client.percentile(warm, 0.95):.0f} ms "
                f"over {len(warm)} calls"
            )
        else:
            st.write(f"{backend}: one call, {first:.0f} ms (possibly cold); no warm calls yet")
    if len(good):
        good["request"] = good.groupby("backend").cumcount() + 1
        st.bar_chart(good, x="request", y="latency_ms", color="backend", stack=False)


def history_page(context: Context) -> None:
    st.header("This session's predictions")
    history = pd.DataFrame(session.state().get("history", []))
    if history.empty:
        st.info("No predictions yet in this session")
        return
    history["run page"] = [context.run_link(run) for run in history["run"]]
    config = {"run page": st.column_config.LinkColumn(display_text="MLflow run")} if context.mlflow_url else {}
    st.dataframe(
        history,
        hide_index=True,
        column_config=config,
        column_order=[c for c in history if c != "run page" or context.mlflow_url],
    )
    st.download_button("Download the history (CSV)", history.to_csv(index=False), "predictions.csv", "text/csv")


def _ordered(table: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Splits as rows, metrics as columns, each in one order whatever the backend."""
    frame = pd.DataFrame(table).T
    rows = [s for s in SPLIT_ORDER if s in frame.index] + [s for s in frame.index if s not in SPLIT_ORDER]
    columns = [c for c in METRIC_ORDER if c in frame.columns] + [c for c in frame.columns if c not in METRIC_ORDER]
    return frame.loc[rows, columns]


def served_file(card: dict[str, Any]) -> str:
    """Why this file is served: int8 only where its gate passed against fp32."""
    gate = (card.get("card") or {}).get("int8") or {}
    judged = (
        f"int8 AUROC drop {gate['auroc_drop']:.4f}, label agreement {gate['label_agreement']:.1%}"
        if {"auroc_drop", "label_agreement"} <= gate.keys()
        else ""
    )
    if card.get("precision") == "int8":
        return f"int8 ({card.get('file')}): it passed its gate against fp32 ({judged or 'see the card'})"
    if gate.get("servable") is False:
        return f"fp32 ({card.get('file')}): the int8 file failed its gate ({judged})"
    return f"fp32 ({card.get('file')})"


def card_page(context: Context) -> None:
    st.header("Model card")
    refresh = st.button("Ask the backends again")
    for backend in context.backends:
        answer = session.card(backend, refresh=refresh)
        if not answer.ok:
            show_failure(answer)
            continue
        card, details = answer.data, answer.data.get("card") or {}
        run = card.get("mlflow_run_id")
        st.subheader(f"{backend.name}: {card.get('model_name')}")
        link = context.run_link(run)
        st.write(f"MLflow run [{run}]({link})" if link else f"MLflow run {run} (set MLFLOW_URL to link it)")
        st.write(f"Serves {served_file(card)}, with {card.get('runtime')}; created {card.get('created_at')}")
        if details.get("intended_use"):
            st.info(details["intended_use"])
        data = details.get("data") or {}
        if data:
            st.write(f"Learned from: {data.get('description')}")
            if isinstance(data.get("splits"), dict):
                st.dataframe(pd.DataFrame(data["splits"]).T, width="stretch")
        threshold = card.get("threshold")
        at = details.get("metrics_at") or f"the threshold {threshold} tuned on validation"
        st.write(f"Metrics at {at}:")
        if isinstance(card.get("metrics"), dict):
            st.dataframe(_ordered(card["metrics"]), width="stretch")
        for name, interval in ((details.get("intervals_95") or {}).get("test") or {}).items():
            st.caption(f"test {name}: 95% interval {interval[0]:.3f} - {interval[1]:.3f}")
        if details.get("calibration"):
            cal = details["calibration"]
            st.write(f"Calibration: {cal.get('method')}; expected calibration error {cal.get('ece')}")
        if details.get("out_of_distribution"):
            with st.expander("Out-of-distribution guard"):
                st.json(details["out_of_distribution"])
        plots(context, run)


def plots(context: Context, run: object) -> None:
    if not context.mlflow_url:
        st.caption("The run's plots (ROC, confusion, reliability, heatmaps) are in MLflow: set MLFLOW_URL to show them")
        return
    for name in ("curves.png", "confusion_test.png", "reliability.png", "heatmaps_test.png"):
        picture = session.run_artifact(context.mlflow_url, str(run), f"plots/{name}", context.mlflow_auth)
        if isinstance(picture, bytes):
            st.image(picture, caption=name, width="stretch")
        else:
            st.caption(f"{name}: {picture}")


def about_page(context: Context) -> None:
    st.header("About")
    st.markdown(GLOSSARY)
    st.caption("Backends: " + " | ".join(f"{b.name}: {b.url}" for b in context.backends))
    st.graphviz_chart("""digraph { rankdir=LR; node [shape=box, style=rounded];
        Streamlit -> "API Gateway" -> Lambda -> EFS; Streamlit -> "EC2 service (gunicorn)" -> EFS;
        "fit.py (GPU)" -> "MLflow (EC2)" -> "RDS PostgreSQL"; "MLflow (EC2)" -> "S3 artifacts";
        "S3 artifacts" -> "sync function" -> EFS; }""")
    labelled, problem = client.labelled_folder(context.root)
    if problem:
        st.caption(f"No class-balance chart: {problem.splitlines()[0]}")
    else:
        counts = pd.DataFrame([{"partition": i.partition, "class": i.label} for i in labelled])
        st.subheader(f"Class balance per partition ({context.root})")
        st.bar_chart(counts.value_counts().rename("images").reset_index(), x="partition", y="images", color="class")
