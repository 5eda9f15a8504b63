"""nginx in front of gunicorn: ``python -m inference.proxy`` writes its configuration from the serving
settings and runs it (the service image's second process; docker-compose.yml starts both).

gunicorn's sync and threaded workers must sit behind a buffering proxy (its documentation says so):
a few idle or slow sockets hold every worker thread. nginx reads each request whole, within time
limits, before it gives it to gunicorn, and refuses what is too large by the same limits as the app,
answering with the API's error JSON. A request that stops arriving gets no answer: nginx closes its
connection after ``PROXY_TIMEOUT_S``, as it does every timed-out one.

Settings (environment): ``PROXY_BIND`` (0.0.0.0:8080), ``UPSTREAM`` (gunicorn, 127.0.0.1:8081),
``PROXY_TIMEOUT_S`` (10), ``NGINX`` (the binary), ``PROXY_PREFIX`` (its working folder), and the
request limits of ``inference.environment``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import Field, PositiveInt

from inference.environment import ServingSettings, SettingError
from inference.limits import Limits

TIMEOUT_S = 10  # a client's headers, and each read of its body, must arrive within this (PROXY_TIMEOUT_S)


class ProxySettings(ServingSettings):
    """nginx takes the service's own limits, and its timeout for a slow client."""

    proxy_timeout_s: PositiveInt = Field(TIMEOUT_S, alias="PROXY_TIMEOUT_S")


# (status nginx answers, status the client gets, code, message): nginx's own refusals, as the API's JSON
REFUSALS = [
    (400, 400, "bad_request", "the request is not valid HTTP"),
    (413, 413, "payload_too_large", "the body is larger than this route takes"),
    (494, 431, "headers_too_large", "the request headers are too large"),
    (502, 503, "service_unavailable", "the service is starting or restarting; try again"),
    (504, 504, "service_timeout", "the service did not answer in time"),
]


def render(
    *, listen: str, upstream: str, limits: Limits, prefix: Path, timeout_s: int = TIMEOUT_S, user: str | None = None
) -> str:
    """nginx.conf for one upstream, every path under ``prefix``; ``user`` for its workers when run as root."""
    # error pages by URI, not by name: nginx cannot jump to a named location from a request it could not parse
    errors = "\n".join(f"        error_page {status} ={sent} /_refused/{status};" for status, sent, _, _ in REFUSALS)
    named = "\n".join(
        f"        location = /_refused/{status} {{\n"
        f"            internal;\n"
        f"            default_type application/json;\n"
        f"            return {sent} '{json.dumps({'error': {'code': code, 'message': message}})}';\n"
        f"        }}"
        for status, sent, code, message in REFUSALS
    )
    proxied = (
        'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";\n'
        "            proxy_set_header Host $host; proxy_set_header X-Request-Id $request_id;\n"
        "            proxy_set_header X-Real-IP $remote_addr;\n"
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "            proxy_intercept_errors off;"
    )
    return f"""# written by inference/proxy.py at start: edit that, not this
{f"user {user};" if user else ""}
worker_processes auto;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;  # gunicorn's app logs every request, with nginx's request id
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    client_header_timeout {timeout_s}s; client_body_timeout {timeout_s}s; send_timeout {timeout_s}s;
    keepalive_timeout 15s; keepalive_requests 1000;
    client_header_buffer_size 4k; large_client_header_buffers 4 16k;
    client_body_buffer_size 1m; client_max_body_size {limits.max_request_bytes};
    proxy_request_buffering on; proxy_buffering on;
    proxy_connect_timeout 5s; proxy_read_timeout 120s;
    server_tokens off;
    # idle connections to gunicorn close before gunicorn closes them (its keepalive is 5 s): a POST sent on
    # one gunicorn had just closed would fail
    upstream app {{ server {upstream}; keepalive 32; keepalive_timeout 4s; }}
    server {{
        listen {listen} reuseport;
{errors}
        location ~ ^/(predict|explain)/?$ {{  # the routes that take one image
            client_max_body_size {limits.body_limit(batch=False)};
            {proxied}
        }}
        location / {{
            {proxied}
        }}
{named}
    }}
}}
"""


def main() -> None:
    try:
        settings = ProxySettings.read(os.environ)
    except SettingError as error:
        raise SystemExit(f"error: {error}") from None
    limits, timeout_s = settings.limits, settings.proxy_timeout_s
    prefix = Path(os.environ.get("PROXY_PREFIX") or tempfile.mkdtemp(prefix="mhist-nginx-"))
    user = "nobody nogroup" if os.geteuid() == 0 else None  # nginx's workers drop root; its folders are theirs
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(prefix / folder, "nobody", "nogroup")
    config = prefix / "nginx.conf"
    listen, upstream = os.environ.get("PROXY_BIND", "0.0.0.0:8080"), os.environ.get("UPSTREAM", "127.0.0.1:8081")
    config.write_text(
        render(listen=listen, upstream=upstream, limits=limits, prefix=prefix, timeout_s=timeout_s, user=user)
    )
    nginx = os.environ.get("NGINX", "nginx")
    sys.stdout.flush()
    os.execvp(nginx, [nginx, "-e", "stderr", "-p", str(prefix), "-c", str(config), "-g", "daemon off;"])


if __name__ == "__main__":
    main()
