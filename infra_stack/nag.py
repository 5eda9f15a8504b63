"""cdk-nag 3.x acknowledgements: ``acknowledger(construct)(id=rule, reason=why, findings=[...])``.

An acknowledgement covers the construct and its children and is recorded with its reason in the
cloud assembly (``policy-validation-report.json``), so every exception is visible and explained.
Rules that report several findings per resource (IAM4, IAM5) are acknowledged finding by finding:
a new wildcard or managed policy shows up as a new error instead of slipping through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aws_cdk import Acknowledgment, Stack, Token, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

S3_READ = ("Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*")
S3_WRITE = ("Action::s3:Abort*", "Action::s3:DeleteObject*")
LAMBDA_IN_VPC = ("service-role/AWSLambdaBasicExecutionRole", "service-role/AWSLambdaVPCAccessExecutionRole")


def managed(*names: str) -> tuple[str, ...]:
    return tuple(f"Policy::arn:<AWS::Partition>:iam::aws:policy/{name}" for name in names)


def cdk_assets(scope: IConstruct) -> str:
    """The CDK staging bucket's objects, as the finding names them for this stack's environment."""
    stack = Stack.of(scope)
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    return f"Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-{account}-{region}/*"


def objects_of(bucket: s3.IBucket, suffix: str = "/*") -> str:
    logical_id = Stack.of(bucket).get_logical_id(bucket.node.default_child)
    return f"Resource::<{logical_id}.Arn>{suffix}"


def acknowledger(scope: IConstruct) -> Callable[..., None]:
    validations = Validations.of(scope)

    def acknowledge(*, id: str, reason: str, findings: Iterable[str] = ()) -> None:  # noqa: A002 - cdk-nag's name
        ids = [f"{id}[{finding}]" for finding in findings] or [id]
        validations.acknowledge(*(Acknowledgment(id=rule, reason=reason) for rule in ids))

    return acknowledge
