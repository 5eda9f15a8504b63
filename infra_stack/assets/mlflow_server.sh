#!/usr/bin/env bash
# Start the MLflow tracking server the way the EC2 instance runs it (its systemd unit calls this),
# and the way the integration tests run it on 127.0.0.1:
#   PostgreSQL backend store, S3 artifact destination, artifacts proxied through the server
#   (clients need no S3 credentials; the server's own role or keys reach the bucket), and MLflow's
#   basic-auth app in front of all of it: every request but /health needs a user and password.
#
# Settings (environment; mlflow_config.sh writes them on EC2):
#   MLFLOW_BACKEND_STORE_URI      postgresql+psycopg2://user@host:5432/mlflow?sslmode=verify-full&...
#                                 (required). No password in it: every process listing would show it.
#                                 libpq reads it from PGPASSFILE (or ~/.pgpass).
#   MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/prefix                            (required)
#   MLFLOW_AUTH_CONFIG_PATH       the basic-auth app's .ini: admin user and password, users' database
#                                 (required: this server never runs without authentication)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF key, the same for every worker (required)
#   MLFLOW_HOST (127.0.0.1)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (2)
#   MLFLOW_ALLOWED_HOSTS          host names clients use (MLflow 3.5+ checks the Host header);
#                                 default: localhost, 127.0.0.1 and MLFLOW_HOST, with the port
#   MLFLOW_BIN                    the mlflow executable (default: mlflow on PATH)
#   MLFLOW_S3_ENDPOINT_URL        an S3-compatible endpoint instead of AWS (tests)
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI to postgresql://user@host:5432/db}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION to s3://bucket/prefix}"
: "${MLFLOW_AUTH_CONFIG_PATH:?set MLFLOW_AUTH_CONFIG_PATH to the basic-auth .ini (mlflow_config.sh writes one)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (the CSRF key of the auth app)}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
allowed="${MLFLOW_ALLOWED_HOSTS:-localhost:${port},127.0.0.1:${port},${host}:${port}}"
mlflow="${MLFLOW_BIN:-mlflow}"

case "$MLFLOW_BACKEND_STORE_URI" in
  postgresql://*|postgresql+*://*) ;;
  *) echo "error: MLFLOW_BACKEND_STORE_URI must be a postgresql:// URI" >&2; exit 2 ;;
esac
if [[ "$MLFLOW_BACKEND_STORE_URI" =~ ^[^/]*//[^/@]*:[^/@]*@ ]]; then
  echo "error: MLFLOW_BACKEND_STORE_URI holds a password, which every process listing (ps) would show;" \
    "put it in a PGPASSFILE instead" >&2
  exit 2
fi
case "$MLFLOW_ARTIFACTS_DESTINATION" in
  s3://*) ;;
  *) echo "error: MLFLOW_ARTIFACTS_DESTINATION must be an s3:// URI" >&2; exit 2 ;;
esac
if [ ! -r "$MLFLOW_AUTH_CONFIG_PATH" ]; then
  echo "error: MLFLOW_AUTH_CONFIG_PATH $MLFLOW_AUTH_CONFIG_PATH is not a readable file" >&2
  exit 2
fi

# Bring the schema to the installed MLflow: creates it in a new database, migrates it after an
# MLflow upgrade, does nothing when current. A failure stops here, with MLflow's own message.
echo "mlflow: upgrading the schema of the backend store"
"$mlflow" db upgrade "$MLFLOW_BACKEND_STORE_URI"

# MLflow 3 reports usage (server and UI) to its maintainers unless this says not to: nothing leaves the VPC
export MLFLOW_DISABLE_TELEMETRY=true
exec "$mlflow" server \
  --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "$host" --port "$port" --workers "$workers" \
  --allowed-hosts "$allowed"
