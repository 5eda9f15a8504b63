"""Tracking: the S3 artifact bucket, RDS PostgreSQL (TLS only), and the EC2 MLflow server in a private
subnet that runs ``infra_stack/assets/mlflow_server.sh`` (the script the tests run locally) behind
MLflow's basic-auth app, its admin password generated in Secrets Manager."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_stack.buckets import private_bucket
from infra_stack.instances import (
    ASSETS,
    BOOT_TIMEOUT,
    add_script,
    amazon_linux,
    download,
    encrypted_root,
    grant_read_objects,
    session_manager_role,
)
from infra_stack.log_groups import log_group
from infra_stack.nag import S3_READ, S3_WRITE, acknowledger, checkov_skip, managed, objects_of
from infra_stack.settings import TrackingSettings

REQUIREMENTS = Path(__file__).parent.parent / "requirements" / "tracking.txt"
MLFLOW_PREFIX = "mlflow/"  # the server's artifacts; serving/ is the publisher's alone


class Tracking(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        settings: TrackingSettings,
        access_logs: s3.IBucket,
        listener: elbv2.ApplicationListener | None,
        host_names: list[str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        port = settings.mlflow_port
        self.bucket = private_bucket(
            self,
            "Artifacts",
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(settings.artifact_noncurrent_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        engine = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9)
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=engine,
            instance_type=ec2.InstanceType(settings.db_instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            credentials=rds.Credentials.from_generated_secret("mlflow"),
            database_name="mlflow",
            parameter_group=rds.ParameterGroup(self, "DbParameters", engine=engine, parameters={"rds.force_ssl": "1"}),
            ca_certificate=rds.CaCertificate.RDS_CA_RSA2048_G1,
            allocated_storage=settings.db_allocated_storage_gb,
            storage_encrypted=True,
            publicly_accessible=False,
            backup_retention=Duration.days(settings.db_backup_days),
            deletion_protection=settings.db_deletion_protection,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        self.admin_secret = secretsmanager.Secret(
            self,
            "AdminSecret",
            description="MLflow basic-auth admin (user and password for MLFLOW_TRACKING_USERNAME/PASSWORD)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": "admin"}),
                generate_string_key="password",
                exclude_punctuation=True,  # it lands in an .ini file, where '%' would be interpolated
                password_length=32,
            ),
        )

        self.security_group = ec2.SecurityGroup(
            self, "ServerSg", vpc=vpc, description="MLflow server: from the load balancer only (added by the target)"
        )
        role = session_manager_role(self, "ServerRole")
        self.bucket.grant_read_write(role, f"{MLFLOW_PREFIX}*")
        self.database.secret.grant_read(role)
        self.admin_secret.grant_read(role)
        self.log_group = log_group(self, "ServerLogs", log_retention)
        self.log_group.grant_write(role)
        files = {
            "/opt/mlflow/mlflow_server.sh": ASSETS / "mlflow_server.sh",
            "/opt/mlflow/mlflow_config.sh": ASSETS / "mlflow_config.sh",
            "/opt/mlflow/requirements.txt": REQUIREMENTS,
        }
        user_data = ec2.UserData.for_linux()
        assets = [s3_assets.Asset(self, Path(source).name, path=str(source)) for source in files.values()]
        for asset, target in zip(assets, files, strict=True):
            download(user_data, asset, target)
        grant_read_objects(role, *assets)
        add_script(user_data, "wait_until.sh")
        # Host names MLflow answers to (it checks the Host header): Session Manager's local forward,
        # and the load balancer's names when it publishes MLflow.
        hosts = ["localhost:*", "127.0.0.1:*", *(f"{name}:{port}" for name in host_names)]
        add_script(
            user_data,
            "mlflow_user_data.sh",
            DB_SECRET_ARN=self.database.secret.secret_arn,
            ADMIN_SECRET_ARN=self.admin_secret.secret_arn,
            DB_HOST=self.database.db_instance_endpoint_address,
            ARTIFACTS=self.bucket.s3_url_for_object(MLFLOW_PREFIX.rstrip("/")),
            PORT=str(port),
            ALLOWED_HOSTS=",".join(hosts),
            LOG_GROUP=self.log_group.log_group_name,
        )
        self.server = ec2.Instance(
            self,
            "Server",
            vpc=vpc,
            vpc_subnets=subnets,
            instance_type=ec2.InstanceType(settings.mlflow_instance_type),
            machine_image=amazon_linux(self),
            security_group=self.security_group,
            role=role,
            user_data=user_data,
            user_data_causes_replacement=True,  # a stop/start would not run the new script
            require_imdsv2=True,  # (http_tokens trips cdk-nag EC26 in a stack that has a launch template)
            detailed_monitoring=True,
            block_devices=encrypted_root(20),
            resource_signal_timeout=BOOT_TIMEOUT,
        )
        user_data.add_signal_on_exit_command(self.server)
        self.server.node.add_dependency(self.database)  # the boot runs `mlflow db upgrade` against it
        self.database.connections.allow_default_port_from(self.server, "MLflow server to PostgreSQL")
        if listener is not None:
            listener.add_targets(
                "Mlflow",
                port=port,
                protocol=elbv2.ApplicationProtocol.HTTP,
                targets=[targets.InstanceTarget(self.server, port)],
                health_check=elbv2.HealthCheck(path="/health", healthy_http_codes="200"),
                deregistration_delay=Duration.seconds(30),
            )
        self.port = port
        acknowledge = acknowledger(self)
        acknowledge(
            id="AwsSolutions-RDS3",
            reason="Single-AZ keeps cost down; tracking metadata is backed up "
            "daily (db_backup_days) and is not on the serving path.",
        )
        acknowledge(
            id="AwsSolutions-RDS11",
            reason="The default port is reachable only from the MLflow server's security group, in private subnets.",
        )
        acknowledge(
            id="AwsSolutions-SMG4",
            reason="Not rotated. The MLflow server reads both passwords at boot, so a rotated database "
            "password breaks it until it is replaced, and MLflow keeps the admin password in its own user "
            "table once created (change it there and here together).",
        )
        acknowledge(
            id="AwsSolutions-EC29",
            reason="The server is stateless (state in RDS and S3) and is "
            "replaced by a redeploy; termination protection would block that.",
        )
        acknowledge(
            id="AwsSolutions-IAM4",
            findings=managed("AmazonSSMManagedInstanceCore"),
            reason="AmazonSSMManagedInstanceCore: Session Manager port forwarding instead of SSH keys.",
        )
        acknowledge(
            id="AwsSolutions-IAM5",
            findings=[*S3_READ, *S3_WRITE, objects_of(self.bucket, f"/{MLFLOW_PREFIX}*")],
            reason="Object-level wildcards from CDK grants, scoped to mlflow/ of the artifact bucket "
            "(MLflow reads and writes any run's artifacts there).",
        )
        checkov_skip(self.database, "CKV_AWS_157", "Single-AZ on purpose (cdk-nag RDS3 above): cost, not serving.")
        checkov_skip(self.database, "CKV_AWS_118", "Enhanced monitoring costs more than this small tracking DB earns.")
        checkov_skip(self.database, "CKV_AWS_161", "MLflow connects with a password over verified TLS, not IAM.")
        checkov_skip(
            self.database.node.find_child("Secret"),
            "CKV_AWS_149",
            "The aws/secretsmanager key: only this account's roles read it.",
        )
        checkov_skip(
            self.server.instance,
            "CKV_AWS_46",
            "The user data names the secrets' ARNs, never their values: mlflow_config.sh reads those at boot.",
        )
        checkov_skip(self.admin_secret, "CKV_AWS_149", "The aws/secretsmanager key: only this account's roles read it.")
