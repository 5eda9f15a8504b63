"""The Streamlit app against the real gunicorn service on 127.0.0.1: AppTest for the pages, and
headless Chromium (Debian's package, driven by Playwright) for an upload end to end."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox
from PIL import Image
from streamlit.testing.v1 import AppTest

from frontend import client, images
from frontend.plots import curves
from inference import metrics
from tests.conftest import REPO
from tests.servers import JsonHandler, free_port, gunicorn, process

pytestmark = pytest.mark.slow
APP = str(REPO / "frontend" / "app.py")
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36"
)
MODEL = "mlp-64-32"


@pytest.fixture(scope="module")
def service(model_store: Path, tmp_path_factory: pytest.TempPathFactory):
    context, url = gunicorn(model_store, tmp_path_factory.mktemp("front") / "gunicorn.log", MODEL_NAME=MODEL)
    with context:
        yield url


@pytest.fixture(scope="module")
def trained_run(model_store: Path) -> str:
    return json.loads((model_store / MODEL / "card.json").read_text())["mlflow_run_id"]


@pytest.fixture
def app(service: str, small_root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EC2_SERVICE_URL", service)
    monkeypatch.setenv("MHIST_ROOT", str(small_root))
    monkeypatch.delenv("LAMBDA_API_URL", raising=False)
    return AppTest.from_file(APP, default_timeout=60)


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def labelled(at: AppTest) -> AppTest:
    return next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()


def page(at: AppTest, name: str) -> AppTest:
    return at.switch_page(f"views/{name}.py").run()


def test_random_labelled_image_is_predicted_and_judged_on_the_test_partition(app: AppTest) -> None:
    at = labelled(app.run())
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Partition").value == "test"  # not train, where hits mean little
    text = markdown(at)
    assert "EC2 service: **" in text
    assert "P(SSA)" in text
    assert any(word in text for word in ("true positive", "false positive", "true negative", "false negative"))
    assert len(at.get("image")) == 1  # the slide; the probability bar is HTML, readable at any width
    (bar,) = [h for h in at.get("html") if "probability-bar" in h.proto.body]
    assert "threshold" in bar.proto.body
    assert at.warning[0].value.startswith("Research use only, not for clinical diagnosis")
    assert any("learned from: synthetic demo images" in i.value for i in at.info)  # the card's own words


def test_why_shows_the_heatmap_with_its_legend(app: AppTest) -> None:
    at = app.run()
    next(t for t in at.toggle if t.label.startswith("Why")).set_value(True).run()
    at = labelled(at)
    assert not at.exception
    assert len(at.get("image")) == 2  # the slide, and the heatmap over the slide
    assert any("hiding this area lowers P(SSA)" in c.value for c in at.caption)


def test_answers_are_asked_once_per_image_and_uploads_outlive_a_page_change(app: AppTest, small_root: Path) -> None:
    first, second = sorted((small_root / "images").iterdir())[:2]
    at = app.run()
    at.get("file_uploader")[0].set_value(
        [
            (first.name, first.read_bytes(), "image/png"),
            (second.name, second.read_bytes(), "image/png"),
            ("notes.txt", b"not an image", "text/plain"),
        ]
    ).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Not sent: notes.txt: only PNG, JPEG and TIFF images are read"]
    assert markdown(at).count("EC2 service: **") == 2
    assert len(at.session_state["history"]) == 2
    at = page(page(at, "about"), "predict")
    assert markdown(at).count("EC2 service: **") == 2  # the uploads were kept, and not sent again
    assert len(at.session_state["history"]) == 2
    at = page(at, "history")
    assert len(at.dataframe[0].value) == 2
    assert at.get("download_button")[0].proto.label == "Download the history (CSV)"


def test_compare_counts_only_images_every_backend_answered(
    app: AppTest, service: str, monkeypatch: pytest.MonkeyPatch, trained_run: str
) -> None:
    """One backend down read "Backends agree: 1 of 1 images", and its failures were drawn as fast answers."""
    monkeypatch.setenv("LAMBDA_API_URL", f"http://127.0.0.1:{free_port()}/prod/predict")
    at = page(AppTest.from_file(APP, default_timeout=60).run(), "compare")
    assert any(MODEL in c.value and trained_run in c.value for c in at.caption)  # which model and run it serves
    at = labelled(at)
    next(b for b in at.button if b.label == "Send to every backend").click().run()
    assert not at.exception
    assert at.metric[0].value == "0 of 0 images both answered"
    assert at.warning[-1].value == "1 of 1 images were not answered by every backend"
    table = at.dataframe[0].value
    assert list(table["agree"]) == ["not compared"]
    assert list(table["Lambda API label"]) == ["no answer"]
    summary = markdown(at)
    assert "EC2 service: one call" in summary
    assert "Lambda API" not in summary  # a failed call has no latency worth drawing


def test_compare_of_two_working_backends_shows_the_difference(
    app: AppTest, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_API_URL", service)  # the same service behind a second name: the two must agree
    at = labelled(page(AppTest.from_file(APP, default_timeout=60).run(), "compare"))
    next(b for b in at.button if b.label == "Send to every backend").click().run()
    assert at.metric[0].value == "1 of 1 images both answered"
    table = at.dataframe[0].value
    assert list(table["agree"]) == ["yes"]
    assert list(table["|difference|"]) == [0.0]
    next(s for s in at.selectbox if s.label == "Class").set_value("HP").run()  # another image: the first is kept
    next(b for b in at.button if b.label == "Send to every backend").click().run()
    assert not at.exception
    assert "first call" in markdown(at)
    assert "warm p50" in markdown(at)


def test_a_labelled_folder_is_scored_and_evaluated(app: AppTest, small_root: Path) -> None:
    at = page(app.run(), "score")
    at = next(r for r in at.main.radio if r.label == "Images from").set_value("A folder on this machine").run()
    assert not at.exception
    results = at.dataframe[0].value
    assert len(results) == 80
    assert set(results["truth"]) == {"HP", "SSA"}
    truth = (results["truth"] == "SSA").astype(int).to_numpy()
    probabilities = results["P(SSA)"].to_numpy(dtype=float)
    served = float(at.slider[0].value)
    expected = metrics.binary_metrics(probabilities, truth, served)
    evaluation = at.dataframe[1].value.set_index("metric")
    assert evaluation.loc["sensitivity"].iloc[0] == pytest.approx(expected["sensitivity"])
    assert evaluation.loc["auroc"].iloc[0] == pytest.approx(expected["auroc"])
    confusion = at.dataframe[2].value
    assert int(confusion.loc["truly SSA", "called SSA"]) == expected["tp"]
    at.slider[0].set_value(0.0).run()  # everything SSA: what moving the threshold would do, served or not
    assert int(at.dataframe[2].value.loc["truly HP", "called HP"]) == 0
    assert at.dataframe[0].value["P(SSA)"].tolist() == results["P(SSA)"].tolist()  # not sent again
    assert at.get("download_button")[0].proto.label == "Download the results (CSV)"


def test_a_zip_is_uploaded_scored_and_a_wide_image_is_said_to_be_stretched(app: AppTest, small_root: Path) -> None:
    names = sorted((small_root / "images").iterdir())[:4]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in names:
            zipped.write(path, path.name)
        zipped.writestr(
            "labels.csv",
            "image,label\n" + "".join(f"{p.name},{'SSA' if i % 2 else 'HP'}\n" for i, p in enumerate(names)),
        )
    at = page(app.run(), "score")
    at = next(r for r in at.main.radio if r.label == "Images from").set_value("A ZIP").run()
    at.get("file_uploader")[0].set_value(("slides.zip", archive.getvalue(), "application/zip")).run()
    assert not at.exception
    results = at.dataframe[0].value
    assert list(results["image"]) == [p.name for p in names]
    assert list(results["truth"]) == ["HP", "SSA", "HP", "SSA"]
    assert results["correct"].notna().all()
    assert any(s.value == "Evaluation against the labels" for s in at.subheader)

    wide = io.BytesIO()
    Image.open(names[0]).resize((300, 200)).save(wide, "PNG")
    at = page(at, "predict")
    at.get("file_uploader")[0].set_value(("wide.png", wide.getvalue(), "image/png")).run()
    assert any(c.value.startswith("300x200, not square: the model sees it stretched to ") for c in at.caption)


def test_a_zip_with_labels_and_a_zip_bomb_listing(tmp_path: Path, small_root: Path) -> None:
    names = sorted((small_root / "images").iterdir())[:3]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in names:
            zipped.write(path, f"slides/{path.name}")
        zipped.writestr("slides/labels.csv", "image,label\n" + "".join(f"{p.name},SSA\n" for p in names[:2]))
        zipped.writestr("__MACOSX/slides/._x.png", b"resource fork")
    items = images.from_zip(archive.getvalue())
    assert [(i.name.rsplit("/", 1)[-1], i.truth) for i in items] == [
        (names[0].name, "SSA"),
        (names[1].name, "SSA"),
        (names[2].name, None),
    ]
    with pytest.raises(images.ImagesError, match="labels must be HP or SSA"):
        images.labels_from_csv("image,label\na.png,cancer\n", "labels.csv")
    with pytest.raises(images.ImagesError, match="is not a ZIP file"):
        images.from_zip(b"PK but not really")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("big.png", b"\0" * (images.ZIP_MAX_BYTES + 1))
    with pytest.raises(images.ImagesError, match="at most 5000 images, 2 GiB"):
        images.from_zip(bomb.getvalue())


def test_model_card_says_what_it_is_for_and_how_it_was_measured(app: AppTest) -> None:
    at = page(app.run(), "card")
    assert not at.exception
    assert any(MODEL in s.value for s in at.subheader)
    assert any(i.value.startswith("Research use only") for i in at.info)
    text = markdown(at)
    assert "Metrics at the threshold" in text
    assert "tuned on validation" in text
    assert "Learned from: synthetic demo images" in text
    assert "Serves " in text
    assert "gate" in text
    metrics_table = next(d.value for d in at.dataframe if "sensitivity" in d.value.columns)
    assert list(metrics_table.columns[:3]) == ["sensitivity", "specificity", "balanced_accuracy"]
    assert list(metrics_table.index) == [s for s in ("train", "val", "test") if s in metrics_table.index]
    assert any("set MLFLOW_URL" in c.value for c in at.caption)
    at = page(at, "about")
    assert any("Class balance" in s.value for s in at.subheader)


def test_card_plots_and_history_links_come_from_the_mlflow_server(
    app: AppTest, trained: SimpleNamespace, trained_run: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{trained.root}/mlflow.db",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with process(command, f"{url}/health", dict(os.environ), tmp_path / "mlflow.log"):
        monkeypatch.setenv("MLFLOW_URL", url)
        at = page(labelled(AppTest.from_file(APP, default_timeout=60).run()), "card")
        captions = [caption for image in at.get("image") for caption in image.captions]
        at = page(at, "history")
    assert not at.exception
    assert "curves.png" in captions
    assert "reliability.png" in captions
    assert list(at.dataframe[0].value["run page"]) == [f"{url}/#/runs/{trained_run}"]


def test_no_model_is_said_once_without_the_server_paths(
    small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, url = gunicorn(tmp_path, tmp_path / "gunicorn.log", MODEL_NAME="nowhere", WEB_CONCURRENCY="1")
    with context:
        monkeypatch.setenv("EC2_SERVICE_URL", url)
        monkeypatch.setenv("MHIST_ROOT", str(small_root))
        at = labelled(AppTest.from_file(APP, default_timeout=60).run())
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors
    assert all(e == "EC2 service: 503 model_not_ready: " + client.HINTS["model_not_ready"] for e in errors)
    assert all(str(tmp_path) not in e for e in errors)
    assert str(tmp_path / "nowhere") in at.get("code")[0].value  # for the operator, in an expander


def test_unreachable_backend_is_a_readable_error(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EC2_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    at = labelled(AppTest.from_file(APP, default_timeout=60).run())
    assert not at.exception
    assert any("cannot reach http://127.0.0.1:" in e.value for e in at.error)


def test_a_broken_labelled_folder_is_named_on_the_page(
    app: AppTest, small_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV without the MHIST columns was a KeyError traceback on the page."""
    text = (small_copy / "annotations.csv").read_text().replace("Partition", "Split", 1)
    (small_copy / "annotations.csv").write_text(text)
    monkeypatch.setenv("MHIST_ROOT", str(small_copy))
    at = labelled(AppTest.from_file(APP, default_timeout=60).run())
    assert not at.exception
    assert "missing column(s) ['Partition']" in at.warning[-1].value
    at = page(at, "about")
    assert not at.exception
    assert at.main.caption[-1].value.startswith("No class-balance chart: MHIST_ROOT: ")


def test_the_drawn_image_follows_the_chosen_class_and_partition(
    app: AppTest, small_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing the class kept showing the image drawn for the class before; a class a partition
    lacks showed nothing at all."""
    lines = (small_copy / "annotations.csv").read_text().splitlines()
    lines = [line.replace(",SSA,", ",HP,") if line.endswith(",test") else line for line in lines]
    (small_copy / "annotations.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MHIST_ROOT", str(small_copy))
    at = labelled(AppTest.from_file(APP, default_timeout=60).run())
    next(s for s in at.selectbox if s.label == "Partition").set_value("train").run()
    for chosen in ("HP", "SSA", "HP"):
        next(s for s in at.selectbox if s.label == "Class").set_value(chosen).run()
        assert f"truth {chosen}:" in markdown(at)
    next(s for s in at.selectbox if s.label == "Partition").set_value("test").run()
    next(s for s in at.selectbox if s.label == "Class").set_value("SSA").run()
    assert not at.exception
    assert [i.value for i in at.info][-1] == f"{small_copy / 'annotations.csv'} has no SSA image in partition test"
    assert "truth" not in markdown(at)


def test_endpoints_can_come_from_streamlit_secrets(
    service: str, small_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EC2_SERVICE_URL", raising=False)
    monkeypatch.delenv("MHIST_ROOT", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["EC2_SERVICE_URL"] = service
    at.secrets["MHIST_ROOT"] = str(small_root)
    at.secrets["LAMBDA_API_URL"] = f"http://127.0.0.1:{free_port()}/prod/predict"
    assert "EC2 service: **" in markdown(labelled(at.run()))
    backends = next(c.value for c in page(at, "about").caption if c.value.startswith("Backends: "))
    assert service in backends
    assert "Lambda API: http://127.0.0.1:" in backends


def test_curves_name_their_areas_and_mark_both_thresholds(recwarn: pytest.WarningsRecorder) -> None:
    """The ROC legend had no AUC."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 100)
    probs = np.clip(rng.random(100) * 0.7 + truth * 0.3, 0, 1)
    fig = curves(probs, truth, {"served": 0.5, "slider": 0.3})
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    roc, pr = fig.axes
    assert [t.get_text() for t in roc.get_legend().get_texts()] == [
        f"AUC {metrics.auroc(probs, truth):.3f}",
        "served 0.500",
        "slider 0.300",
    ]
    assert pr.get_legend().get_texts()[0].get_text() == f"AP {metrics.average_precision(probs, truth):.3f}"
    for ax in (roc, pr):  # inside the figure: adding the legend's box does not grow the figure's
        grown = Bbox.union([fig.bbox, ax.get_legend().get_window_extent(canvas.get_renderer())])
        assert grown.bounds == pytest.approx(fig.bbox.bounds, abs=1)
    assert not [w for w in recwarn if "layout" in str(w.message).lower()]


def test_client_turns_api_refusals_into_messages(service: str) -> None:
    backend = client.Backend("EC2 service", service)
    answer = client.predict(backend, b"not an image")
    assert not answer.ok
    assert answer.error.startswith("400 invalid_image: the body is not a readable image")
    assert client.Limits.of(client.metadata(backend).data) == client.Limits(10 * 1024 * 1024, 32, 64 * 1024 * 1024)
    assert client.chunks([10, 10, 10], client.Limits(max_batch=2)) == [[0, 1], [2]]
    assert client.chunks([600, 600, 10], client.Limits(max_request_bytes=2000)) == [[0], [1, 2]]
    assert client.percentile([10, 20, 30, 40], 0.5) == 25
    assert client.outcome("SSA", "HP") == "false negative"
    assert [b.name for b in client.backends_from_env({"LAMBDA_API_URL": "https://x/prod/predict"})] == [
        "EC2 service",
        "Lambda API",
    ]
    assert client.backends_from_env({"LAMBDA_API_URL": "https://x/prod/predict"})[1].url == "https://x/prod"


def test_a_batch_with_one_bad_image_costs_one_row(service: str, small_root: Path) -> None:
    first, second = (p.read_bytes() for p in sorted((small_root / "images").iterdir())[:2])
    backend = client.Backend("EC2 service", service)
    together = client.predict_batch(backend, [first, second])
    assert [a.ok for a in together] == [True, True]
    answers = client.predict_batch(backend, [first, b"not an image", second])
    assert [a.ok for a in answers] == [True, False, True]
    assert answers[1].error.startswith("400 invalid_image")
    assert answers[2].data["probability"] == pytest.approx(together[1].data["probability"], abs=1e-6)


class Gateway(JsonHandler):
    """What API Gateway sends before a request reaches the Lambda: our mapped error JSON for a bad key
    (the stack's gateway responses), and its bare ``{"message": ...}`` where no mapping applies."""

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/mapped"):
            self.answer(403, {"error": {"code": "invalid_api_key", "message": "send the API key in x-api-key"}})
        else:
            self.answer(403, {"message": "Forbidden"})


def test_gateway_refusals_say_which_setting_to_check() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        mapped = client.predict(client.Backend("Lambda API", f"{url}/mapped", "wrong", "LAMBDA_API_URL"), b"png")
        bare = client.predict(client.Backend("Lambda API", f"{url}/bare", "wrong", "LAMBDA_API_URL"), b"png")
    finally:
        server.shutdown()
        server.server_close()
    assert mapped.error.startswith("403 invalid_api_key: send the API key in x-api-key (check LAMBDA_API_KEY")
    assert bare.error == "403 Forbidden: check LAMBDA_API_URL and LAMBDA_API_KEY"
    assert bare.detail == '{"message": "Forbidden"}'


def test_client_names_a_url_without_scheme_and_a_service_that_is_not_ours() -> None:
    """'127.0.0.1:8080' read 'cannot reach 127.0.0.1:8080 (InvalidSchema)'; another service's JSON
    was a KeyError on the page."""
    (backend,) = client.backends_from_env({"EC2_SERVICE_URL": "127.0.0.1:8080"})
    assert client.predict(backend, b"png").error == "EC2_SERVICE_URL '127.0.0.1:8080' is not an http:// or https:// URL"

    class Json(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"label": "cat", "score": 0.9}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Json)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        answer = client.predict(client.Backend("Lambda API", url, setting="LAMBDA_API_URL"), b"png")
    finally:
        server.shutdown()
        server.server_close()
    assert not answer.ok
    assert answer.error == f"{url}/predict answered JSON without probability, threshold, model: is it the MHIST API?"


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_upload_in_a_real_browser_on_a_desktop_and_a_phone(service: str, small_root: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "EC2_SERVICE_URL": service, "MHIST_ROOT": str(small_root)}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        APP,
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    image = sorted((small_root / "images").iterdir())[0]
    photograph = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photograph)
    with (
        process(command, f"http://127.0.0.1:{port}/_stcore/health", env, tmp_path / "streamlit.log"),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        page.locator('input[type="file"]').set_input_files(str(image))
        page.get_by_text("EC2 service: ").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # let the page settle before the picture
        text = page.inner_text("body")
        deploy = page.get_by_role("button", name="Deploy").count()
        shot = tmp_path / "frontend.png"
        page.screenshot(path=str(shot), full_page=True)
        page.locator('input[type="file"]').set_input_files([str(image), str(photograph)])
        page.get_by_text("Out of distribution: ").wait_for(timeout=60_000)  # the photograph's answer, warned about
        warned = page.inner_text("body")

        # Streamlit closes its sidebar after a page is chosen when the user agent is a phone's (not in a
        # desktop window made narrow)
        phone = browser.new_page(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, user_agent=PHONE
        )
        phone.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        phone.locator('input[type="file"]').set_input_files(str(image))
        phone.locator(".probability-bar").wait_for(timeout=60_000)
        bar_text_px = phone.locator(".probability-bar span").first.evaluate(
            "e => parseFloat(getComputedStyle(e).fontSize)"
        )
        bar_width = phone.locator(".probability-bar").bounding_box()["width"]
        phone.get_by_test_id("stExpandSidebarButton").click()
        phone.get_by_role("link", name="About").click()
        phone.get_by_text("Class balance per partition").wait_for(timeout=60_000)
        phone.wait_for_timeout(1000)
        sidebar = phone.get_by_test_id("stSidebar").bounding_box()
        phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        browser.close()
    assert "threshold" in text
    assert image.name in text
    assert "Research use only, not for clinical diagnosis" in text
    assert "Out of distribution" not in text  # the test image is histology like the training images
    assert warned.count("Out of distribution: ") == 1
    assert deploy == 0  # the app's users are not its developers
    assert shot.stat().st_size > 10_000
    assert bar_text_px >= 12  # it was a 7-inch figure shrunk to the column: about 6 px of text at 390 px
    assert bar_width <= 390
    assert sidebar is None or sidebar["x"] + sidebar["width"] <= 0  # closed again once a page was chosen
    if os.environ.get("SAVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["SAVE_SCREENSHOT"])
