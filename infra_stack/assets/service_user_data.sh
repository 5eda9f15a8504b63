# Inference service bootstrap (Amazon Linux 2023), run by cloud-init on every new instance of the Auto
# Scaling group; a changed script or image is a new launch template version, which the group rolls
# out instance by instance. Placeholders __X__ are filled in by infra_stack/serving.py. CDK's trap
# above sends this script's exit status to CloudFormation: the deploy fails and rolls back unless
# the service answers here.
set -euo pipefail
dnf install -y aws-cfn-bootstrap
dnf install -y docker amazon-efs-utils
mkdir -p /usr/local/lib/docker/cli-plugins /mnt/efs/models
curl -fsSL --retry 5 -o /usr/local/lib/docker/cli-plugins/docker-compose \
  https://github.com/docker/compose/releases/download/v2.29.7/docker-compose-linux-x86_64
chmod 755 /usr/local/lib/docker/cli-plugins/docker-compose
# Read-only, over TLS, as this instance's role (the file-system policy refuses anything else); the
# mount targets' DNS names can take a minute to resolve after they are created.
echo "__FS_ID__:/ /mnt/efs/models efs _netdev,tls,iam,ro,accesspoint=__AP_ID__ 0 0" >> /etc/fstab
if ! wait_until 300 mount /mnt/efs/models; then
  echo "service: the model store __FS_ID__ did not mount within 5 minutes" >&2
  exit 1
fi
token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
region=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region)
cat > /etc/docker/daemon.json <<JSON
{"log-driver": "awslogs", "log-opts": {"awslogs-group": "__LOG_GROUP__", "awslogs-region": "${region}"}}
JSON
systemctl enable --now docker
image="__IMAGE__"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "${image%%/*}"
cd /opt/inference
SERVICE_IMAGE="$image" MODEL_NAME="__MODEL_NAME__" MODEL_VARIANT="__MODEL_VARIANT__" PROXY_BIND="0.0.0.0:__PORT__" \
  MODEL_HOST_PATH=/mnt/efs/models docker compose up -d --no-build
# Serving means /ready answers. A stack that has never had a model published (the first deploy) can
# only answer /health; the load balancer sends it traffic once /ready answers too.
unpublished() { ! compgen -G "/mnt/efs/models/__MODEL_NAME__/model*.onnx" >/dev/null; }
serving() { answers "http://127.0.0.1:__PORT__/ready" || { unpublished && answers "http://127.0.0.1:__PORT__/health"; }; }
if ! wait_until 600 serving; then
  echo "service: no answer on /ready within 10 minutes; the end of its log:" >&2
  docker compose logs --tail 50 >&2
  exit 1
fi
unpublished && echo "service: no model __MODEL_NAME__ is published yet; /ready answers once one is" || true
echo "service: answering on port __PORT__"
