"""Real servers on 127.0.0.1 for integration tests: PostgreSQL, an S3-compatible endpoint, MLflow."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psycopg2


class JsonHandler(BaseHTTPRequestHandler):
    """A stand-in server's request handler: JSON answers, no access log."""

    def answer(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or where Debian's postgresql package puts it (not on PATH)."""
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    return str(found) if found else None


def _as_postgres(command: list[str]) -> list[str]:
    """initdb refuses to run as root: CI is root, so drop to the postgres user there."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class Postgres:
    """A running cluster: ``uri`` has no password (libpq reads it from ``pgpass``, or PGPASSWORD)."""

    uri: str
    host: str
    port: int
    password: str
    ca: Path  # the authority that signed the server's certificate

    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(self.uri, password=self.password, sslmode="verify-full", sslrootcert=str(self.ca))


@contextmanager
def postgres_cluster(password: str = "pg-password-under-test") -> Iterator[Postgres]:
    """A throwaway cluster on a free loopback port as RDS runs one (``rds.force_ssl``): TLS only, with a
    password, its certificate signed by a test authority; database ``mlflow``, user ``mlflow``."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="mhist-pg-"))  # pytest's tmp root is closed to other users
    data, port = base / "pgdata", free_port()
    tls = certificate_authority(base / "tls", "127.0.0.1")
    (base / "pwfile").write_text(password)
    if os.geteuid() == 0:
        for path in (base, base / "pwfile", tls.key):
            shutil.chown(path, "postgres")
    tls.key.chmod(0o600)  # PostgreSQL refuses a key others can read
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "mlflow", "--auth=scram-sha-256", f"--pwfile={base / 'pwfile'}"]),
        check=True,
        capture_output=True,
    )
    (data / "pg_hba.conf").write_text("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c ssl=on "
        f"-c ssl_cert_file={tls.certificate} -c ssl_key_file={tls.key}"
    )
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        env = {**os.environ, "PGPASSWORD": password, "PGSSLMODE": "require"}
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"], check=True, env=env)
        yield Postgres(f"postgresql://mlflow@127.0.0.1:{port}/mlflow", "127.0.0.1", port, password, tls.ca)
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Tls:
    ca: Path
    certificate: Path
    key: Path


def certificate_authority(folder: Path, address: str, name: str = "mhist test CA") -> Tls:
    """A test certificate authority called ``name`` and a server certificate it signed for ``address``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = issue(name, ca_key, ca_name, ca_key, ca=True)
    server = issue(address, server_key, ca_name, ca_key, ca=False)
    tls = Tls(folder / "ca.pem", folder / "server.crt", folder / "server.key")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tls


@contextmanager
def process(command: list[str], url: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as handle:
        proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(url, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # whatever it left behind (its own session)
                os.killpg(proc.pid, signal.SIGKILL)


S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 in server mode on a free loopback port (AWS itself is the edge that cannot exist here)."""
    import sys

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process(command, url, {**os.environ, **S3_KEYS}, log):
        yield url


def gunicorn_launch(store: Path, port: int, **env: str) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the real serving stack (``inference/gunicorn_conf.py``) on a loopback port."""
    import sys

    repo = Path(__file__).resolve().parent.parent
    cache = tempfile.mkdtemp(prefix="mhist-last-good-")  # each server its own: none falls back to another's model
    environment = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "BIND": f"127.0.0.1:{port}",
        "MODEL_ROOT": str(store),
        "MODEL_CACHE": cache,
        **env,
    }
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        str(repo / "inference" / "gunicorn_conf.py"),
    ], environment


def gunicorn(store: Path, log: Path, **env: str) -> tuple[contextmanager, str]:
    """The serving stack on a free loopback port, two workers unless told: (context, base URL)."""
    port = free_port()
    command, environment = gunicorn_launch(store, port, **{"WEB_CONCURRENCY": "2", **env})
    return process(command, f"http://127.0.0.1:{port}/health", environment, log), f"http://127.0.0.1:{port}"


def nginx_proxy(upstream_url: str, log: Path, **env: str) -> tuple[contextmanager, str]:
    """``python -m inference.proxy`` (Debian's nginx) in front of ``upstream_url``: (context, base URL)."""
    import sys

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed (.ci/run installs Debian's nginx-light)")
    port = free_port()
    prefix = tempfile.mkdtemp(prefix="mhist-nginx-")
    environment = {
        **os.environ,
        "PROXY_BIND": f"127.0.0.1:{port}",
        "UPSTREAM": upstream_url.removeprefix("http://"),
        "PROXY_PREFIX": prefix,
        "NGINX": nginx,
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    return process([sys.executable, "-m", "inference.proxy"], f"{url}/health", environment, log), url
