"""S3 buckets as the stack makes every one: private, encrypted (SSE-S3, which load-balancer logs
require), TLS only, kept when the stack is destroyed."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


def private_bucket(scope: Construct, construct_id: str, **kwargs: object) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
        **kwargs,
    )


def access_log_bucket(scope: Construct, construct_id: str) -> s3.Bucket:
    """Where the artifact bucket's server access logs and the load balancer's logs go."""
    return private_bucket(scope, construct_id, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED)
