"""Log groups as the stack makes every one: a retention, removed with the stack."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_stack.nag import checkov_skip


def log_group(scope: Construct, construct_id: str, retention: logs.RetentionDays) -> logs.LogGroup:
    group = logs.LogGroup(scope, construct_id, retention=retention, removal_policy=RemovalPolicy.DESTROY)
    checkov_skip(group, "CKV_AWS_158", "Encrypted at rest by CloudWatch Logs; request metadata, never images.")
    return group
