"""The AWS stack, proven offline: assertions on the synthesized template, cdk-nag, cfn-lint and
`cdk synth` through the npm-pinned CLI. No AWS account is reachable here; nothing is deployed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from infra_stack.settings import (
    AccessSettings,
    AlarmSettings,
    LambdaSettings,
    NetworkSettings,
    ServedModelSettings,
    ServiceSettings,
    SettingsError,
    StackSettings,
    TrackingSettings,
    settings_table,
)
from tests.conftest import REPO
from tests.stacks import CONTEXT, resources, service_script, stack_in, synth

ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_VERSION_CHECK": "1"}


def test_network_has_two_azs_one_nat_and_an_s3_gateway_endpoint(template: Template) -> None:
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    assert len(resources(template, "AWS::EC2::Subnet")) == 4  # public + private in each of 2 AZs
    endpoints = resources(template, "AWS::EC2::VPCEndpoint").values()
    assert [e["Properties"].get("VpcEndpointType", "Gateway") for e in endpoints] == ["Gateway"]
    template.resource_count_is("AWS::EC2::FlowLog", 1)


def test_interface_endpoints_are_a_switch(tmp_path: Path) -> None:
    _, template = synth(tmp_path, interface_endpoints=True)
    endpoints = resources(template, "AWS::EC2::VPCEndpoint").values()
    types = sorted(e["Properties"].get("VpcEndpointType", "Gateway") for e in endpoints)
    assert types == ["Gateway"] + ["Interface"] * 7


def test_nothing_is_open_to_the_internet(template: Template) -> None:
    for group in resources(template, "AWS::EC2::SecurityGroup").values():
        assert group["Properties"].get("GroupDescription")
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"
            assert rule.get("CidrIpv6") != "::/0"
    for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        assert rule["Properties"].get("CidrIp") != "0.0.0.0/0"
    from_networks = [
        (r["CidrIp"], r["FromPort"])
        for g in resources(template, "AWS::EC2::SecurityGroup").values()
        for r in g["Properties"].get("SecurityGroupIngress", [])
        if "CidrIp" in r
    ]
    assert from_networks == [("203.0.113.0/24", 80)]  # the load balancer; without a certificate, MLflow is private


def test_artifact_bucket_is_private_encrypted_versioned_and_tls_only(stack_template: tuple) -> None:
    stack, template = stack_template
    bucket_id = stack.get_logical_id(stack.tracking.bucket.node.default_child)
    bucket = resources(template, "AWS::S3::Bucket")[bucket_id]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    blocks = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(blocks, True)
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert "LoggingConfiguration" in bucket
    policies = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )


def test_database_is_private_encrypted_backed_up_with_a_generated_secret(template: Template) -> None:
    template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "StorageEncrypted": True,
            "PubliclyAccessible": False,
            "BackupRetentionPeriod": 7,
            "DeletionProtection": True,
            "DBName": "mlflow",
            "CACertificateIdentifier": "rds-ca-rsa2048-g1",
        },
    )
    # RDS refuses connections without TLS (PostgreSQL's own default on RDS since 15, pinned here)
    template.has_resource_properties("AWS::RDS::DBParameterGroup", {"Parameters": {"rds.force_ssl": "1"}})
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"SecretStringTemplate": '{"username":"mlflow"}'})},
    )


def test_deletion_protection_is_a_parameter(tmp_path: Path) -> None:
    _, template = synth(tmp_path, db_deletion_protection=False)
    template.has_resource_properties("AWS::RDS::DBInstance", {"DeletionProtection": False})


def test_instances_require_imdsv2_have_no_ssh_key_and_encrypted_disks(template: Template) -> None:
    (instance,) = resources(template, "AWS::EC2::Instance").values()  # MLflow; the service is a group
    templates = [
        t["Properties"]["LaunchTemplateData"] for t in resources(template, "AWS::EC2::LaunchTemplate").values()
    ]
    assert len(templates) == 2
    assert [t["MetadataOptions"]["HttpTokens"] for t in templates] == ["required"] * 2
    service = next(t for t in templates if "BlockDeviceMappings" in t)
    for properties in (instance["Properties"], service):
        assert "KeyName" not in properties
        assert properties["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert instance["Properties"]["Monitoring"] is True
    assert service["Monitoring"] == {"Enabled": True}


def test_models_live_on_encrypted_backed_up_efs_with_an_access_point(template: Template) -> None:
    template.has_resource_properties("AWS::EFS::FileSystem", {"Encrypted": True, "BackupPolicy": {"Status": "ENABLED"}})
    access_point = {
        "RootDirectory": Match.object_like({"Path": "/models"}),
        "PosixUser": {"Uid": "1000", "Gid": "1000"},
    }
    template.has_resource_properties("AWS::EFS::AccessPoint", access_point)


def test_lambda_is_an_image_mounting_the_models(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "PackageType": "Image",
            "MemorySize": 3008,
            "Timeout": 29,
            "Environment": {
                "Variables": {
                    "MODEL_ROOT": "/mnt/models",
                    "MODEL_NAME": "vit_base_patch16_224",
                    "MODEL_VARIANT": "auto",
                }
            },
            "FileSystemConfigs": [Match.object_like({"LocalMountPath": "/mnt/models"})],
            "VpcConfig": Match.any_value(),
            "ReservedConcurrentExecutions": Match.absent(),
        },
    )


def test_the_service_alone_may_serve_bf16(tmp_path: Path) -> None:
    """bf16 is computed by OpenVINO, which only the EC2 image has: the Lambda keeps model_variant."""
    _, template = synth(tmp_path, service_model_variant="bf16")
    variants = [
        f["Properties"]["Environment"]["Variables"].get("MODEL_VARIANT")
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("PackageType") == "Image"
    ]
    assert variants == ["auto"]
    assert 'MODEL_VARIANT="bf16"' in service_script(template)


def test_api_takes_images_with_keys_throttling_and_access_logs(template: Template) -> None:
    template.has_resource_properties("AWS::ApiGateway::RestApi", {"BinaryMediaTypes": Match.array_with(["image/*"])})
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40})]
            ),
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Throttle": {"RateLimit": 20, "BurstLimit": 40}, "Quota": {"Limit": 10000, "Period": "DAY"}},
    )
    template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    methods = [
        m["Properties"]
        for m in resources(template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    assert len(methods) == 6  # predict, predict/batch, explain, health, ready, metadata
    assert all(m["ApiKeyRequired"] for m in methods)


def test_every_log_group_has_a_retention(template: Template) -> None:
    groups = resources(template, "AWS::Logs::LogGroup").values()
    assert len(groups) == 6  # flow logs, Lambda, API access, MLflow server, service, sync function
    assert {g["Properties"]["RetentionInDays"] for g in groups} == {30}


def test_alarms_dashboard_and_budget(template: Template) -> None:
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    names = {a["AlarmDescription"].removeprefix("MHIST: ") for a in alarms}
    assert names == {
        "LambdaErrors",
        "LambdaThrottles",
        "LambdaP99Duration",
        "Api5xx",
        "ApiLatency",
        "DbCpu",
        "DbFreeStorage",
        "MlflowStatusCheck",
        "MlflowCpu",
        "ServiceStatusCheck",
        "ServiceCpu",
        "ServiceUnhealthyHosts",
        "Service5xx",
        "LoadBalancer5xx",
        "SyncErrors",
        "SyncDeadLetters",
    }
    assert all(a["AlarmActions"] for a in alarms)
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-alerts@example.com"}
    )
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    (budget,) = resources(template, "AWS::Budgets::Budget").values()
    notes = budget["Properties"]["NotificationsWithSubscribers"]
    assert sorted(n["Notification"]["Threshold"] for n in notes) == [80, 100]
    assert budget["Properties"]["Budget"]["BudgetLimit"] == {"Amount": 250, "Unit": "USD"}


def test_outputs_say_where_everything_is(template: Template) -> None:
    outputs = template.find_outputs("*")
    ours = {"ApiUrl", "ApiKeyId", "ServiceUrl", "MlflowPortForward", "MlflowCredentials", "ArtifactBucket"}
    assert ours <= set(outputs)
    assert "MlflowUrl" not in outputs  # only when the load balancer publishes MLflow (certificate_arn)


def test_sync_function_is_notified_of_the_serving_prefix(template: Template) -> None:
    """Of files put and of files deleted: the store mirrors serving/ (a run without int8 deletes the old one)."""
    (notifications,) = template.find_resources("Custom::S3BucketNotifications").values()
    configurations = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert sorted(event for c in configurations for event in c["Events"]) == [
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    ]
    assert all(
        c["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "serving/"}]}} for c in configurations
    )
    assert len({json.dumps(c["LambdaFunctionArn"]) for c in configurations}) == 1


def test_cdk_nag_finds_nothing_unacknowledged_and_catches_a_real_finding(tmp_path: Path) -> None:
    app = cdk.App(context=CONTEXT, outdir=str(tmp_path / "clean"))
    stack_in(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises on any unacknowledged finding
    acknowledged = json.loads((tmp_path / "clean" / "MhistMlops.metadata.json").read_text())  # the README's file
    rules = {
        rule
        for entries in acknowledged.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
    }
    assert "Annotation::AwsSolutions-APIG4" in rules
    assert json.loads((tmp_path / "clean" / "validation-report.json").read_text())["pluginReports"] == []

    bad = cdk.App(context=CONTEXT, outdir=str(tmp_path / "bad"))
    stack = stack_in(bad)
    open_sg = ec2.SecurityGroup(stack, "Open", vpc=stack.network.vpc, description="deliberately open")
    open_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(22))
    Validations.of(bad).add_plugins(AwsSolutionsChecks(bad))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        bad.synth()
    report = json.loads((tmp_path / "bad" / "validation-report.json").read_text())
    rules = {v["ruleName"] for v in report["pluginReports"][0]["violations"]}
    assert "AwsSolutions-EC23" in rules


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"allowed_cidrs": ["0.0.0.0/0"]}, "allowed_cidrs=['0.0.0.0/0']: 0.0.0.0/0 is wider than /8"),
        ({"allowed_cidrs": ["2001:db8::/32"]}, "allowed_cidrs=['2001:db8::/32']: 2001:db8::/32 is not an IPv4 block"),
        ({"allowed_cidrs": []}, "allowed_cidrs=[]: empty"),
        ({"allowed_cidrs": ["10.0.0/8"]}, "allowed_cidrs=['10.0.0/8']: '10.0.0/8' is not a CIDR block"),
        ({"nat_gateways": 0}, "nat_gateways=0: Input should be greater than or equal to 1"),
        ({"nat_gateways": 3}, "nat_gateways=3: must be at most max_azs"),
        ({"service_max_instances": 1}, "service_max_instances=1: must be above service_min_instances"),
        ({"service_desired_instances": 3}, "service_desired_instances=3: must be null or service_min_instances"),
        ({"service_cpu_target_percent": 0}, "service_cpu_target_percent=0: Input should be greater than or equal"),
        ({"certificate_arn": "my-cert"}, "certificate_arn='my-cert': must be null or an ACM certificate ARN"),
        ({"public_host_names": ["ml.example.org"]}, "public_host_names=('ml.example.org',): must be the names"),
        ({"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b"}, "public_host_names=(): must be"),
        (
            {"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b", "public_host_names": ["a_b"]},
            "public_host_names='a_b': must be DNS names",
        ),
        ({"alarm_email": "nobody"}, "alarm_email='nobody': must be an e-mail address"),
        ({"lambda_timeout_s": 60}, "lambda_timeout_s=60: Input should be less than or equal to 29 (at most API Gat"),
        ({"log_retention_days": 31}, "log_retention_days=31: CloudWatch keeps logs for 1, 3, 5"),
        ({"instance_tpye": "t3.small"}, "instance_tpye='t3.small': not a setting"),
        ({"db_instance_type": "db.t4g.micro"}, "db_instance_type='db.t4g.micro': give it without 'db.'"),
        ({"mlflow_instance_type": "big"}, "mlflow_instance_type='big': must be an instance type like t3.small"),
        ({"lambda_reserved_concurrency": 0}, "lambda_reserved_concurrency=0: Input should be greater than or equal"),
        ({"lambda_reserved_concurrency": "ten"}, "lambda_reserved_concurrency='ten': Input should be a valid integer"),
        ({"alarm_db_free_storage_gb": 20}, "alarm_db_free_storage_gb=20: must be below db_allocated_storage_gb"),
        ({"model_name": "vit/base"}, "model_name='vit/base': must be a folder name"),
        ({"model_variant": "bf16"}, "model_variant='bf16': must be auto, fp32 or int8 (bf16: service_model_variant)"),
        ({"service_model_variant": "fp16"}, "service_model_variant='fp16': Input should be 'auto', 'fp32', 'int8'"),
        ({"max_azs": 2.5}, "max_azs=2.5: Input should be a valid integer"),
        ({"db_deletion_protection": "maybe"}, "db_deletion_protection='maybe': Input should be a valid boolean"),
        ({"stack_name": "1x"}, "stack_name='1x': must be a CloudFormation stack name"),
    ],
)
def test_bad_settings_are_named(overrides: dict, named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        StackSettings.from_context({"mhist": {**CONTEXT["mhist"], **overrides}})
    assert str(refused.value).startswith(f"cdk context 'mhist': {named}")


def test_every_bad_setting_is_named_at_once() -> None:
    """Each was found one deploy at a time, and a string where a number belongs was a TypeError."""
    context = {
        "mhist": {
            **CONTEXT["mhist"],
            "service_port": 70000,
            "db_backup_days": 0,
            "alarm_email": "a@b",
            "db_allocated_storage_gb": "lots",
        }
    }
    with pytest.raises(SettingsError) as error:
        StackSettings.from_context({**context, "mhist.alarm_emial": "me@example.org"})
    named = [problem.split("=")[0] for problem in str(error.value).removeprefix("cdk context 'mhist': ").split("; ")]
    assert named == ["db_allocated_storage_gb", "db_backup_days", "service_port", "alarm_email", "alarm_emial"]


def test_every_broken_rule_across_settings_is_named_at_once() -> None:
    """Each section adds its rules to the whole's, so one deploy attempt names them all."""
    context = {"nat_gateways": 3, "service_max_instances": 1, "alarm_db_free_storage_gb": 30}
    with pytest.raises(SettingsError) as error:
        StackSettings.from_context({"mhist": {**CONTEXT["mhist"], **context}})
    named = [problem.split("=")[0] for problem in str(error.value).removeprefix("cdk context 'mhist': ").split("; ")]
    assert named == ["nat_gateways", "service_max_instances", "alarm_db_free_storage_gb"]


def test_each_construct_takes_its_own_section_and_every_setting_is_in_one() -> None:
    sections = [NetworkSettings, AccessSettings, TrackingSettings, ServedModelSettings, LambdaSettings]
    sections += [ServiceSettings, AlarmSettings]
    fields = [name for section in sections for name in section.model_fields]
    assert len(fields) == len(set(fields))  # no setting in two sections
    assert set(StackSettings.model_fields) - set(fields) == {"stack_name", "log_retention_days"}  # the stack's own
    settings = StackSettings.from_context({"mhist": {**CONTEXT["mhist"], "service_port": "9000"}})
    service = settings.section(ServiceSettings)
    assert (type(service), service.service_port, service.service_max_instances) == (ServiceSettings, 9000, 2)
    assert set(service.model_dump()) == set(ServiceSettings.model_fields)


def test_one_setting_at_a_time_from_the_command_line() -> None:
    """``cdk deploy -c mhist.<key>=<value>``: the CLI passes every -c value as a string. ``-c mhist='{...}'``
    (a JSON string) replaced the block and was a ValueError traceback."""
    settings = StackSettings.from_context(
        {
            "mhist": CONTEXT["mhist"],
            "mhist.max_azs": "3",
            "mhist.db_deletion_protection": "False",
            "mhist.allowed_cidrs": "10.0.0.0/8, 192.168.1.0/24",
            "mhist.alarm_email": "me@example.org",
            "@aws-cdk/core:newStyleStackSynthesis": True,  # the CDK's own keys are not settings
        }
    )
    assert (settings.max_azs, settings.db_deletion_protection) == (3, False)
    assert settings.allowed_cidrs == ("10.0.0.0/8", "192.168.1.0/24")
    assert (settings.alarm_email, settings.service_port) == ("me@example.org", 8080)  # the rest: defaults
    whole = StackSettings.from_context({"mhist": json.dumps({**CONTEXT["mhist"], "budget_monthly_usd": 40})})
    assert whole.budget_monthly_usd == 40
    with pytest.raises(SettingsError, match=r"^-c mhist=\.\.\.: not JSON \(Expecting"):
        StackSettings.from_context({"mhist": '{"max_azs": 3'})


def test_the_docs_settings_table_is_the_models() -> None:
    """Defaults live in the model alone; docs/aws.md shows its table, cdk.json only what must be set."""
    assert settings_table() in (REPO / "docs" / "aws.md").read_text()
    assert set(CONTEXT["mhist"]) == {"allowed_cidrs", "alarm_email"}  # no usable default: the user's to say
    assert StackSettings.from_context({"mhist": CONTEXT["mhist"]}).model_dump(exclude=set(CONTEXT["mhist"])) == {
        name: field.default for name, field in StackSettings.model_fields.items() if name not in CONTEXT["mhist"]
    }


def test_a_bad_setting_ends_cdk_synth_in_one_line() -> None:
    cli = REPO / "node_modules" / ".bin" / "cdk"
    result = subprocess.run(
        [str(cli), "synth", "--no-notices", "-q", "-c", "mhist.service_port=http"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "error: cdk context 'mhist': service_port='http': Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_cdk_synth_through_the_pinned_cli_and_cfn_lint(tmp_path: Path) -> None:
    cli = REPO / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "run `npm ci` (make venv does) to install the pinned CDK CLI"
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(cli), "synth", "--no-notices", "-q", "-o", str(out), "-c", "mhist.alarm_email=ops@example.org"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr
    assert "feature flags" not in result.stderr  # "82 feature flags are not configured" before cdk.json set them
    template = out / "MhistMlops.template.json"
    assert (out / "validation-report.json").exists()  # the files the README names
    assert (out / "MhistMlops.metadata.json").exists()
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(template)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout
    subscriptions = Template.from_json(json.loads(template.read_text())).find_resources("AWS::SNS::Subscription")
    assert [r["Properties"]["Endpoint"] for r in subscriptions.values()] == ["ops@example.org"]


def test_workflows_are_valid_and_deploy_without_stored_keys() -> None:
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, workflows),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import yaml

    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    commands = " ".join(step.get("run", "") for step in ci["jobs"]["test"]["steps"])
    assert all(target in commands for target in ("make lint", "make test", "make synth"))
    deploy_text = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    deploy = yaml.safe_load(deploy_text)
    assert deploy["permissions"]["id-token"] == "write"
    steps = deploy["jobs"]["deploy"]["steps"]
    credentials = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials"))
    assert "role-to-assume" in credentials["with"]
    assert "aws-access-key-id" not in deploy_text
