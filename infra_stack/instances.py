"""What every EC2 instance of the stack shares: Amazon Linux 2023 at a pinned AMI, IMDSv2, no SSH key
(Session Manager instead), an encrypted root disk, detailed monitoring, a bootstrap script from
``assets/`` with its ``__KEY__`` placeholders filled in, and read access to its own asset files only."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra_stack.nag import acknowledger

ASSETS = Path(__file__).parent / "assets"
# How long CloudFormation waits for an instance's signal: packages, the image or pip install, the first
# model load, and the scripts' own waits (assets/*_user_data.sh), with room.
BOOT_TIMEOUT = Duration.minutes(20)


def amazon_linux(scope: Construct) -> ec2.IMachineImage:
    """The newest Amazon Linux 2023 when first deployed, then that AMI until the user asks for another.

    With an account and region (every ``cdk deploy``) the AMI is looked up once and cached in
    ``cdk.context.json``; `cdk context --reset <key>` moves to a newer one. Resolving the SSM
    parameter at deploy time instead would replace every instance whenever AWS publishes an AMI.
    An offline synth (no account) can only name the parameter."""
    stack = Stack.of(scope)
    pinned = not (Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region))
    image = ec2.MachineImage.latest_amazon_linux2023(cached_in_context=pinned)
    if image.get_image(scope).image_id.startswith("dummy-value-for-"):
        acknowledger(scope)(
            id="CloudFormation-Validate::E1152",
            reason="Not looked up yet: the CDK CLI looks the AMI up, caches it and synthesizes again.",
        )
    return image


def session_manager_role(scope: Construct, construct_id: str) -> iam.Role:
    role = iam.Role(scope, construct_id, assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"))
    return role


def grant_read_objects(role: iam.IRole, *assets: s3_assets.Asset) -> None:
    """``s3:GetObject`` on exactly these asset files. ``Asset.grant_read`` grants the whole CDK staging
    bucket, every asset of every stack in the account and region."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[asset.bucket.arn_for_objects(asset.s3_object_key) for asset in assets],
        )
    )


def download(user_data: ec2.UserData, asset: s3_assets.Asset, local_file: str) -> None:
    """``add_s3_download_command`` without its unquoted ``$(dirname ...)`` (shellcheck SC2046)."""
    folder = str(Path(local_file).parent)
    user_data.add_commands(f"mkdir -p '{folder}'", f"aws s3 cp '{asset.s3_object_url}' '{local_file}'")


def add_script(user_data: ec2.UserData, name: str, **values: str) -> None:
    """Append ``assets/<name>`` to the user data, each ``__KEY__`` replaced by ``values[KEY]``."""
    text = (ASSETS / name).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    user_data.add_commands(*text.splitlines())


def encrypted_root(disk_gb: int) -> list[ec2.BlockDevice]:
    volume = ec2.BlockDeviceVolume.ebs(disk_gb, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3)
    return [ec2.BlockDevice(device_name="/dev/xvda", volume=volume)]
