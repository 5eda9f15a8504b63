"""Every number and name a user would change, from ``cdk.json`` context (key ``mhist``).

Override one at synth/deploy time: ``cdk deploy -c mhist='{"alarm_email": "me@example.org", ...}'``
replaces the whole block, or edit ``cdk.json``. Bad values fail the synth with a message.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import aws_logs as logs

RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
}  # fmt: skip


class SettingsError(ValueError):
    """A context value the stack cannot use; the message names it."""


@dataclass(frozen=True, kw_only=True)
class StackSettings:
    stack_name: str = "MhistMlops"
    max_azs: int = 2
    nat_gateways: int = 0
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
    model_name: str = "vit_base_patch16_224"
    model_variant: str = "auto"
    lambda_memory_mb: int = 3008
    lambda_timeout_s: int = 29
    lambda_reserved_concurrency: int = 10
    api_rate_limit: int = 20
    api_burst_limit: int = 40
    api_quota_per_day: int = 10000
    alarm_lambda_p99_ms: int = 5000
    alarm_api_latency_ms: int = 5000
    alarm_cpu_percent: int = 80
    alarm_db_free_storage_gb: int = 2
    budget_monthly_usd: int = 150

    @property
    def log_retention(self) -> logs.RetentionDays:
        return getattr(logs.RetentionDays, RETENTION[self.log_retention_days])

    @classmethod
    def from_context(cls, context: dict[str, Any] | None) -> StackSettings:
        context = dict(context or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(context) - known)
        if unknown:
            raise SettingsError(f"cdk.json context 'mhist' has unknown key(s) {unknown}")
        if "allowed_cidrs" in context:
            context["allowed_cidrs"] = tuple(context["allowed_cidrs"])
        settings = cls(**context)
        settings.validate()
        return settings

    def validate(self) -> None:
        for cidr in self.allowed_cidrs:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError as error:
                raise SettingsError(f"allowed_cidrs: {cidr!r} is not a CIDR block") from error
            if network.prefixlen == 0:
                raise SettingsError(f"allowed_cidrs: {cidr} opens the services to the whole internet")
        if not self.allowed_cidrs:
            raise SettingsError("allowed_cidrs is empty: name the networks that may reach MLflow and the service")
        if "@" not in self.alarm_email:
            raise SettingsError(f"alarm_email {self.alarm_email!r} is not an e-mail address")
        if not 128 <= self.lambda_memory_mb <= 10240:
            raise SettingsError(f"lambda_memory_mb must be 128..10240, got {self.lambda_memory_mb}")
        if not 1 <= self.lambda_timeout_s <= 29:
            raise SettingsError(f"lambda_timeout_s must be 1..29 (API Gateway's limit), got {self.lambda_timeout_s}")
        if self.model_variant not in ("auto", "fp32", "int8"):
            raise SettingsError(f"model_variant must be auto, fp32 or int8, got {self.model_variant!r}")
        if self.log_retention_days not in RETENTION:
            raise SettingsError(f"log_retention_days must be one of {sorted(RETENTION)}, got {self.log_retention_days}")
        if self.max_azs < 2:
            raise SettingsError("max_azs must be at least 2 (RDS and EFS span two zones)")
