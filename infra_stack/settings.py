"""Every number and name a user would change, from the CDK context: the ``mhist`` block of ``cdk.json``,
then one ``-c mhist.<key>=<value>`` per setting to change at synth/deploy time
(``cdk deploy -c mhist.alarm_email=me@example.org -c mhist.allowed_cidrs=10.0.0.0/8,192.168.1.0/24``).
``-c mhist='{...}'`` replaces the whole block.

Pydantic models, free of the CDK: one per construct (``NetworkSettings`` for ``Network``...), each
field's bounds, pattern and meaning in one place, and ``StackSettings``, all of them as the one flat
block users write (``docs/aws.md``'s table is ``settings_table()``), every bad value named at once
before anything is built. The CDK CLI passes a ``-c`` value as a string: pydantic reads ``"3"`` and
``"false"``; a list is comma-separated, and ``null`` (or nothing) clears an optional setting.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from inference.environment import Variant  # the serving settings' own list: pydantic only, no onnxruntime

CONTEXT_KEY = "mhist"
RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
}
BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")  # said with the field's meaning
MIN_PREFIX = 8  # 0.0.0.0/1 + 128.0.0.0/1 would be the whole internet
InstanceType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", title="an instance type like t3.small")]
Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[int, Field(ge=1, le=100)]
AtLeastOne = Annotated[int, Field(ge=1)]
HostName = Annotated[
    str, Field(max_length=253, pattern=r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
]
ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$"


def _comma_separated(value: object) -> object:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value


def _null(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() in ("", "null", "none") else value


CommaList = BeforeValidator(_comma_separated)
Nullable = BeforeValidator(_null)


class SettingsError(ValueError):
    """A context value the stack cannot use; the message names it."""


Rule = tuple[str, bool, str]  # the setting it refuses, whether it holds, what the setting must be


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def rules(self) -> list[Rule]:
        """The rules across this section's settings; a subclass adds its own to ``super().rules()``."""
        return []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Every rule that fails, at once: CloudFormation would refuse most of them only minutes into a deploy."""
        problems = [f"{name}={getattr(self, name)!r}: must be {rule}" for name, ok, rule in self.rules() if not ok]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class NetworkSettings(Settings):
    """``Network``: the VPC."""

    max_azs: int = Field(2, ge=2, description="availability zones of the VPC (RDS and EFS span two)")
    nat_gateways: AtLeastOne = Field(
        1, description="NAT gateways, 1..max_azs (~$33/month each): the private instances install through them"
    )
    interface_endpoints: bool = Field(
        False,
        description="ECR, Logs, Secrets Manager, SSM endpoints (~$102/month for 7 in 2 AZs): AWS calls off the NAT",
    )

    def rules(self) -> list[Rule]:
        return [*super().rules(), ("nat_gateways", self.nat_gateways <= self.max_azs, "at most max_azs")]


class AccessSettings(Settings):
    """``LoadBalancer`` (and the Lambda API's resource policy): who may reach the front doors, and how."""

    allowed_cidrs: Annotated[tuple[str, ...], CommaList] = Field(
        (),
        description=f"required: who may reach the load balancer and the Lambda API (IPv4, /{MIN_PREFIX} or narrower)",
    )
    certificate_arn: Annotated[str | None, Nullable] = Field(
        None,
        pattern=ARN,
        title="null or an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
        description="an ACM certificate for HTTPS (which also publishes MLflow), given with public_host_names",
    )
    public_host_names: Annotated[tuple[HostName, ...], CommaList] = Field(
        (), title="DNS names", description="the DNS names certificate_arn covers that point at the load balancer"
    )

    @field_validator("allowed_cidrs")
    @classmethod
    def _narrow_ipv4_blocks(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        if not cidrs:
            raise ValueError("empty: name the networks that may reach MLflow and the service")
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR block") from None
            if network.version != 4:
                raise ValueError(f"{cidr} is not an IPv4 block (the load balancer is IPv4 only)")
            if network.prefixlen < MIN_PREFIX:
                raise ValueError(f"{cidr} is wider than /{MIN_PREFIX}; name the networks that need access")
        return cidrs

    def rules(self) -> list[Rule]:
        rule = "the names certificate_arn covers, given with it (clients reach the load balancer by them)"
        return [
            *super().rules(),
            ("public_host_names", bool(self.public_host_names) == bool(self.certificate_arn), rule),
        ]


class TrackingSettings(Settings):
    """``Tracking``: the MLflow server, its database and its artifact bucket."""

    mlflow_instance_type: InstanceType = Field("t3.small", description="the MLflow server")
    mlflow_port: Port = Field(5000, description="MLflow's port (and its HTTPS listener's)")
    db_instance_type: InstanceType = Field("t4g.micro", description="RDS instance, without 'db.' (the CDK adds it)")
    db_allocated_storage_gb: int = Field(20, ge=20, le=65536, description="RDS gp storage")
    db_backup_days: int = Field(7, ge=1, le=35, description="RDS backups kept")
    db_deletion_protection: bool = Field(True, description="RDS deletion protection")
    artifact_noncurrent_days: AtLeastOne = Field(90, description="old artifact versions expire after")

    @field_validator("db_instance_type", mode="before")
    @classmethod
    def _without_db_prefix(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith("db."):
            raise ValueError("give it without 'db.' (the CDK adds it)")
        return value


class ServedModelSettings(Settings):
    """What both front doors (``LambdaApi``, ``Ec2Service``) serve."""

    model_name: str = Field(
        "vit_base_patch16_224",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        title="a folder name (letters, digits, '.', '_', '-')",
        description="what both front doors serve (a folder of the model store)",
    )
    model_variant: Variant = Field("auto", description="auto: the int8 file where its gate passed")

    def rules(self) -> list[Rule]:
        lambda_can = self.model_variant != "bf16"  # only OpenVINO computes bf16, and the Lambda image lacks it
        return [*super().rules(), ("model_variant", lambda_can, "auto, fp32 or int8 (bf16: service_model_variant)")]


class LambdaSettings(Settings):
    """``LambdaApi``: the function and API Gateway in front of it."""

    lambda_memory_mb: int = Field(3008, ge=128, le=10240, description="1,769 MB buys one vCPU, 3008 MB about 1.7")
    lambda_timeout_s: int = Field(29, ge=1, le=29, description="at most API Gateway's 29 s")
    lambda_reserved_concurrency: Annotated[AtLeastOne | None, Nullable] = Field(
        None, description="null: unreserved (0 would stop the function)"
    )
    api_rate_limit: AtLeastOne = Field(20, description="API throttling: requests per second")
    api_burst_limit: AtLeastOne = Field(40, description="API throttling: burst")
    api_quota_per_day: AtLeastOne = Field(10000, description="the usage plan's daily quota")


class ServiceSettings(Settings):
    """``Ec2Service``: the Auto Scaling group of the Flask/gunicorn service."""

    service_instance_type: InstanceType = Field("c7i.large", description="the EC2 inference service")
    service_port: Port = Field(8080, description="the service's port on the instance")
    service_model_variant: Annotated[Variant | None, Nullable] = Field(
        None, description="null: model_variant; bf16 (the fp32 file in bfloat16 by OpenVINO) is served here only"
    )
    service_min_instances: AtLeastOne = Field(1, description="the group's minimum size")
    service_desired_instances: Annotated[int | None, Nullable] = Field(
        None, description="null: the group starts at its minimum and scaling decides; else min..max"
    )
    service_max_instances: int = Field(
        2, description="above the minimum: a rolling update starts a new instance before it stops an old one"
    )
    service_cpu_target_percent: Percent = Field(60, description="target tracking on CPU")
    service_requests_per_target: Annotated[AtLeastOne | None, Nullable] = Field(
        None, description="target tracking on requests per instance per minute, when set"
    )

    def rules(self) -> list[Rule]:
        low, desired, high = self.service_min_instances, self.service_desired_instances, self.service_max_instances
        rolling = "above service_min_instances (a rolling update starts a new instance before it stops an old one)"
        return [
            *super().rules(),
            ("service_max_instances", high > low, rolling),
            (
                "service_desired_instances",
                desired is None or low <= desired <= high,
                "null or service_min_instances..service_max_instances",
            ),
        ]


class AlarmSettings(Settings):
    """``Monitoring``: the alarms, where they go, and the budget."""

    alarm_email: str = Field(
        "",
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        title="an e-mail address",
        description="required: alarms and budget alerts",
    )
    alarm_lambda_p99_ms: AtLeastOne = Field(5000, description="alarm: the Lambda's p99 duration")
    alarm_api_latency_ms: AtLeastOne = Field(5000, description="alarm: API Gateway latency")
    alarm_cpu_percent: Percent = Field(80, description="alarm: instance CPU")
    alarm_db_free_storage_gb: AtLeastOne = Field(
        2, description="alarm: RDS free storage, below db_allocated_storage_gb"
    )
    budget_monthly_usd: AtLeastOne = Field(
        250, description="AWS Budgets limit (alerts at 80% and 100%; the idle stack costs about $177)"
    )


Section = TypeVar("Section", bound=Settings)


class StackSettings(
    AlarmSettings,
    ServiceSettings,
    LambdaSettings,
    ServedModelSettings,
    TrackingSettings,
    AccessSettings,
    NetworkSettings,
):
    """Every section as one flat block (the fields of the last base come first)."""

    stack_name: str = Field(
        "MhistMlops",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$",
        title="a CloudFormation stack name (a letter, then letters, digits and '-')",
        description="CloudFormation stack name",
    )
    log_retention_days: int = Field(30, description=f"every log group: one of {', '.join(map(str, RETENTION))}")

    @field_validator("log_retention_days")
    @classmethod
    def _a_retention_cloudwatch_has(cls, days: int) -> int:
        if days not in RETENTION:
            raise ValueError(f"CloudWatch keeps logs for {', '.join(map(str, RETENTION))} days")
        return days

    def rules(self) -> list[Rule]:  # every section's, and the one across sections
        below = (self.alarm_db_free_storage_gb < self.db_allocated_storage_gb, "below db_allocated_storage_gb")
        return [*super().rules(), ("alarm_db_free_storage_gb", *below)]

    def section(self, kind: type[Section]) -> Section:
        """The settings one construct takes (validated already, as part of the whole)."""
        return kind.model_construct(**self.model_dump(include=set(kind.model_fields)))

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> StackSettings:
        """The settings from the app's whole context: the block, then each ``-c mhist.<key>``."""
        prefix = CONTEXT_KEY + "."
        overrides = {key.removeprefix(prefix): value for key, value in context.items() if key.startswith(prefix)}
        try:
            return cls.model_validate({**_block(context.get(CONTEXT_KEY)), **overrides})
        except ValidationError as error:
            raise SettingsError(f"cdk context '{CONTEXT_KEY}': {_one_line(error)}") from None


def _one_line(error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False):
        if not detail["loc"]:  # the rules across settings, already worded by name
            problems.append(str(detail["ctx"]["error"]))
            continue
        name = str(detail["loc"][0])
        message = str(detail["ctx"]["error"]) if detail["type"] == "value_error" else detail["msg"]
        if detail["type"] in BOUNDS and (why := StackSettings.model_fields[name].description):
            message += f" ({why})"
        if detail["type"] == "extra_forbidden":
            message = "not a setting (docs/aws.md lists them)"
        elif detail["type"] == "string_pattern_mismatch":  # the pattern is the model's business; say what it means
            message = f"must be {StackSettings.model_fields[name].title or 'of another form'}"
        problems.append(f"{name}={detail['input']!r}: {message}")
    return "; ".join(problems)


def _block(block: object) -> dict[str, Any]:
    """The ``mhist`` block: a dict from cdk.json, the JSON string ``-c mhist='{...}'`` gives, or none."""
    if block is None:
        return {}
    if isinstance(block, str):
        try:
            block = json.loads(block)
        except json.JSONDecodeError as error:
            raise SettingsError(
                f"-c {CONTEXT_KEY}=...: not JSON ({error}); set one key with -c {CONTEXT_KEY}.<key>=<value>"
            ) from error
    if not isinstance(block, dict):
        raise SettingsError(f"cdk context '{CONTEXT_KEY}' must be an object of settings, got {block!r}")
    return block


def settings_table() -> str:
    """The settings as docs/aws.md shows them: key, default, meaning (a test keeps the two the same)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, field in StackSettings.model_fields.items():
        default = field.default
        shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        rows.append(f"| `{name}` | {shown.strip(chr(34))} | {field.description} |")
    return "\n".join(rows)
