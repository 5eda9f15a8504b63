"""Serving: the container-image Lambda behind API Gateway, the EC2 Flask service run by docker
compose on an Auto Scaling group, and the small function that copies published models from S3 onto
EFS (the only writer of the model store)."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_efs as efs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra_stack.instances import (
    BOOT_TIMEOUT,
    add_script,
    amazon_linux,
    download,
    encrypted_root,
    grant_read_objects,
    session_manager_role,
)
from infra_stack.log_groups import log_group
from infra_stack.nag import LAMBDA_IN_VPC, S3_READ, acknowledger, checkov_skip, managed, objects_of
from infra_stack.settings import LambdaSettings, ServedModelSettings, ServiceSettings

REPO = Path(__file__).parent.parent
MOUNT = "/mnt/models"
# Lambda takes at most 6 MB of event (6,291,456 bytes) and API Gateway base64-encodes a binary body
# into it: about 4.4 MB of image, for one image and for a batch.
LAMBDA_BODY_BYTES = 4_400_000
SERVING_PREFIX = "serving/"


def _image(dockerfile: str) -> dict:
    """Build context = the repo; .dockerignore lets only requirements/ and inference/ in."""
    return {"directory": str(REPO), "file": dockerfile, "platform": ecr_assets.Platform.LINUX_AMD64}


GATEWAY_ERRORS = [  # (response, status, code, message: a JSON string or a $context value that is one)
    (apigw.ResponseType.INVALID_API_KEY, "403", "invalid_api_key", '"send the API key of the usage plan in x-api-key"'),
    (
        apigw.ResponseType.REQUEST_TOO_LARGE,
        "413",
        "payload_too_large",
        '"API Gateway takes at most 10 MB, the Lambda about 4.4 MB of image"',
    ),
    (apigw.ResponseType.THROTTLED, "429", "throttled", "$context.error.messageString"),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "quota_exceeded", "$context.error.messageString"),
    (apigw.ResponseType.DEFAULT_4_XX, None, "gateway_refused", "$context.error.messageString"),
    (apigw.ResponseType.DEFAULT_5_XX, None, "gateway_error", "$context.error.messageString"),
]


def _from_networks(cidrs: tuple[str, ...]) -> iam.PolicyDocument:
    """An API resource policy that admits calls from ``cidrs`` only, as the load balancer does."""
    invoke = {"principals": [iam.AnyPrincipal()], "actions": ["execute-api:Invoke"], "resources": ["execute-api:/*"]}
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(**invoke),
            iam.PolicyStatement(
                effect=iam.Effect.DENY, conditions={"NotIpAddress": {"aws:SourceIp": list(cidrs)}}, **invoke
            ),
        ]
    )


def read_only_mount(access_point: efs.IAccessPoint) -> lambda_.FileSystem:
    """``FileSystem.from_efs_access_point`` without its ``ClientWrite`` grant: Lambda mounts read-only
    when the role may not write (AWS Lambda developer guide, "Configuring file system access")."""
    return lambda_.FileSystem(
        arn=access_point.access_point_arn,
        local_mount_path=MOUNT,
        connections=access_point.file_system.connections,
        dependency=[access_point.file_system.mount_targets_available],
        policies=[
            iam.PolicyStatement(
                actions=["elasticfilesystem:ClientMount"],
                resources=[access_point.file_system.file_system_arn],
                conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": access_point.access_point_arn}},
            )
        ],
    )


class LambdaApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        access_point: efs.IAccessPoint,
        settings: LambdaSettings,
        served: ServedModelSettings,
        allowed_cidrs: tuple[str, ...],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "FunctionSg",
            vpc=vpc,
            allow_all_outbound=False,
            description="Predict Lambda: no ingress; egress only NFS to the model store (added by the mount)",
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Predict",
            code=lambda_.DockerImageCode.from_image_asset(**_image("inference/Dockerfile.lambda")),
            memory_size=settings.lambda_memory_mb,
            timeout=Duration.seconds(settings.lambda_timeout_s),
            reserved_concurrent_executions=settings.lambda_reserved_concurrency,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            filesystem=read_only_mount(access_point),
            environment={
                "MODEL_ROOT": MOUNT,
                "MODEL_NAME": served.model_name,
                "MODEL_VARIANT": served.model_variant,
                "MAX_IMAGE_BYTES": str(LAMBDA_BODY_BYTES),
                "MAX_REQUEST_BYTES": str(LAMBDA_BODY_BYTES),
            },
            log_group=log_group(self, "Logs", log_retention),
            tracing=lambda_.Tracing.ACTIVE,
        )
        access_logs = log_group(self, "AccessLogs", log_retention)
        self.api = apigw.RestApi(
            self,
            "Api",
            description="MHIST classifier (Lambda)",
            policy=_from_networks(allowed_cidrs),
            binary_media_types=["image/*", "application/octet-stream", "multipart/form-data"],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                throttling_rate_limit=settings.api_rate_limit,
                throttling_burst_limit=settings.api_burst_limit,
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
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        for response, status, code, message in GATEWAY_ERRORS:  # API Gateway's own refusals, as the API's JSON
            template = json.dumps({"error": {"code": code, "message": "__MESSAGE__"}})
            self.api.add_gateway_response(
                response.response_type,
                type=response,
                status_code=status,
                templates={"application/json": template.replace('"__MESSAGE__"', message)},
            )
        integration = apigw.LambdaIntegration(self.function)
        validator = self.api.add_request_validator(
            "Validator", validate_request_parameters=True, validate_request_body=True
        )
        options = {"api_key_required": True, "request_validator": validator}
        predict = self.api.root.add_resource("predict")
        predict.add_method("POST", integration, **options)
        predict.add_resource("batch").add_method("POST", integration, **options)
        self.api.root.add_resource("explain").add_method("POST", integration, **options)
        for path in ("health", "ready"):
            self.api.root.add_resource(path).add_method("GET", integration, **options)
        self.api.root.add_resource("metadata").add_method("GET", integration, **options)
        self.api_key = self.api.add_api_key("Key", description="MHIST API clients")
        plan = self.api.add_usage_plan(
            "Plan",
            throttle=apigw.ThrottleSettings(rate_limit=settings.api_rate_limit, burst_limit=settings.api_burst_limit),
            quota=apigw.QuotaSettings(limit=settings.api_quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_key(self.api_key)
        plan.add_api_stage(stage=self.api.deployment_stage)
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-APIG3",
            reason="No WAF: the resource policy admits allowed_cidrs only, and throttling and a daily "
            "quota bound what those networks can send; attach a web ACL before opening it wider.",
        )
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            acknowledge(
                id=rule,
                reason="Not authenticated. API keys only meter clients against the usage plan; anyone "
                "inside allowed_cidrs who holds a key can call. Add an IAM or Cognito authorizer to "
                "authenticate callers.",
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
        checkov_skip(self.function, "CKV_AWS_116", "Invoked synchronously by API Gateway: no event to dead-letter.")
        checkov_skip(self.function, "CKV_AWS_173", "Its variables are a path, a model name and a variant.")
        if settings.lambda_reserved_concurrency is None:
            checkov_skip(
                self.function,
                "CKV_AWS_115",
                "A reservation fails stack creation on accounts whose "
                "concurrency limit is 10; lambda_reserved_concurrency sets one.",
            )
        checkov_skip(self.api.deployment_stage, "CKV_AWS_120", "Every call is a POST of a new image: nothing to cache.")


class Ec2Service(Construct):
    """gunicorn/Flask in docker compose on an Auto Scaling group behind the load balancer, the EFS
    model folder mounted read-only. A new image or script is a new launch template version, rolled
    out one instance at a time, each signalling CloudFormation only once it serves."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        file_system: efs.FileSystem,
        access_point: efs.IAccessPoint,
        listener: elbv2.ApplicationListener,
        settings: ServiceSettings,
        served: ServedModelSettings,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        port = settings.service_port
        image = ecr_assets.DockerImageAsset(self, "Image", **_image("inference/Dockerfile.server"))
        compose = s3_assets.Asset(self, "Compose", path=str(REPO / "inference" / "docker-compose.yml"))
        service_logs = log_group(self, "Logs", log_retention)
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=vpc, description="The inference service: from the load balancer only (added by it)"
        )
        self.role = session_manager_role(self, "Role")
        image.repository.grant_pull(self.role)
        grant_read_objects(self.role, compose)
        service_logs.grant_write(self.role)
        file_system.grant(self.role, "elasticfilesystem:ClientMount")  # no ClientWrite: a read-only mount
        user_data = ec2.UserData.for_linux()
        download(user_data, compose, "/opt/inference/docker-compose.yml")
        add_script(user_data, "wait_until.sh")
        add_script(
            user_data,
            "service_user_data.sh",
            FS_ID=file_system.file_system_id,
            AP_ID=access_point.access_point_id,
            IMAGE=image.image_uri,
            LOG_GROUP=service_logs.log_group_name,
            MODEL_NAME=served.model_name,
            MODEL_VARIANT=settings.service_model_variant or served.model_variant,
            PORT=str(port),
        )
        template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(settings.service_instance_type),
            machine_image=amazon_linux(self),
            security_group=self.security_group,
            role=self.role,
            user_data=user_data,
            require_imdsv2=True,
            detailed_monitoring=True,
            block_devices=encrypted_root(30),
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=vpc,
            vpc_subnets=subnets,
            launch_template=template,
            min_capacity=settings.service_min_instances,
            desired_capacity=settings.service_desired_instances,
            max_capacity=settings.service_max_instances,
            # The load balancer's /ready decides where traffic goes; EC2 health decides replacement, so a
            # stack with no model published yet is not replaced in a loop (the unhealthy-host alarm says so).
            health_checks=autoscaling.HealthChecks.ec2(grace_period=BOOT_TIMEOUT),
            signals=autoscaling.Signals.wait_for_all(timeout=BOOT_TIMEOUT),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=settings.service_min_instances,
                wait_on_resource_signals=True,
                pause_time=BOOT_TIMEOUT,
            ),
            default_instance_warmup=Duration.minutes(5),
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        user_data.add_signal_on_exit_command(self.group)
        self.group.node.add_dependency(file_system.mount_targets_available)
        file_system.connections.allow_default_port_from(self.group, "NFS from the inference service")
        self.target_group = listener.add_targets(
            "Service",
            port=port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.group],
            health_check=elbv2.HealthCheck(
                path="/ready",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            deregistration_delay=Duration.seconds(30),
        )
        self.group.scale_on_cpu_utilization("Cpu", target_utilization_percent=settings.service_cpu_target_percent)
        if settings.service_requests_per_target is not None:
            self.group.scale_on_request_count(
                "Requests", target_requests_per_minute=settings.service_requests_per_target
            )
        self.port = port
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-AS3",
            reason="Scaling events are in the group's activity history and CloudWatch group metrics; "
            "the unhealthy-host and CPU alarms notify the topic.",
        )
        acknowledge(
            id="AwsSolutions-IAM4",
            findings=managed("AmazonSSMManagedInstanceCore"),
            reason="AmazonSSMManagedInstanceCore: Session Manager instead of SSH keys.",
        )
        acknowledge(
            id="AwsSolutions-IAM5",
            findings=["Resource::*"],
            reason="ecr:GetAuthorizationToken takes no resource narrower than Resource::*.",
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
        # S3 invokes it asynchronously: an event that still fails after Lambda's retries lands here, and
        # an alarm on the queue says the store is stale (publish again, or replay the message).
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        security_group = ec2.SecurityGroup(
            self,
            "FunctionSg",
            vpc=vpc,
            allow_all_outbound=False,
            description="EFS sync: HTTPS out (S3 through its gateway endpoint); NFS added by the mount",
        )
        security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3")
        # A role of its own, outside the function: the function waits for the mount targets, and the file
        # system's policy names this role, so a role inside it would make a dependency cycle.
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(name) for name in LAMBDA_IN_VPC],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="inference.efs_sync.handler",
            code=lambda_.Code.from_asset(
                str(REPO),
                exclude=[
                    "*",
                    "!inference",
                    "!inference/efs_sync.py",
                    "!inference/store_files.py",
                    "!inference/__init__.py",
                ],
            ),
            memory_size=1024,
            timeout=Duration.minutes(5),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            role=role,
            filesystem=lambda_.FileSystem.from_efs_access_point(access_point, MOUNT),
            dead_letter_queue=self.dead_letters,
            retry_attempts=2,
            environment={"MODEL_ROOT": MOUNT, "SERVING_PREFIX": SERVING_PREFIX},
            log_group=log_group(self, "Logs", log_retention),
        )
        bucket.grant_read(self.function, f"{SERVING_PREFIX}*")
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
        acknowledger(self.dead_letters)(
            id="AwsSolutions-SQS3", reason="This is the dead-letter queue of the sync function."
        )
        checkov_skip(
            self.dead_letters, "CKV_AWS_27", "Encrypted with SSE-SQS (SQS-managed keys), which checkov misses."
        )
        checkov_skip(self.function, "CKV_AWS_115", "A few events per publish; a reservation would take from the API.")
        checkov_skip(self.function, "CKV_AWS_173", "Its variables are a path and a key prefix.")
