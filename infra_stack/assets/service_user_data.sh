# Inference service bootstrap (Amazon Linux 2023). Placeholders __X__ are filled in by infra_stack/serving.py.
set -euo pipefail
dnf install -y docker amazon-efs-utils
mkdir -p /usr/local/lib/docker/cli-plugins /mnt/efs/models
curl -fsSL -o /usr/local/lib/docker/cli-plugins/docker-compose \
  https://github.com/docker/compose/releases/download/v2.29.7/docker-compose-linux-x86_64
chmod 755 /usr/local/lib/docker/cli-plugins/docker-compose
echo "__FS_ID__:/ /mnt/efs/models efs _netdev,tls,iam,accesspoint=__AP_ID__ 0 0" >> /etc/fstab
mount /mnt/efs/models
token=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
region=$(curl -s -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region)
cat > /etc/docker/daemon.json <<JSON
{"log-driver": "awslogs", "log-opts": {"awslogs-group": "__LOG_GROUP__", "awslogs-region": "${region}"}}
JSON
systemctl enable --now docker
image="__IMAGE__"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "${image%%/*}"
cd /opt/inference
SERVICE_IMAGE="$image" MODEL_NAME="__MODEL_NAME__" MODEL_VARIANT="__MODEL_VARIANT__" PORT="__PORT__" \
  MODEL_HOST_PATH=/mnt/efs/models docker compose up -d --no-build
