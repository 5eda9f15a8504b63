# MLflow server bootstrap (Amazon Linux 2023). Placeholders __X__ are filled in by infra_stack/tracking.py.
set -euo pipefail
dnf install -y python3.11 python3.11-pip jq amazon-cloudwatch-agent
python3.11 -m venv /opt/mlflow/venv
/opt/mlflow/venv/bin/pip install --no-cache-dir -r /opt/mlflow/requirements.txt
chmod 755 /opt/mlflow/mlflow_server.sh
useradd --system --home /opt/mlflow mlflow || true
secret=$(aws secretsmanager get-secret-value --secret-id "__SECRET_ARN__" --query SecretString --output text)
password=$(printf '%s' "$secret" | jq -r .password | python3.11 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read().strip(), safe=""))')
token=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
public_host=$(curl -s -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/public-hostname)
umask 077
cat > /etc/mlflow.env <<ENV
MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:${password}@__DB_HOST__:5432/mlflow
MLFLOW_ARTIFACTS_DESTINATION=s3://__BUCKET__/mlflow
MLFLOW_HOST=0.0.0.0
MLFLOW_PORT=__PORT__
MLFLOW_WORKERS=2
MLFLOW_ALLOWED_HOSTS=${public_host}:__PORT__,localhost:__PORT__,127.0.0.1:__PORT__
MLFLOW_BIN=/opt/mlflow/venv/bin/mlflow
ENV
chown mlflow /etc/mlflow.env
cat > /etc/systemd/system/mlflow.service <<UNIT
[Unit]
Description=MLflow tracking server (PostgreSQL + S3)
After=network-online.target
Wants=network-online.target

[Service]
User=mlflow
EnvironmentFile=/etc/mlflow.env
ExecStart=/opt/mlflow/mlflow_server.sh
Restart=always
RestartSec=5
StandardOutput=append:/var/log/mlflow/server.log
StandardError=append:/var/log/mlflow/server.log

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p /var/log/mlflow && chown mlflow /var/log/mlflow
cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<CW
{"logs": {"logs_collected": {"files": {"collect_list": [
  {"file_path": "/var/log/mlflow/server.log", "log_group_name": "__LOG_GROUP__", "log_stream_name": "{instance_id}"}
]}}}}
CW
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json
systemctl daemon-reload
systemctl enable --now mlflow.service
