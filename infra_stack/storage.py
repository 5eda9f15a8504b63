"""Models: EFS (encrypted, backed up) with an access point for ``/models``. Its file-system policy
refuses any connection without TLS and, once ``only_writer`` names it, every write but the sync
function's: the predict Lambda and the service instances can only read what they serve."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from constructs import Construct

# The uid/gid everything that touches the models runs as: the Lambda (through the access point),
# the sync function (same access point), the EC2 container (Dockerfile.server's USER 1000:1000).
MODEL_UID = "1000"
WRITES = ["elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]


class ModelStore(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, subnets: ec2.SubnetSelection) -> None:
        super().__init__(scope, construct_id)
        tls_only = iam.PolicyStatement(
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["*"],
            conditions={"Bool": {"aws:SecureTransport": "false"}},
        )
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnets=subnets,
            encrypted=True,
            enable_automatic_backups=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CDK's own statement (the denyAnonymousAccess flag) allows writes through a mount target, which
        # only_writer narrows to one role. No statement allows ClientMount, so a client mounts only with
        # IAM, as a role whose own policy grants it: anonymous (non-IAM) mounts are refused.
        self.file_system.add_to_resource_policy(tls_only)
        self.access_point = self.file_system.add_access_point(
            "Models",
            path="/models",
            create_acl=efs.Acl(owner_uid=MODEL_UID, owner_gid=MODEL_UID, permissions="755"),
            posix_user=efs.PosixUser(uid=MODEL_UID, gid=MODEL_UID),
        )

    def only_writer(self, role: iam.IRole) -> None:
        """Deny writes to every principal but ``role`` (an explicit deny beats any grant)."""
        self.file_system.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=WRITES,
                conditions={"ArnNotEquals": {"aws:PrincipalArn": role.role_arn}},
            )
        )
