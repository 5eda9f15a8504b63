"""Serving: the container-image Lambda behind API Gateway, the EC2 Flask service run by
docker compose, and the small function that copies published models from S3 onto EFS."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_efs as efs
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from infra_stack.instances import add_script, allowed_networks_only, hardened_instance, session_manager_role
from infra_stack.nag import LAMBDA_IN_VPC, S3_READ, acknowledger, cdk_assets, managed, objects_of

REPO = Path(__file__).parent.parent
MOUNT = "/mnt/models"
SERVING_PREFIX = "serving/"


def _image(dockerfile: str) -> dict:
    """Build context = the repo; .dockerignore lets only requirements/ and inference/ in."""
    return {"directory": str(REPO), "file": dockerfile, "platform": ecr_assets.Platform.LINUX_AMD64}


class LambdaApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        access_point: efs.IAccessPoint,
        model_name: str,
        model_variant: str,
        memory_mb: int,
        timeout_s: int,
        reserved_concurrency: int,
        rate_limit: int,
        burst_limit: int,
        quota_per_day: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "FunctionSg", vpc=vpc, allow_all_outbound=False,
            description="Predict Lambda: no ingress; egress only NFS to the model store (added by the mount)",
        )  # fmt: skip
        self.function = lambda_.DockerImageFunction(
            self,
            "Predict",
            code=lambda_.DockerImageCode.from_image_asset(**_image("inference/Dockerfile.lambda")),
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_s),
            reserved_concurrent_executions=reserved_concurrency,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            filesystem=lambda_.FileSystem.from_efs_access_point(access_point, MOUNT),
            environment={"MODEL_ROOT": MOUNT, "MODEL_NAME": model_name, "MODEL_VARIANT": model_variant},
            log_group=logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY),
            tracing=lambda_.Tracing.ACTIVE,
        )
        access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.api = apigw.RestApi(
            self,
            "Api",
            description="MHIST classifier (Lambda)",
            binary_media_types=["image/*", "application/octet-stream", "multipart/form-data"],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),  # fmt: skip
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        integration = apigw.LambdaIntegration(self.function)
        validator = self.api.add_request_validator(
            "Validator", validate_request_parameters=True, validate_request_body=True
        )
        options = {"api_key_required": True, "request_validator": validator}
        predict = self.api.root.add_resource("predict")
        predict.add_method("POST", integration, **options)
        predict.add_resource("batch").add_method("POST", integration, **options)
        self.api.root.add_resource("health").add_method("GET", integration, **options)
        self.api.root.add_resource("metadata").add_method("GET", integration, **options)
        self.api_key = self.api.add_api_key("Key", description="MHIST API clients")
        plan = self.api.add_usage_plan(
            "Plan",
            throttle=apigw.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            quota=apigw.QuotaSettings(limit=quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_key(self.api_key)
        plan.add_api_stage(stage=self.api.deployment_stage)
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-APIG3",
            reason="Throttling, a usage plan with a daily quota and API "
            "keys limit abuse; attach a WAF web ACL when the API is opened beyond known clients.",
        )
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            acknowledge(
                id=rule,
                reason="Machine clients (the Streamlit app, batch jobs) authenticate with "
                "API keys bound to a usage plan; there are no end users for a Cognito pool.",
            )
        acknowledge(
            id="AwsSolutions-IAM4",
            findings=managed(*LAMBDA_IN_VPC, "service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
            reason="AWSLambdaBasicExecutionRole and "
            "AWSLambdaVPCAccessExecutionRole are what CDK attaches to a Lambda in a VPC (logs, ENIs); "
            "AmazonAPIGatewayPushToCloudWatchLogs is API Gateway's account-level logging role.",
        )
        acknowledge(
            id="AwsSolutions-IAM5",
            findings=["Resource::*"],
            reason="Resource::* only where AWS allows nothing narrower: "
            "X-Ray PutTraceSegments/PutTelemetryRecords for tracing.",
        )


class Ec2Service(Construct):
    """gunicorn/Flask in docker compose on EC2, the EFS model folder mounted read-only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        file_system: efs.FileSystem,
        access_point: efs.IAccessPoint,
        allowed_cidrs: tuple[str, ...],
        port: int,
        instance_type: str,
        model_name: str,
        model_variant: str,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        image = ecr_assets.DockerImageAsset(self, "Image", **_image("inference/Dockerfile.server"))
        compose = s3_assets.Asset(self, "Compose", path=str(REPO / "inference" / "docker-compose.yml"))
        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.security_group = allowed_networks_only(
            self, "Sg", vpc=vpc, what="The inference service", port=port, cidrs=allowed_cidrs
        )
        role = session_manager_role(self, "Role")
        image.repository.grant_pull(role)
        compose.grant_read(role)
        log_group.grant_write(role)
        file_system.grant(role, "elasticfilesystem:ClientMount")
        user_data = ec2.UserData.for_linux()
        user_data.add_s3_download_command(
            bucket=compose.bucket, bucket_key=compose.s3_object_key, local_file="/opt/inference/docker-compose.yml"
        )
        add_script(
            user_data,
            "service_user_data.sh",
            FS_ID=file_system.file_system_id,
            AP_ID=access_point.access_point_id,
            IMAGE=image.image_uri,
            LOG_GROUP=log_group.log_group_name,
            MODEL_NAME=model_name,
            MODEL_VARIANT=model_variant,
            PORT=str(port),
        )
        self.instance = hardened_instance(
            self, "Instance", vpc=vpc, subnets=subnets, instance_type=instance_type,
            security_group=self.security_group, role=role, user_data=user_data, disk_gb=30,
        )  # fmt: skip
        file_system.connections.allow_default_port_from(self.instance, "NFS from the inference service")
        self.port = port
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-EC29",
            reason="The service is stateless (models on EFS) and is replaced "
            "by a redeploy; termination protection would block that.",
        )
        acknowledge(
            id="AwsSolutions-IAM4",
            findings=managed("AmazonSSMManagedInstanceCore"),
            reason="AmazonSSMManagedInstanceCore: Session Manager instead of SSH keys.",
        )
        acknowledge(
            id="AwsSolutions-IAM5",
            findings=[*S3_READ, "Resource::*", cdk_assets(self)],
            reason="ecr:GetAuthorizationToken needs Resource::*; the other "
            "wildcards are CDK grants on this stack's compose file in the CDK staging bucket.",
        )


class EfsSync(Construct):
    """S3 event under ``serving/<model>/<file>`` -> copy onto EFS with write-then-rename."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        access_point: efs.IAccessPoint,
        bucket: s3.IBucket,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="inference.efs_sync.handler",
            code=lambda_.Code.from_asset(
                str(REPO), exclude=["*", "!inference", "!inference/efs_sync.py", "!inference/__init__.py"]
            ),  # fmt: skip
            memory_size=1024,
            timeout=Duration.minutes(5),
            vpc=vpc,
            vpc_subnets=subnets,
            filesystem=lambda_.FileSystem.from_efs_access_point(access_point, MOUNT),
            environment={"MODEL_ROOT": MOUNT, "SERVING_PREFIX": SERVING_PREFIX},
            log_group=logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY),
        )
        bucket.grant_read(self.function, f"{SERVING_PREFIX}*")
        acknowledger(self.function.connections.security_groups[0])(
            id="Annotation::@aws-cdk/aws-ec2:ipv4IgnoreEgressRule",
            reason="Outbound stays open: without NAT it reaches only the VPC (EFS) and the S3 gateway endpoint.",
        )
        for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):  # the store mirrors serving/
            bucket.add_event_notification(
                event, s3n.LambdaDestination(self.function), s3.NotificationKeyFilter(prefix=SERVING_PREFIX)
            )
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-IAM4",
            findings=managed(*LAMBDA_IN_VPC),
            reason="AWSLambdaBasicExecutionRole and "
            "AWSLambdaVPCAccessExecutionRole: logs and ENIs of a Lambda in a VPC (CDK's default).",
        )
        acknowledge(
            id="AwsSolutions-IAM5",
            findings=[*S3_READ, "Resource::*", objects_of(bucket, f"/{SERVING_PREFIX}*")],
            reason="Read access to serving/* of the artifact bucket (CDK "
            "grant), and the EC2 network-interface actions a VPC Lambda needs on Resource::*.",
        )
