"""The stack synthesized offline for template assertions: the settings of cdk.json, with overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aws_cdk as cdk
from aws_cdk.assertions import Template

from infra_stack.settings import StackSettings
from infra_stack.stack import MhistStack
from tests.conftest import REPO

CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
REGION = "us-east-1"  # what the CDK CLI sets offline; the load balancer's access logs need one
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def stack_in(app: cdk.App, name: str = "MhistMlops", account: str | None = None, **overrides: object) -> MhistStack:
    context = {**CONTEXT, "mhist": {**CONTEXT["mhist"], **overrides}}
    settings = StackSettings.from_context(context)
    return MhistStack(app, name, settings=settings, env=cdk.Environment(account=account, region=REGION))


def synth(tmp_path: Path, **overrides: object) -> tuple[MhistStack, Template]:
    app = cdk.App(context={**CONTEXT, "mhist": {**CONTEXT["mhist"], **overrides}}, outdir=str(tmp_path))
    stack = stack_in(app, **overrides)
    return stack, Template.from_stack(stack)


def resources(template: Template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def user_data(resource: dict) -> str:
    """A resource's user data as one script, each CloudFormation token written as the name it refers to."""
    properties = resource["Properties"]
    data = properties.get("UserData") or properties["LaunchTemplateData"]["UserData"]
    _, parts = data["Fn::Base64"]["Fn::Join"]
    return "".join(part if isinstance(part, str) else _name(part) for part in parts)


def service_script(template: Template) -> str:
    """The service's user data (its launch template; MLflow's has none)."""
    (launch_template,) = [
        t
        for t in resources(template, "AWS::EC2::LaunchTemplate").values()
        if "UserData" in t["Properties"]["LaunchTemplateData"]
    ]
    return user_data(launch_template)


def _name(token: dict) -> str:
    if "Ref" in token:
        return token["Ref"]
    if "Fn::GetAtt" in token:
        return ".".join(token["Fn::GetAtt"])
    return "TOKEN"
