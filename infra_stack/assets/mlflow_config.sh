#!/usr/bin/env bash
# Write the MLflow server's configuration from Secrets Manager into $MLFLOW_ETC (the EC2 instance's
# boot runs it; so do the tests, with a stand-in for the `aws` CLI). Every file is readable by its
# owner only, and no secret is ever put on a command line, which `ps` shows to every user:
#   pgpass          the database password, read by libpq (PGPASSFILE)
#   basic_auth.ini  MLflow's basic-auth app: the admin user, its users' table in the same database
#   mlflow.env      the settings mlflow_server.sh reads (the systemd unit's EnvironmentFile)
#
# Settings (environment), all required:
#   DB_SECRET_ARN, ADMIN_SECRET_ARN   RDS's generated secret; the admin's {"username", "password"}
#   DB_HOST, DB_PORT, CA_BUNDLE       the database, and the certificate authorities that sign its TLS
#   MLFLOW_ETC                        where the three files go
#   MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_HOST, MLFLOW_PORT, MLFLOW_ALLOWED_HOSTS, MLFLOW_BIN
#                                     passed on to the server
set -euo pipefail
for name in DB_SECRET_ARN ADMIN_SECRET_ARN DB_HOST DB_PORT CA_BUNDLE MLFLOW_ETC MLFLOW_ARTIFACTS_DESTINATION \
  MLFLOW_HOST MLFLOW_PORT MLFLOW_ALLOWED_HOSTS MLFLOW_BIN; do
  [ -n "${!name:-}" ] || { echo "error: mlflow_config.sh needs $name" >&2; exit 2; }
done
[ -r "$CA_BUNDLE" ] || { echo "error: CA_BUNDLE $CA_BUNDLE is not a readable file" >&2; exit 2; }
umask 077
mkdir -p "$MLFLOW_ETC"
secret() { aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text; }
# pgpass lines are host:port:database:user:password, with ':' and '\' escaped
secret "$DB_SECRET_ARN" | jq -r --arg host "$DB_HOST" --arg port "$DB_PORT" \
  '"\($host):\($port):*:\(.username):\(.password | gsub("\\\\"; "\\\\") | gsub(":"; "\\:"))"' \
  > "$MLFLOW_ETC/pgpass"
user=$(secret "$DB_SECRET_ARN" | jq -r .username)
store="postgresql+psycopg2://${user}@${DB_HOST}:${DB_PORT}/mlflow?sslmode=verify-full&sslrootcert=${CA_BUNDLE}"
# The basic-auth app keeps its users in the same database, in its own tables and migration history.
secret "$ADMIN_SECRET_ARN" | jq -r --arg store "$store" '[
  "[mlflow]", "default_permission = READ", "database_uri = \($store)",
  "admin_username = \(.username)", "admin_password = \(.password)",
  "authorization_function = mlflow.server.auth:authenticate_request_basic_auth"] | join("\n")' \
  > "$MLFLOW_ETC/basic_auth.ini"
cat > "$MLFLOW_ETC/mlflow.env" <<ENV
MLFLOW_BACKEND_STORE_URI=${store}
PGPASSFILE=${MLFLOW_ETC}/pgpass
MLFLOW_AUTH_CONFIG_PATH=${MLFLOW_ETC}/basic_auth.ini
MLFLOW_FLASK_SERVER_SECRET_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
MLFLOW_ARTIFACTS_DESTINATION=${MLFLOW_ARTIFACTS_DESTINATION}
MLFLOW_HOST=${MLFLOW_HOST}
MLFLOW_PORT=${MLFLOW_PORT}
MLFLOW_WORKERS=2
MLFLOW_ALLOWED_HOSTS=${MLFLOW_ALLOWED_HOSTS}
MLFLOW_BIN=${MLFLOW_BIN}
ENV
