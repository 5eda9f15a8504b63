"""The Streamlit app against the real gunicorn service on 127.0.0.1: AppTest for the pages, and
headless Chromium (Debian's package, driven by Playwright) for an upload end to end."""

from __future__ import annotations

import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest
import skimage.data
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox
from PIL import Image
from streamlit.testing.v1 import AppTest

from frontend import client
from frontend.plots import probability_bar
from tests.conftest import REPO
from tests.servers import free_port, gunicorn, process

pytestmark = pytest.mark.slow
APP = str(REPO / "frontend" / "app.py")
MODEL = "mlp-64-32"


@pytest.fixture(scope="module")
def service(model_store: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    context, url = gunicorn(model_store, tmp_path_factory.mktemp("front") / "gunicorn.log", MODEL_NAME=MODEL)
    with context:
        yield url


@pytest.fixture
def app(service: str, small_root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EC2_SERVICE_URL", service)
    monkeypatch.setenv("MHIST_ROOT", str(small_root))
    monkeypatch.delenv("LAMBDA_API_URL", raising=False)
    return AppTest.from_file(APP, default_timeout=60)


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_random_labelled_image_is_predicted_and_judged(app: AppTest) -> None:
    at = app.run()
    images = next(r for r in at.main.radio if r.label == "Images")
    images.set_value("Random image from a labelled folder").run()
    assert not at.exception
    text = markdown(at)
    assert "EC2 service: **" in text
    assert "threshold" in text
    assert any(word in text for word in ("true positive", "false positive", "true negative", "false negative"))
    assert len(at.get("image")) == 2  # the slide, and where its probability sits against the threshold


def test_why_shows_the_heatmap_with_its_legend(app: AppTest) -> None:
    at = app.run()
    next(t for t in at.toggle if t.label.startswith("Why")).set_value(True).run()
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    assert not at.exception
    assert len(at.get("image")) == 3  # the slide, the probability bar, and the heatmap over the slide
    assert any("hiding this area lowers P(SSA)" in c.value for c in at.caption)


def test_compare_sends_to_every_backend_and_reports_latency(app: AppTest) -> None:
    at = app.run()
    at.sidebar.radio[0].set_value("Compare").run()
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    next(b for b in at.button if b.label == "Send to every backend").click().run()
    assert not at.exception
    assert at.metric[0].label == "Backends agree"
    assert at.metric[0].value == "1 of 1 images"
    assert any("p50" in m.value and "first call" in m.value for m in at.markdown)
    assert len(at.dataframe[0].value) == 1


def test_model_card_and_about(app: AppTest) -> None:
    at = app.run()
    at.sidebar.radio[0].set_value("Model card").run()
    assert any(MODEL in s.value for s in at.subheader)
    at.sidebar.radio[0].set_value("About").run()
    assert not at.exception
    assert any("Class balance" in s.value for s in at.subheader)


def test_unreachable_backend_is_a_readable_error(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EC2_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    assert not at.exception
    assert any("cannot reach http://127.0.0.1:" in e.value for e in at.error)


def test_a_broken_labelled_folder_is_named_on_the_page(app: AppTest, small_copy: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A CSV without the MHIST columns was a KeyError traceback on the page."""
    text = (small_copy / "annotations.csv").read_text().replace("Partition", "Split", 1)
    (small_copy / "annotations.csv").write_text(text)
    monkeypatch.setenv("MHIST_ROOT", str(small_copy))
    at = AppTest.from_file(APP, default_timeout=60).run()
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        f"MHIST_ROOT: {small_copy / 'annotations.csv'}: missing column(s) ['Partition']; found ['Image Name', "
        "'Majority Vote Label', 'Number of Annotators who Selected SSA (Out of 7)', 'Split']"
    ]
    at.sidebar.radio[0].set_value("About").run()
    assert not at.exception
    assert at.caption[0].value.startswith("No class-balance chart: MHIST_ROOT: ")


def test_the_drawn_image_follows_the_chosen_class_and_partition(app: AppTest, small_copy: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Changing the class kept showing the image drawn for the class before; a class a partition
    lacks showed nothing at all."""
    lines = (small_copy / "annotations.csv").read_text().splitlines()
    lines = [line.replace(",SSA,", ",HP,") if line.endswith(",test") else line for line in lines]
    (small_copy / "annotations.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MHIST_ROOT", str(small_copy))
    at = AppTest.from_file(APP, default_timeout=60).run()
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    next(s for s in at.selectbox if s.label == "Partition").set_value("train").run()
    for chosen in ("HP", "SSA", "HP"):
        next(s for s in at.selectbox if s.label == "Class").set_value(chosen).run()
        assert f"truth {chosen}:" in markdown(at)
    next(s for s in at.selectbox if s.label == "Partition").set_value("test").run()
    next(s for s in at.selectbox if s.label == "Class").set_value("SSA").run()
    assert not at.exception
    assert [i.value for i in at.info] == [f"{small_copy / 'annotations.csv'} has no SSA image in partition test"]
    assert "truth" not in markdown(at)


def test_endpoints_can_come_from_streamlit_secrets(service: str, small_root: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("EC2_SERVICE_URL", raising=False)
    monkeypatch.delenv("MHIST_ROOT", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["EC2_SERVICE_URL"] = service
    at.secrets["MHIST_ROOT"] = str(small_root)
    at.secrets["LAMBDA_API_URL"] = f"http://127.0.0.1:{free_port()}/prod/predict"
    at.run()
    assert service in at.sidebar.caption[0].value
    assert "Lambda API: http://127.0.0.1:" in at.sidebar.caption[0].value
    next(r for r in at.main.radio if r.label == "Images").set_value("Random image from a labelled folder").run()
    assert "EC2 service: **" in markdown(at)


@pytest.mark.parametrize(("probability", "threshold"), [(0.73, 0.41), (0.02, 0.98), (1.0, 0.0)])
def test_probability_bar_shows_its_ticks_label_and_threshold_inside_the_figure(
    probability: float, threshold: float, recwarn: pytest.WarningsRecorder
) -> None:
    """The bar was once drawn 0.9 in tall: its tick values, axis label and threshold note fell
    outside the image, and matplotlib only warned that the tight layout was not applied."""
    fig = probability_bar(probability, threshold)
    canvas = FigureCanvasAgg(fig)  # what a PNG of it, as st.pyplot sends, is drawn with
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    texts = [t for t in ax.get_xticklabels() if t.get_text()] + [ax.xaxis.label, *ax.texts]
    assert {t.get_text().strip() for t in ax.texts} == {f"threshold {threshold:.2f}"}
    for text in texts:  # inside the figure: adding the text's box does not grow the figure's
        grown = Bbox.union([fig.bbox, text.get_window_extent(renderer)])
        assert grown.bounds == pytest.approx(fig.bbox.bounds, abs=1), text.get_text()
    assert not [w for w in recwarn if "layout" in str(w.message).lower()]
    assert [p.get_width() for p in ax.patches if p.get_height() == 0.5] == [probability]


def test_client_turns_api_refusals_into_messages(service: str) -> None:
    backend = client.Backend("EC2 service", service)
    answer = client.predict(backend, b"not an image")
    assert not answer.ok
    assert answer.error.startswith("400 invalid_image: the body is not a readable image")
    assert client.percentile([10, 20, 30, 40], 0.5) == 25
    assert client.outcome("SSA", "HP") == "false negative"
    assert [b.name for b in client.backends_from_env({"LAMBDA_API_URL": "https://x/prod/predict"})] == [
        "EC2 service", "Lambda API"]  # fmt: skip
    assert client.backends_from_env({"LAMBDA_API_URL": "https://x/prod/predict"})[1].url == "https://x/prod"


def test_client_names_a_url_without_scheme_and_a_service_that_is_not_ours() -> None:
    """'127.0.0.1:8080' read 'cannot reach 127.0.0.1:8080 (InvalidSchema)'; another service's JSON
    was a KeyError on the page."""
    (backend,) = client.backends_from_env({"EC2_SERVICE_URL": "127.0.0.1:8080"})
    assert client.predict(backend, b"png").error == "EC2_SERVICE_URL '127.0.0.1:8080' is not an http:// or https:// URL"

    class Json(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler's API
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
def test_upload_in_a_real_browser(service: str, small_root: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "EC2_SERVICE_URL": service, "MHIST_ROOT": str(small_root)}
    command = [sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]  # fmt: skip
    image = sorted((small_root / "images").iterdir())[0]
    photograph = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photograph)
    with (
        process(command, f"http://127.0.0.1:{port}/_stcore/health", env, tmp_path / "streamlit.log"),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        page.locator('input[type="file"]').set_input_files(str(image))
        page.get_by_text("EC2 service: ").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # let the chart render before the picture
        text = page.inner_text("body")
        shot = tmp_path / "frontend.png"
        page.screenshot(path=str(shot), full_page=True)
        page.locator('input[type="file"]').set_input_files([str(image), str(photograph)])
        page.get_by_text("Out of distribution: ").wait_for(timeout=60_000)  # the photograph's answer, warned about
        warned = page.inner_text("body")
        browser.close()
    assert "threshold" in text
    assert image.name in text
    assert "Out of distribution" not in text  # the test image is histology like the training images
    assert warned.count("Out of distribution: ") == 1
    assert shot.stat().st_size > 10_000
    if os.environ.get("SAVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["SAVE_SCREENSHOT"])
