"""gunicorn settings for the EC2 service: ``gunicorn -c inference/gunicorn_conf.py``.

Workers x threads fit the cores: onnxruntime uses the cores inside one request, so few workers
with a couple of threads each, and each worker's session gets cores / workers intra-op threads.
The model loads in each worker after the fork (``preload_app = False``): onnxruntime's thread
pools do not survive a fork. Nor does its import: this file, read by the arbiter, imports only
``inference.cores``, or every worker would hang or abort as it exits.
"""

import os

from inference.cores import DEFAULT_THREADS, default_workers  # no onnxruntime in the arbiter
from inference.environment import SettingError, serving_settings, whole_number

try:  # every setting is checked here, before a fork: a worker that fails to boot shows a traceback
    settings = serving_settings(os.environ)
    workers = whole_number(os.environ, "WEB_CONCURRENCY", default_workers())
    # with request batching, a thread per image of a gathered run: requests wait together, not in the socket queue
    gathers = settings["batch_wait_ms"] > 0
    threads = whole_number(os.environ, "GUNICORN_THREADS", settings["batch_max_images"] if gathers else DEFAULT_THREADS)
    timeout = whole_number(os.environ, "GUNICORN_TIMEOUT", 60)  # a cold model load must fit inside
    os.environ.setdefault("INFERENCE_WORKERS", str(workers))  # the predictor divides the cores by this
    serving_settings(os.environ)
except SettingError as error:
    raise SystemExit(str(error)) from None

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
