"""What every EC2 instance of the stack shares: Amazon Linux 2023, IMDSv2, no SSH key (Session
Manager instead), an encrypted root disk, detailed monitoring, and a bootstrap script from
``assets/`` with its ``__KEY__`` placeholders filled in."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

ASSETS = Path(__file__).parent / "assets"


def session_manager_role(scope: Construct, construct_id: str) -> iam.Role:
    role = iam.Role(scope, construct_id, assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"))
    return role


def allowed_networks_only(
    scope: Construct, construct_id: str, *, vpc: ec2.IVpc, what: str, port: int, cidrs: tuple[str, ...]
) -> ec2.SecurityGroup:
    """A security group whose only ingress is ``port`` from each of ``cidrs`` (never 0.0.0.0/0: settings refuse it)."""
    group = ec2.SecurityGroup(scope, construct_id, vpc=vpc, description=f"{what} from the allowed networks only")
    for cidr in cidrs:
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"{what} from {cidr}")
    return group


def add_script(user_data: ec2.UserData, name: str, **values: str) -> None:
    """Append ``assets/<name>`` to the user data, each ``__KEY__`` replaced by ``values[KEY]``."""
    text = (ASSETS / name).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    user_data.add_commands(*text.splitlines())


def hardened_instance(
    scope: Construct,
    construct_id: str,
    *,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    instance_type: str,
    security_group: ec2.ISecurityGroup,
    role: iam.IRole,
    user_data: ec2.UserData,
    disk_gb: int,
) -> ec2.Instance:
    return ec2.Instance(
        scope,
        construct_id,
        vpc=vpc,
        vpc_subnets=subnets,
        instance_type=ec2.InstanceType(instance_type),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(),
        security_group=security_group,
        role=role,
        user_data=user_data,
        require_imdsv2=True,
        detailed_monitoring=True,
        block_devices=[
            ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(disk_gb, encrypted=True))
        ],
    )
