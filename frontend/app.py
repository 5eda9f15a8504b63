"""MHIST classifier front end: predict with either backend, compare them, read the model card.

streamlit run frontend/app.py      # EC2_SERVICE_URL, LAMBDA_API_URL, LAMBDA_API_KEY, MHIST_ROOT
"""

from __future__ import annotations

import base64
import io
import os
import random
import sys
from pathlib import Path

if __package__ in (None, ""):  # streamlit runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from frontend import client
from frontend.plots import probability_bar

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}

st.set_page_config(page_title="MHIST classifier", layout="wide")


def settings() -> dict[str, str]:
    """Endpoints from .streamlit/secrets.toml, overridden by environment variables of the same names."""
    try:
        secrets = {key: str(value) for key, value in st.secrets.items()}
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        secrets = {}
    return {**secrets, **os.environ}


config = settings()
backends = client.backends_from_env(config)
root = Path(config.get("MHIST_ROOT", "demo_data"))


def show_answer(answer: client.Answer, truth: str | None = None) -> None:
    if not answer.ok:
        st.error(f"{answer.backend}: {answer.error}")
        return
    data = answer.data
    probability, threshold = float(data["probability"]), float(data["threshold"])
    verdict = f"**{data['label']}**  (probability {probability:.3f}, threshold {threshold:.3f})"
    if truth:
        verdict += f"  -  truth {truth}: {client.outcome(truth, data['label'])}"
    st.markdown(f"{answer.backend}: {verdict}")
    if data.get("in_distribution") is False:  # the model's answer on an image unlike what it learned is not one
        reason = data.get("ood_reason") or "unlike the training images"
        st.warning(f"Out of distribution: {reason}. Not an H&E patch like those the model learned: do not trust this.")
    st.pyplot(probability_bar(probability, threshold), width="stretch")
    st.caption(f"{data['model']} (run {data.get('model_version', '?')}), {answer.latency_ms:.0f} ms round trip")


def show_explanation(column: DeltaGenerator, explanation: dict) -> None:
    """The overlay, and a legend that says what bright means for this method."""
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
    if explanation["method"] == "occlusion":
        legend = "yellow: hiding this area lowers P(SSA) most (evidence for SSA); dark blue: raises it (for HP)"
    else:
        legend = "yellow: where the class token attends most (attention rollout); dark blue: least"
    column.image(overlay, caption=f"{explanation['method']}, {explanation['latency_ms']:.0f} ms", width="stretch")
    column.caption(legend)


def images_from_page() -> list[tuple[str, bytes, str, str | None]]:
    """(name, bytes, content type, true label or None) from uploads or a labelled folder."""
    source = st.radio("Images", ["Upload", "Random image from a labelled folder"], horizontal=True)
    if source == "Upload":
        files = st.file_uploader("PNG, JPEG or TIFF", type=list(CONTENT_TYPES), accept_multiple_files=True)
        return [(f.name, f.getvalue(), CONTENT_TYPES[f.name.rsplit(".", 1)[-1].lower()], None) for f in files or []]
    labelled, problem = client.labelled_folder(root)
    if problem:
        st.warning(problem.replace("\n", "  \n"))  # markdown keeps the listed problems on their own lines
        return []
    partition = st.selectbox("Partition", sorted({i.partition for i in labelled}, reverse=True))
    label = st.selectbox("Class", ["SSA", "HP"])
    drawn = st.session_state.get("drawn")
    if st.button("Draw a random image") or drawn is None or (drawn.label, drawn.partition) != (label, partition):
        drawn = st.session_state.drawn = client.draw(labelled, label, partition, random.Random())
    if drawn is None:
        st.info(f"{root / 'annotations.csv'} has no {label} image in partition {partition}")
        return []
    content_type = CONTENT_TYPES.get(drawn.path.suffix.lstrip(".").lower(), "image/png")
    return [(drawn.path.name, drawn.path.read_bytes(), content_type, drawn.label)]


def predict_page() -> None:
    st.header("Predict")
    backend = backends[[b.name for b in backends].index(st.selectbox("Backend", [b.name for b in backends]))]
    why = st.toggle("Why: show where the answer came from", help="a heatmap from the API's /explain")
    for name, data, content_type, truth in images_from_page():
        left, right = st.columns([1, 3])
        try:
            left.image(Image.open(io.BytesIO(data)), caption=name, width="stretch")
        except Exception:  # noqa: BLE001 - a file the browser cannot show is still sent: the API judges it
            left.warning(f"{name}: cannot be displayed")
        with right, st.spinner(f"asking {backend.name}..."):
            answer = (client.explain if why else client.predict)(backend, data, content_type)
            show_answer(answer, truth)
        if why and answer.ok:
            show_explanation(left, answer.data["explanation"])


def compare_page() -> None:
    st.header("Lambda against EC2")
    if len(backends) < 2:
        st.info("Set LAMBDA_API_URL (and LAMBDA_API_KEY) to compare the Lambda API with the EC2 service.")
    images = images_from_page()
    if not images or not st.button("Send to every backend"):
        return
    rows, progress = [], st.progress(0.0, text="sending...")
    total = len(images) * len(backends)
    for i, (name, data, content_type, _) in enumerate(images):
        for j, backend in enumerate(backends):
            answer = client.predict(backend, data, content_type)
            rows.append({"image": name, "backend": backend.name, "request": i + 1, "ok": answer.ok,
                         "probability": answer.data.get("probability"), "label": answer.data.get("label"),
                         "latency_ms": round(answer.latency_ms, 1), "first call": i == 0,
                         "error": answer.error})  # fmt: skip
            progress.progress((i * len(backends) + j + 1) / total, text=f"{name} -> {backend.name}")
    table = pd.DataFrame(rows)
    st.dataframe(table, width="stretch")
    labels = table[table.ok].groupby("image")["label"].nunique()
    st.metric("Backends agree", f"{int((labels == 1).sum())} of {len(labels)} images")
    for backend, group in table[table.ok].groupby("backend"):
        warm = group[~group["first call"]]["latency_ms"].tolist() or group["latency_ms"].tolist()
        st.write(f"{backend}: p50 {client.percentile(warm, 0.5):.0f} ms, p95 {client.percentile(warm, 0.95):.0f} ms "
                 f"(warm); first call {group.iloc[0]['latency_ms']:.0f} ms (possibly cold)")  # fmt: skip
    st.bar_chart(table, x="request", y="latency_ms", color="backend", stack=False)


def card_page() -> None:
    st.header("Model card")
    for backend in backends:
        answer = client.metadata(backend)
        if not answer.ok:
            st.error(f"{backend.name}: {answer.error}")
            continue
        card = answer.data
        st.subheader(f"{backend.name}: {card.get('model_name')}")
        st.write(f"run {card.get('mlflow_run_id')}, threshold {card.get('threshold')}, {card.get('precision')} "
                 f"({card.get('file')}), created {card.get('created_at')}")  # fmt: skip
        if isinstance(card.get("metrics"), dict):
            st.dataframe(pd.DataFrame(card["metrics"]).T, width="stretch")


def about_page() -> None:
    st.header("About")
    st.graphviz_chart("""digraph { rankdir=LR; node [shape=box, style=rounded];
        Streamlit -> "API Gateway" -> Lambda -> EFS; Streamlit -> "EC2 service (gunicorn)" -> EFS;
        "fit.py (GPU)" -> "MLflow (EC2)" -> "RDS PostgreSQL"; "MLflow (EC2)" -> "S3 artifacts";
        "S3 artifacts" -> "sync function" -> EFS; }""")  # fmt: skip
    labelled, problem = client.labelled_folder(root)
    if problem:
        st.caption(f"No class-balance chart: {problem.splitlines()[0]}")
    else:
        counts = pd.DataFrame([{"partition": i.partition, "class": i.label} for i in labelled])
        st.subheader(f"Class balance per partition ({root})")
        st.bar_chart(counts.value_counts().rename("images").reset_index(), x="partition", y="images", color="class")


pages = {"Predict": predict_page, "Compare": compare_page, "Model card": card_page, "About": about_page}
pages[st.sidebar.radio("Page", list(pages))]()
st.sidebar.caption(" | ".join(f"{b.name}: {b.url}" for b in backends))
