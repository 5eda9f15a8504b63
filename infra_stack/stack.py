"""``MhistStack``: wires the constructs and the grants between them; settings come in typed."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra_stack.monitoring import Monitoring
from infra_stack.nag import LAMBDA_IN_VPC, acknowledger, managed
from infra_stack.network import Network
from infra_stack.serving import SERVING_PREFIX, Ec2Service, EfsSync, LambdaApi
from infra_stack.settings import StackSettings
from infra_stack.storage import ModelStore
from infra_stack.tracking import Tracking


class MhistStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(scope, construct_id, **kwargs)
        s = settings
        retention = s.log_retention
        network = Network(
            self,
            "Network",
            max_azs=s.max_azs,
            nat_gateways=s.nat_gateways,
            interface_endpoints=s.interface_endpoints,
            log_retention=retention,
        )
        vpc = network.vpc
        tracking = Tracking(
            self,
            "Tracking",
            vpc=vpc,
            public=network.public,
            private=network.private,
            allowed_cidrs=s.allowed_cidrs,
            port=s.mlflow_port,
            instance_type=s.mlflow_instance_type,
            db_instance_type=s.db_instance_type,
            db_storage_gb=s.db_allocated_storage_gb,
            db_backup_days=s.db_backup_days,
            db_deletion_protection=s.db_deletion_protection,
            noncurrent_days=s.artifact_noncurrent_days,
            log_retention=retention,
        )
        store = ModelStore(self, "Models", vpc=vpc, subnets=network.private)
        api = LambdaApi(
            self,
            "LambdaApi",
            vpc=vpc,
            subnets=network.private,
            access_point=store.access_point,
            model_name=s.model_name,
            model_variant=s.model_variant,
            memory_mb=s.lambda_memory_mb,
            timeout_s=s.lambda_timeout_s,
            reserved_concurrency=s.lambda_reserved_concurrency,
            rate_limit=s.api_rate_limit,
            burst_limit=s.api_burst_limit,
            quota_per_day=s.api_quota_per_day,
            log_retention=retention,
        )
        service = Ec2Service(
            self,
            "Service",
            vpc=vpc,
            subnets=network.public,
            file_system=store.file_system,
            access_point=store.access_point,
            allowed_cidrs=s.allowed_cidrs,
            port=s.service_port,
            instance_type=s.service_instance_type,
            model_name=s.model_name,
            model_variant=s.model_variant,
            log_retention=retention,
        )
        sync = EfsSync(
            self,
            "EfsSync",
            vpc=vpc,
            subnets=network.private,
            access_point=store.access_point,
            bucket=tracking.bucket,
            log_retention=retention,
        )
        Monitoring(
            self,
            "Monitoring",
            email=s.alarm_email,
            function=api.function,
            api=api.api,
            instances={"Mlflow": tracking.server, "Service": service.instance},
            database=tracking.database,
            lambda_p99_ms=s.alarm_lambda_p99_ms,
            api_latency_ms=s.alarm_api_latency_ms,
            cpu_percent=s.alarm_cpu_percent,
            db_free_storage_gb=s.alarm_db_free_storage_gb,
            budget_usd=s.budget_monthly_usd,
        )
        # CDK's own singleton that configures the bucket notification for the sync function.
        handler = self.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        if handler is not None:
            acknowledger(handler)(
                id="AwsSolutions-IAM4",
                findings=managed(LAMBDA_IN_VPC[0]),
                reason="CDK's bucket-notifications custom resource uses AWSLambdaBasicExecutionRole.",
            )
        self.network, self.tracking, self.store, self.api, self.service, self.sync = (
            network,
            tracking,
            store,
            api,
            service,
            sync,
        )

        mlflow_url = f"http://{tracking.server.instance_public_dns_name}:{s.mlflow_port}"
        CfnOutput(self, "ApiUrl", value=api.api.url_for_path("/predict"), description="POST images here (x-api-key)")
        CfnOutput(
            self,
            "ApiKeyId",
            value=api.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(
            self, "ServiceUrl", value=f"http://{service.instance.instance_public_dns_name}:{s.service_port}/predict"
        )
        CfnOutput(self, "MlflowUrl", value=mlflow_url, description="reachable from allowed_cidrs only")
        CfnOutput(
            self,
            "MlflowPortForward",
            value=f"aws ssm start-session --target {tracking.server.instance_id} --document-name "
            f"AWS-StartPortForwardingSession --parameters portNumber={s.mlflow_port},localPortNumber=5000",
            description="or reach MLflow on http://127.0.0.1:5000 through SSM from anywhere",
        )
        CfnOutput(
            self,
            "ArtifactBucket",
            value=tracking.bucket.bucket_name,
            description=f"publish models to s3://<bucket>/{SERVING_PREFIX}<model>/",
        )
