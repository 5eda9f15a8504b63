"""``MhistStack``: wires the constructs and the grants between them; each construct takes its own section
of the settings (``infra_stack/settings.py``)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_stack.buckets import access_log_bucket
from infra_stack.load_balancer import LoadBalancer
from infra_stack.monitoring import Monitoring
from infra_stack.nag import LAMBDA_IN_VPC, acknowledger, checkov_skip, managed
from infra_stack.network import Network
from infra_stack.serving import SERVING_PREFIX, Ec2Service, EfsSync, LambdaApi
from infra_stack.settings import (
    RETENTION,
    AccessSettings,
    AlarmSettings,
    LambdaSettings,
    NetworkSettings,
    ServedModelSettings,
    ServiceSettings,
    StackSettings,
    TrackingSettings,
)
from infra_stack.storage import ModelStore
from infra_stack.tracking import Tracking


class MhistStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        s = settings
        retention = getattr(logs.RetentionDays, RETENTION[s.log_retention_days])
        network = Network(self, "Network", settings=s.section(NetworkSettings), log_retention=retention)
        vpc, private = network.vpc, network.private
        access_logs = access_log_bucket(self, "AccessLogs")
        entry = LoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            subnets=network.public,
            settings=s.section(AccessSettings),
            mlflow_port=s.mlflow_port,
            access_logs=access_logs,
        )
        tracking = Tracking(
            self,
            "Tracking",
            vpc=vpc,
            subnets=private,
            settings=s.section(TrackingSettings),
            access_logs=access_logs,
            listener=entry.mlflow_listener,
            host_names=entry.host_names if entry.mlflow_listener else [],
            log_retention=retention,
        )
        store = ModelStore(self, "Models", vpc=vpc, subnets=private)
        served = s.section(ServedModelSettings)
        api = LambdaApi(
            self,
            "LambdaApi",
            vpc=vpc,
            subnets=private,
            access_point=store.access_point,
            settings=s.section(LambdaSettings),
            served=served,
            allowed_cidrs=s.allowed_cidrs,
            log_retention=retention,
        )
        service = Ec2Service(
            self,
            "Service",
            vpc=vpc,
            subnets=private,
            file_system=store.file_system,
            access_point=store.access_point,
            listener=entry.service_listener,
            settings=s.section(ServiceSettings),
            served=served,
            log_retention=retention,
        )
        sync = EfsSync(
            self,
            "EfsSync",
            vpc=vpc,
            subnets=private,
            access_point=store.access_point,
            bucket=tracking.bucket,
            log_retention=retention,
        )
        store.only_writer(sync.function.role)
        Monitoring(
            self,
            "Monitoring",
            settings=s.section(AlarmSettings),
            function=api.function,
            api=api.api,
            mlflow=tracking.server,
            service=service.group,
            load_balancer=entry.alb,
            target_group=service.target_group,
            sync=sync.function,
            dead_letters=sync.dead_letters,
            database=tracking.database,
        )
        self._acknowledge_cdk_singletons()
        checkov_skip(access_logs, "CKV_AWS_18", "The access-log bucket itself: logging it into itself would loop.")
        checkov_skip(access_logs, "CKV_AWS_21", "Logs are written once and expire; versions would only add cost.")
        self.network, self.entry, self.tracking, self.store, self.api, self.service, self.sync = (
            network,
            entry,
            tracking,
            store,
            api,
            service,
            sync,
        )

        base = f"{entry.scheme}://{entry.host_names[0]}"
        CfnOutput(self, "ApiUrl", value=api.api.url_for_path("/predict"), description="POST images here (x-api-key)")
        CfnOutput(
            self,
            "ApiKeyId",
            value=api.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(self, "ServiceUrl", value=f"{base}/predict", description="the EC2 service, from allowed_cidrs")
        if entry.mlflow_listener:
            CfnOutput(self, "MlflowUrl", value=f"{base}:{s.mlflow_port}", description="MLflow, from allowed_cidrs")
        CfnOutput(
            self,
            "MlflowPortForward",
            value=f"aws ssm start-session --target {tracking.server.instance_id} --document-name "
            f"AWS-StartPortForwardingSession --parameters portNumber={s.mlflow_port},localPortNumber=5000",
            description="MLflow on http://127.0.0.1:5000 through Session Manager, from anywhere",
        )
        CfnOutput(
            self,
            "MlflowCredentials",
            value=tracking.admin_secret.secret_arn,
            description="aws secretsmanager get-secret-value --secret-id <arn> (MLFLOW_TRACKING_USERNAME/PASSWORD)",
        )
        CfnOutput(
            self,
            "ArtifactBucket",
            value=tracking.bucket.bucket_name,
            description=f"publish models to s3://<bucket>/{SERVING_PREFIX}<model>/",
        )

    def _acknowledge_cdk_singletons(self) -> None:
        """The functions CDK adds itself: bucket notifications, the VPC's default-group lockdown."""
        singletons = {
            "BucketNotificationsHandler050a0587b7544547bf325f094a3db834": "the bucket notifications",
            "Custom::VpcRestrictDefaultSGCustomResourceProvider": "the default security group's lockdown",
        }
        for child_id, what in singletons.items():
            handler = self.node.try_find_child(child_id)
            if handler is None:
                continue
            acknowledger(handler)(
                id="AwsSolutions-IAM4",
                findings=managed(LAMBDA_IN_VPC[0]),
                reason=f"CDK's custom resource for {what} uses AWSLambdaBasicExecutionRole.",
            )
            function = handler.node.try_find_child("Resource") or handler.node.find_child("Handler")
            for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):  # concurrency, dead letters, VPC
                checkov_skip(function, check, f"CDK's handler for {what}: CloudFormation calls it at deploy only.")
