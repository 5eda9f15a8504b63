# MLflow server bootstrap (Amazon Linux 2023), run by cloud-init on a new instance (a changed script
# replaces the instance). Placeholders __X__ are filled in by infra_stack/tracking.py. CDK's trap above
# sends this script's exit status to CloudFormation: the deploy fails unless MLflow answers here.
# No secret is in this script: mlflow_config.sh reads them from Secrets Manager.
set -euo pipefail
dnf install -y aws-cfn-bootstrap
dnf install -y python3.11 python3.11-pip jq amazon-cloudwatch-agent
python3.11 -m venv /opt/mlflow/venv
/opt/mlflow/venv/bin/pip install --no-cache-dir -r /opt/mlflow/requirements.txt
curl -fsS --retry 5 -o /opt/mlflow/rds-ca.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
chmod 755 /opt/mlflow/mlflow_server.sh
useradd --system --home /opt/mlflow mlflow || true
install -d -m 755 -o mlflow /var/log/mlflow
DB_SECRET_ARN="__DB_SECRET_ARN__" ADMIN_SECRET_ARN="__ADMIN_SECRET_ARN__" DB_HOST="__DB_HOST__" DB_PORT=5432 \
  CA_BUNDLE=/opt/mlflow/rds-ca.pem MLFLOW_ETC=/etc/mlflow MLFLOW_ARTIFACTS_DESTINATION="__ARTIFACTS__" \
  MLFLOW_HOST=0.0.0.0 MLFLOW_PORT="__PORT__" MLFLOW_ALLOWED_HOSTS="__ALLOWED_HOSTS__" MLFLOW_BIN=/opt/mlflow/venv/bin/mlflow \
  bash /opt/mlflow/mlflow_config.sh
chown -R mlflow /etc/mlflow
cat > /etc/systemd/system/mlflow.service <<UNIT
[Unit]
Description=MLflow tracking server (PostgreSQL + S3, basic auth)
After=network-online.target
Wants=network-online.target

[Service]
User=mlflow
EnvironmentFile=/etc/mlflow/mlflow.env
ExecStart=/opt/mlflow/mlflow_server.sh
Restart=always
RestartSec=5
StandardOutput=append:/var/log/mlflow/server.log
StandardError=append:/var/log/mlflow/server.log

[Install]
WantedBy=multi-user.target
UNIT
cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<CW
{"logs": {"logs_collected": {"files": {"collect_list": [
  {"file_path": "/var/log/mlflow/server.log", "log_group_name": "__LOG_GROUP__", "log_stream_name": "{instance_id}"}
]}}}}
CW
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json
systemctl daemon-reload
systemctl enable --now mlflow.service
if ! wait_until 600 answers "http://127.0.0.1:__PORT__/health"; then
  echo "mlflow: no answer on /health within 10 minutes; the end of its log:" >&2
  tail -n 50 /var/log/mlflow/server.log >&2
  exit 1
fi
echo "mlflow: answering on port __PORT__"
