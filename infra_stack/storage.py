"""Models: EFS (encrypted, backed up) with an access point for ``/models``."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from constructs import Construct

# The uid/gid everything that touches the models runs as: the Lambda (through the access point),
# the sync function (same access point), the EC2 container (Dockerfile.server's USER 1000:1000).
MODEL_UID = "1000"


class ModelStore(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, subnets: ec2.SubnetSelection) -> None:
        super().__init__(scope, construct_id)
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
        self.access_point = self.file_system.add_access_point(
            "Models",
            path="/models",
            create_acl=efs.Acl(owner_uid=MODEL_UID, owner_gid=MODEL_UID, permissions="755"),
            posix_user=efs.PosixUser(uid=MODEL_UID, gid=MODEL_UID),
        )
