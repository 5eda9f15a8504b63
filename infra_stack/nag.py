"""Acknowledged findings of the two template checkers, each beside the construct it concerns.

cdk-nag 3.x: ``acknowledger(construct)(id=rule, reason=why, findings=[...])``. An acknowledgement
covers the construct and its children and is recorded with its reason in the cloud assembly
(``cdk.out/<stack>.metadata.json``, entries of type ``aws:cdk:acknowledged-rules``); what is not
acknowledged fails the synth and is listed in ``cdk.out/validation-report.json``. Rules that report
several findings per resource (IAM4, IAM5) are acknowledged finding by finding: a new wildcard or
managed policy shows up as a new error instead of slipping through.

checkov: ``checkov_skip(construct, check, reason)`` writes checkov's own per-resource suppression
(``Metadata.checkov.skip``) into the template, so a check stays on for every other resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

S3_READ = ("Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*")
S3_WRITE = ("Action::s3:Abort*", "Action::s3:DeleteObject*")
LAMBDA_IN_VPC = ("service-role/AWSLambdaBasicExecutionRole", "service-role/AWSLambdaVPCAccessExecutionRole")


def managed(*names: str) -> tuple[str, ...]:
    return tuple(f"Policy::arn:<AWS::Partition>:iam::aws:policy/{name}" for name in names)


def objects_of(bucket: s3.IBucket, suffix: str = "/*") -> str:
    logical_id = Stack.of(bucket).get_logical_id(bucket.node.default_child)
    return f"Resource::<{logical_id}.Arn>{suffix}"


def acknowledger(scope: IConstruct) -> Callable[..., None]:
    validations = Validations.of(scope)

    def acknowledge(*, id: str, reason: str, findings: Iterable[str] = ()) -> None:
        ids = [f"{id}[{finding}]" for finding in findings] or [id]
        validations.acknowledge(*(Acknowledgment(id=rule, reason=reason) for rule in ids))

    return acknowledge


def checkov_skip(construct: IConstruct, check: str, reason: str) -> None:
    """Record that ``check`` does not apply to the construct's resource, and why."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource of its own")
    checkov = resource.get_metadata("checkov") or {"skip": []}
    checkov["skip"].append({"id": check, "comment": reason})
    resource.add_metadata("checkov", checkov)
