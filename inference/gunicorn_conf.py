"""gunicorn settings for the EC2 service: ``gunicorn -c inference/gunicorn_conf.py``.

Workers x threads fit the cores: onnxruntime uses the cores inside one request, so few workers
with a couple of threads each, and each worker's session gets cores / workers intra-op threads.
The model loads in each worker after the fork (``preload_app = False``): onnxruntime's thread
pools do not survive a fork. Nor does its import: this file, read by the arbiter, imports only
``inference.cores``, or every worker would hang or abort as it exits.
"""

import os

from pydantic import Field, PositiveInt

from inference.cores import DEFAULT_THREADS, default_workers  # no onnxruntime in the arbiter
from inference.environment import ServingSettings, SettingError


class GunicornSettings(ServingSettings):
    """The process layout besides the serving settings; ``None``: from the cores and request batching."""

    web_concurrency: PositiveInt | None = Field(None, alias="WEB_CONCURRENCY")
    gunicorn_threads: PositiveInt | None = Field(None, alias="GUNICORN_THREADS")
    gunicorn_timeout: PositiveInt = Field(60, alias="GUNICORN_TIMEOUT")  # a cold model load must fit inside


try:  # every setting is checked here, before a fork: a worker that fails to boot shows a traceback
    settings = GunicornSettings.read(os.environ)
except SettingError as error:
    raise SystemExit(str(error)) from None
workers = settings.web_concurrency or default_workers()
# with request batching, a thread per image of a gathered run: requests wait together, not in the socket queue
threads = settings.gunicorn_threads or (settings.batch_max_images if settings.batch_wait_ms > 0 else DEFAULT_THREADS)
timeout = settings.gunicorn_timeout
os.environ.setdefault("INFERENCE_WORKERS", str(workers))  # the predictor divides the cores by this

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8080')}")
wsgi_app = "inference.server:create_app()"
preload_app = False
graceful_timeout = 30
keepalive = 5
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None  # the app logs each request as a JSON line, with its id and model (inference/server.py)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
control_socket_disable = True  # gunicorn 26 opens ~/.gunicorn/gunicorn.ctl: servers sharing a HOME clobber it
