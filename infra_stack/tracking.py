"""Tracking: the S3 artifact bucket, RDS PostgreSQL, and the EC2 MLflow server that runs
``infra_stack/assets/mlflow_server.sh`` (the script the tests run locally) as a systemd service."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra_stack.instances import ASSETS, add_script, allowed_networks_only, hardened_instance, session_manager_role
from infra_stack.nag import S3_READ, S3_WRITE, acknowledger, cdk_assets, managed, objects_of

REQUIREMENTS = Path(__file__).parent.parent / "requirements" / "tracking.txt"


def _bucket(scope: Construct, construct_id: str, **kwargs: object) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
        **kwargs,
    )


class Tracking(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        public: ec2.SubnetSelection,
        private: ec2.SubnetSelection,
        allowed_cidrs: tuple[str, ...],
        port: int,
        instance_type: str,
        db_instance_type: str,
        db_storage_gb: int,
        db_backup_days: int,
        db_deletion_protection: bool,
        noncurrent_days: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = _bucket(self, "AccessLogs", object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED)
        self.bucket = _bucket(
            self,
            "Artifacts",
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(noncurrent_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(db_instance_type),
            vpc=vpc,
            vpc_subnets=private,
            credentials=rds.Credentials.from_generated_secret("mlflow"),
            database_name="mlflow",
            allocated_storage=db_storage_gb,
            storage_encrypted=True,
            publicly_accessible=False,
            backup_retention=Duration.days(db_backup_days),
            deletion_protection=db_deletion_protection,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )

        self.security_group = allowed_networks_only(
            self, "ServerSg", vpc=vpc, what="MLflow UI/API", port=port, cidrs=allowed_cidrs
        )
        role = session_manager_role(self, "ServerRole")
        self.bucket.grant_read_write(role)
        self.database.secret.grant_read(role)
        self.log_group = logs.LogGroup(
            self, "ServerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group.grant_write(role)
        script = s3_assets.Asset(self, "ServerScript", path=str(ASSETS / "mlflow_server.sh"))
        requirements = s3_assets.Asset(self, "ServerRequirements", path=str(REQUIREMENTS))
        for asset in (script, requirements):
            asset.grant_read(role)

        user_data = ec2.UserData.for_linux()
        user_data.add_s3_download_command(
            bucket=script.bucket, bucket_key=script.s3_object_key, local_file="/opt/mlflow/mlflow_server.sh"
        )
        user_data.add_s3_download_command(
            bucket=requirements.bucket, bucket_key=requirements.s3_object_key, local_file="/opt/mlflow/requirements.txt"
        )
        add_script(
            user_data,
            "mlflow_user_data.sh",
            SECRET_ARN=self.database.secret.secret_arn,
            DB_HOST=self.database.db_instance_endpoint_address,
            BUCKET=self.bucket.bucket_name,
            PORT=str(port),
            LOG_GROUP=self.log_group.log_group_name,
        )
        self.server = hardened_instance(
            self, "Server", vpc=vpc, subnets=public, instance_type=instance_type,
            security_group=self.security_group, role=role, user_data=user_data, disk_gb=20,
        )  # fmt: skip
        self.database.connections.allow_default_port_from(self.server, "MLflow server to PostgreSQL")
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
            reason="The MLflow server reads the password at boot; rotation "
            "would need a restart hook and a rotation function in the VPC. Rotate by redeploying.",
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
            findings=[*S3_READ, *S3_WRITE, objects_of(self.bucket), cdk_assets(self)],
            reason="Object-level wildcards from CDK grants, scoped to the "
            "artifact bucket (MLflow reads and writes any run's artifacts) and to this stack's asset "
            "objects in the CDK staging bucket.",
        )
