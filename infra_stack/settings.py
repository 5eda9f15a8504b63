"""Every number and name a user would change, from the CDK context: the ``mhist`` block of ``cdk.json``,
then one ``-c mhist.<key>=<value>`` per setting to change at synth/deploy time
(``cdk deploy -c mhist.alarm_email=me@example.org -c mhist.allowed_cidrs=10.0.0.0/8,192.168.1.0/24``).
``-c mhist='{...}'`` replaces the whole block. Every bad value is named at once, before anything is built.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import aws_logs as logs

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


class SettingsError(ValueError):
    """A context value the stack cannot use; the message names it."""


@dataclass(frozen=True, kw_only=True)
class StackSettings:
    stack_name: str = "MhistMlops"
    max_azs: int = 2
    nat_gateways: int = 1
    interface_endpoints: bool = False
    allowed_cidrs: tuple[str, ...] = ()
    alarm_email: str = ""
    log_retention_days: int = 30
    artifact_noncurrent_days: int = 90
    db_instance_type: str = "t4g.micro"
    db_allocated_storage_gb: int = 20
    db_backup_days: int = 7
    db_deletion_protection: bool = True
    mlflow_instance_type: str = "t3.small"
    mlflow_port: int = 5000
    service_instance_type: str = "c7i.large"
    service_port: int = 8080
    service_min_instances: int = 1
    service_desired_instances: int | None = None  # None: the group starts at its minimum, scaling decides after
    service_max_instances: int = 2
    service_cpu_target_percent: int = 60
    service_requests_per_target: int | None = None  # per minute; None: scale on CPU alone
    certificate_arn: str | None = None  # ACM certificate for the load balancer: HTTPS, and MLflow published
    public_host_names: tuple[str, ...] = ()  # DNS names that point at the load balancer (the certificate's)
    model_name: str = "vit_base_patch16_224"
    model_variant: str = "auto"
    lambda_memory_mb: int = 3008
    lambda_timeout_s: int = 29
    lambda_reserved_concurrency: int | None = None
    api_rate_limit: int = 20
    api_burst_limit: int = 40
    api_quota_per_day: int = 10000
    alarm_lambda_p99_ms: int = 5000
    alarm_api_latency_ms: int = 5000
    alarm_cpu_percent: int = 80
    alarm_db_free_storage_gb: int = 2
    budget_monthly_usd: int = 250

    @property
    def log_retention(self) -> logs.RetentionDays:
        return getattr(logs.RetentionDays, RETENTION[self.log_retention_days])

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> StackSettings:
        """The settings from the app's whole context. The CDK CLI passes ``-c`` values as strings, so a
        string is read as the setting's type (``"3"``, ``"false"``, ``"10.0.0.0/8,192.168.1.0/24"``)."""
        values = {**_block(context.get(CONTEXT_KEY)), **_overrides(context)}
        known = {f.name: OPTIONAL.get(f.name, f.default) for f in fields(cls)}
        problems = [_unknown(key, known) for key in sorted(set(values) - set(known))]
        typed, wrong_type = {}, set()
        for key in sorted(values.keys() & known.keys()):
            converted, problem = _as_type_of(known[key], values[key], nullable=key in OPTIONAL)
            if problem:
                wrong_type.add(key)
                problems.append(f"{key} {problem}, got {values[key]!r}")
            else:
                typed[key] = converted
        settings = cls(**typed)  # a default stands in for a value of the wrong type: its range is not judged
        problems += [
            message for name, message in settings.failed_checks() if not {name, *READS.get(name, ())} & wrong_type
        ]
        if problems:
            raise SettingsError(f"cdk context '{CONTEXT_KEY}': " + "; ".join(problems))
        return settings

    def failed_checks(self) -> list[tuple[str, str]]:
        """(setting, problem) for every value the stack cannot use, each with its rule; CloudFormation
        would refuse most of them only minutes into a deploy."""
        checks = [
            ("stack_name", self.stack_name, STACK_NAME.fullmatch(self.stack_name), "a CloudFormation stack name"),
            ("max_azs", self.max_azs, self.max_azs >= 2, "at least 2 (RDS and EFS span two zones)"),
            (
                "nat_gateways",
                self.nat_gateways,
                1 <= self.nat_gateways <= self.max_azs,
                "1..max_azs (the private instances install their software through it)",
            ),
            ("alarm_email", self.alarm_email, EMAIL.fullmatch(self.alarm_email), "an e-mail address"),
            (
                "log_retention_days",
                self.log_retention_days,
                self.log_retention_days in RETENTION,
                f"one of {sorted(RETENTION)}",
            ),
            (
                "artifact_noncurrent_days",
                self.artifact_noncurrent_days,
                self.artifact_noncurrent_days >= 1,
                "at least 1",
            ),
            (
                "db_instance_type",
                self.db_instance_type,
                not self.db_instance_type.startswith("db."),
                "given without 'db.' (the CDK adds it)",
            ),
            (
                "db_allocated_storage_gb",
                self.db_allocated_storage_gb,
                20 <= self.db_allocated_storage_gb <= 65536,
                "20..65536 (RDS gp storage)",
            ),
            ("db_backup_days", self.db_backup_days, 1 <= self.db_backup_days <= 35, "1..35 (RDS backups)"),
            ("mlflow_port", self.mlflow_port, 1 <= self.mlflow_port <= 65535, "a port, 1..65535"),
            ("service_port", self.service_port, 1 <= self.service_port <= 65535, "a port, 1..65535"),
            (
                "model_name",
                self.model_name,
                MODEL_NAME.fullmatch(self.model_name),
                "a folder name (letters, digits, '.', '_', '-')",
            ),
            ("model_variant", self.model_variant, self.model_variant in ("auto", "fp32", "int8"), "auto, fp32 or int8"),
            ("lambda_memory_mb", self.lambda_memory_mb, 128 <= self.lambda_memory_mb <= 10240, "128..10240"),
            (
                "lambda_timeout_s",
                self.lambda_timeout_s,
                1 <= self.lambda_timeout_s <= 29,
                "1..29 (API Gateway's limit)",
            ),
            (
                "lambda_reserved_concurrency",
                self.lambda_reserved_concurrency,
                self.lambda_reserved_concurrency is None or self.lambda_reserved_concurrency >= 1,
                "null or at least 1 (0 would stop the function)",
            ),
            ("service_min_instances", self.service_min_instances, self.service_min_instances >= 1, "at least 1"),
            (
                "service_max_instances",
                self.service_max_instances,
                self.service_max_instances > self.service_min_instances,
                "above service_min_instances (a rolling update starts a new instance before it stops an old one)",
            ),
            (
                "service_desired_instances",
                self.service_desired_instances,
                self.service_desired_instances is None
                or self.service_min_instances <= self.service_desired_instances <= self.service_max_instances,
                "null or service_min_instances..service_max_instances",
            ),
            (
                "service_cpu_target_percent",
                self.service_cpu_target_percent,
                1 <= self.service_cpu_target_percent <= 100,
                "1..100",
            ),
            (
                "service_requests_per_target",
                self.service_requests_per_target,
                self.service_requests_per_target is None or self.service_requests_per_target >= 1,
                "null or at least 1 (requests per instance per minute)",
            ),
            (
                "certificate_arn",
                self.certificate_arn,
                self.certificate_arn is None or CERTIFICATE_ARN.fullmatch(self.certificate_arn),
                "null or an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
            ),
            (
                "public_host_names",
                list(self.public_host_names),
                bool(self.public_host_names) == bool(self.certificate_arn),
                "the names certificate_arn covers, given with it (clients reach the load balancer by them)",
            ),
            ("api_rate_limit", self.api_rate_limit, self.api_rate_limit >= 1, "at least 1"),
            ("api_burst_limit", self.api_burst_limit, self.api_burst_limit >= 1, "at least 1"),
            ("api_quota_per_day", self.api_quota_per_day, self.api_quota_per_day >= 1, "at least 1"),
            ("alarm_lambda_p99_ms", self.alarm_lambda_p99_ms, self.alarm_lambda_p99_ms >= 1, "at least 1"),
            ("alarm_api_latency_ms", self.alarm_api_latency_ms, self.alarm_api_latency_ms >= 1, "at least 1"),
            ("alarm_cpu_percent", self.alarm_cpu_percent, 1 <= self.alarm_cpu_percent <= 100, "1..100"),
            (
                "alarm_db_free_storage_gb",
                self.alarm_db_free_storage_gb,
                1 <= self.alarm_db_free_storage_gb < self.db_allocated_storage_gb,
                "1..db_allocated_storage_gb - 1",
            ),
            ("budget_monthly_usd", self.budget_monthly_usd, self.budget_monthly_usd >= 1, "at least 1"),
        ]
        for name in ("mlflow_instance_type", "service_instance_type", "db_instance_type"):
            value = getattr(self, name)
            checks.append((name, value, INSTANCE_TYPE.fullmatch(value.removeprefix("db.")), "like t3.small"))
        checks += [
            ("public_host_names", name, HOST_NAME.fullmatch(name), "DNS names") for name in self.public_host_names
        ]
        failed = [(name, f"{name} must be {rule}, got {value!r}") for name, value, ok, rule in checks if not ok]
        return [("allowed_cidrs", problem) for problem in self._cidr_problems()] + failed

    def _cidr_problems(self) -> list[str]:
        if not self.allowed_cidrs:
            return ["allowed_cidrs is empty: name the networks that may reach MLflow and the service"]
        problems = []
        for cidr in self.allowed_cidrs:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError:
                problems.append(f"allowed_cidrs: {cidr!r} is not a CIDR block")
                continue
            if network.version != 4:
                problems.append(f"allowed_cidrs: {cidr} is not an IPv4 block (the load balancer is IPv4 only)")
            elif network.prefixlen < MIN_PREFIX:  # 0.0.0.0/1 + 128.0.0.0/1 would be the whole internet
                problems.append(
                    f"allowed_cidrs: {cidr} is wider than /{MIN_PREFIX}; name the networks that need access"
                )
        return problems


CONTEXT_KEY = "mhist"
# the other settings a rule reads: not judged against a default standing in for a value of the wrong type
READS = {
    "nat_gateways": ("max_azs",),
    "alarm_db_free_storage_gb": ("db_allocated_storage_gb",),
    "service_max_instances": ("service_min_instances",),
    "service_desired_instances": ("service_min_instances", "service_max_instances"),
    "public_host_names": ("certificate_arn",),
}
# settings that may be null, with a value of the type they take otherwise
OPTIONAL = {
    "service_desired_instances": 0,
    "service_requests_per_target": 0,
    "lambda_reserved_concurrency": 0,
    "certificate_arn": "",
}
MIN_PREFIX = 8
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+")
HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.IGNORECASE)


def _overrides(context: Mapping[str, Any]) -> dict[str, Any]:
    """``-c mhist.<key>=<value>`` pairs, as ``{key: value}``."""
    prefix = CONTEXT_KEY + "."
    return {key.removeprefix(prefix): value for key, value in context.items() if key.startswith(prefix)}


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


def _unknown(key: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _as_type_of(default: object, value: object, *, nullable: bool = False) -> tuple[object, str]:
    """``value`` as the type of the setting's default, or why it cannot be: (value, problem)."""
    if nullable and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none"))):
        return None, ""
    if isinstance(default, bool):
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", ""
        return value, "" if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value), ""
        return value, "" if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip()), ""
        ok = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        return (tuple(value), "") if ok else (value, "must be a list of strings")
    return value, "" if isinstance(value, str) else "must be a string"
