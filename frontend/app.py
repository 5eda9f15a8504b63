"""MHIST classifier front end: predict with either backend, score and evaluate folders, compare the
backends, keep a history, read the model card. Each page is a file in ``views/``; they draw with
``frontend.pages``.

streamlit run frontend/app.py    # EC2_SERVICE_URL, LAMBDA_API_URL, LAMBDA_API_KEY, MHIST_ROOT, MLFLOW_URL
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # streamlit runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from frontend import pages

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="MHIST classifier", layout="wide")
st.warning(
    "Research use only, not for clinical diagnosis. It reads 224x224 H&E patches of colorectal polyps as HP "
    "(hyperplastic polyp) or SSA (sessile serrated adenoma/lesion); what each model learned is on its model card."
)
st.caption(pages.GLOSSARY)
chosen = st.navigation(
    [
        st.Page(VIEWS / "predict.py", title="Predict", default=True),
        st.Page(VIEWS / "score.py", title="Score a folder"),
        st.Page(VIEWS / "compare.py", title="Compare"),
        st.Page(VIEWS / "history.py", title="History"),
        st.Page(VIEWS / "card.py", title="Model card"),
        st.Page(VIEWS / "about.py", title="About"),
    ]
)
st.sidebar.caption(" | ".join(f"{b.name}: {b.url}" for b in pages.Context.current().backends))
chosen.run()
