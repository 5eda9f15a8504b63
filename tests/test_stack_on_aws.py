"""The stack as a real AWS account meets it. AWS itself cannot be reached here, so each test encodes
a documented AWS behaviour as an assertion on the synthesized template (the behaviour is named in
the test), and two checkers nobody here wrote read the result: checkov and shellcheck."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from tests.conftest import REPO
from tests.stacks import CONTEXT, resources, service_script, stack_in, synth, user_data

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
# Recommended flags we do not take, and why.
FLAG_DEVIATIONS = {"@aws-cdk/core:enableAdditionalMetadataCollection": False}  # construct metadata sent to AWS
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def with_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return synth(tmp_path_factory.mktemp("tls"), certificate_arn=CERTIFICATE, public_host_names=["ml.example.org"])


def logical_id(stack: cdk.Stack, construct: object) -> str:
    return stack.get_logical_id(construct.node.default_child)


def statements(template: Template, role_id: str) -> list[dict]:
    """Every IAM statement of the policies attached to a role."""
    return [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


# --- deploys on a fresh account ---------------------------------------------------------------------------


def test_no_concurrency_is_reserved_unless_asked(tmp_path: Path, template: Template) -> None:
    """Lambda refuses a reservation that leaves less than 10 unreserved executions, and new accounts have a
    limit of 10: a default reservation fails stack creation (and rolls RDS back with it)."""
    functions = resources(template, "AWS::Lambda::Function").values()
    assert not any("ReservedConcurrentExecutions" in f["Properties"] for f in functions)
    _, reserved = synth(tmp_path, lambda_reserved_concurrency=5)
    reserved.has_resource_properties(
        "AWS::Lambda::Function", {"PackageType": "Image", "ReservedConcurrentExecutions": 5}
    )


def test_every_recommended_feature_flag_of_the_pinned_cdk_is_set() -> None:
    """What `cdk init` writes for the installed aws-cdk-lib (its recommended-feature-flags.json)."""
    import aws_cdk

    (bundle,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(bundle) as archive:
        recommended = json.load(archive.extractfile("package/recommended-feature-flags.json"))
    expected = {**recommended, **FLAG_DEVIATIONS}
    assert {flag: CONTEXT.get(flag) for flag in expected} == expected


def test_telemetry_and_version_reporting_are_off(template: Template) -> None:
    """The CDK CLI sends usage telemetry, and every deploy reports the construct library's version in an
    AWS::CDK::Metadata resource, unless the project turns both off."""
    project = json.loads((REPO / "cdk.json").read_text())
    assert project["versionReporting"] is False
    assert not resources(template, "AWS::CDK::Metadata")
    env = {  # HOME nowhere: no ~/.cdk.json of the developer's can switch it off for us
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "HOME": "/nonexistent",
        "PATH": "/usr/bin:/bin",
    }
    status = subprocess.run(
        [str(REPO / "node_modules" / ".bin" / "cdk"), "cli-telemetry", "--status"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Telemetry is disabled" in status.stdout + status.stderr


def test_launch_templates_have_no_names_that_collide_across_stacks(tmp_path: Path) -> None:
    """Launch template names are unique per account and region: a fixed name fails the second stack."""
    app = cdk.App(context=CONTEXT, outdir=str(tmp_path))
    stacks = [stack_in(app, name) for name in ("MhistA", "MhistB")]
    names = [
        t["Properties"].get("LaunchTemplateName")
        for stack in stacks
        for t in resources(Template.from_stack(stack), "AWS::EC2::LaunchTemplate").values()
    ]
    given = [name for name in names if name is not None]
    assert len(given) == len(set(given)) == 2  # MLflow's IMDSv2 template in each stack, named after its stack
    assert all(name.startswith(("MhistA", "MhistB")) for name in given)


def test_the_ami_is_looked_up_once_and_then_pinned(tmp_path: Path) -> None:
    """`latest_amazon_linux2023()` resolves an SSM parameter at every deploy: a new AMI replaces every
    instance on an unrelated deploy. With an account, the CLI looks it up once into cdk.context.json."""
    first = cdk.App(context=CONTEXT, outdir=str(tmp_path / "first"))
    stack_in(first, account="123456789012")
    first.synth()  # a placeholder AMI does not stop the synth: the CLI looks it up, then synthesizes again
    missing = json.loads((tmp_path / "first" / "manifest.json").read_text())["missing"]
    assert any("ami-amazon-linux-latest/al2023" in entry["key"] for entry in missing)
    answers = {"availability-zones": ["us-east-1a", "us-east-1b"], "ssm": "ami-0123456789abcdef0"}
    looked_up = {entry["key"]: answers[entry["provider"]] for entry in missing}
    app = cdk.App(context={**CONTEXT, **looked_up}, outdir=str(tmp_path / "pinned"))
    pinned = Template.from_stack(stack_in(app, account="123456789012"))
    images = [i["Properties"]["ImageId"] for i in resources(pinned, "AWS::EC2::Instance").values()]
    images += [
        t["Properties"]["LaunchTemplateData"]["ImageId"]
        for t in resources(pinned, "AWS::EC2::LaunchTemplate").values()
        if "ImageId" in t["Properties"]["LaunchTemplateData"]
    ]
    assert images == ["ami-0123456789abcdef0"] * 2
    assert not [p for p in pinned.to_json().get("Parameters", {}) if p.startswith("SsmParameterValue")]


# --- updates on redeploy, and fails when something did not start ------------------------------------------


def test_the_service_is_an_auto_scaling_group_behind_the_load_balancer(stack_template: tuple) -> None:
    stack, template = stack_template
    (group,) = resources(template, "AWS::AutoScaling::AutoScalingGroup").values()
    properties = group["Properties"]
    assert (properties["MinSize"], properties["MaxSize"]) == ("1", "2")
    assert "DesiredCapacity" not in properties  # a desired size in the template resets scaling at every deploy
    # a new launch template version (image, script, AMI) is what CloudFormation rolls out
    assert properties["LaunchTemplate"]["Version"] == {
        "Fn::GetAtt": [logical_id(stack, stack.service.node.find_child("LaunchTemplate")), "LatestVersionNumber"]
    }
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert (rolling["MaxBatchSize"], rolling["MinInstancesInService"], rolling["WaitOnResourceSignals"]) == (1, 1, True)
    assert group["CreationPolicy"]["ResourceSignal"] == {"Count": 1, "Timeout": "PT20M"}
    private = {subnet.subnet_id for subnet in stack.network.vpc.private_subnets}
    assert {json.dumps(s) for s in properties["VPCZoneIdentifier"]} == {json.dumps(stack.resolve(s)) for s in private}
    # EFS: the instances mount at boot, so the group waits for the mount targets
    targets = [k for k, v in resources(template, "AWS::EFS::MountTarget").items()]
    assert set(targets) <= set(group["DependsOn"])

    (target_group,) = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    health = target_group["Properties"]
    assert (health["HealthCheckPath"], health["Matcher"], health["Port"]) == ("/ready", {"HttpCode": "200"}, 8080)
    (policy,) = resources(template, "AWS::AutoScaling::ScalingPolicy").values()
    tracking = policy["Properties"]["TargetTrackingConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    assert tracking["TargetValue"] == 60


def test_group_sizes_and_request_scaling_are_settings(tmp_path: Path) -> None:
    _, template = synth(
        tmp_path,
        service_min_instances=2,
        service_desired_instances=3,
        service_max_instances=4,
        service_requests_per_target=600,
    )
    (group,) = resources(template, "AWS::AutoScaling::AutoScalingGroup").values()
    assert [group["Properties"][k] for k in ("MinSize", "DesiredCapacity", "MaxSize")] == ["2", "3", "4"]
    assert group["UpdatePolicy"]["AutoScalingRollingUpdate"]["MinInstancesInService"] == 2
    policies = resources(template, "AWS::AutoScaling::ScalingPolicy").values()
    tracking = [p["Properties"]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"] for p in policies]
    metrics = sorted(t["PredefinedMetricType"] for t in tracking)
    assert metrics == ["ALBRequestCountPerTarget", "ASGAverageCPUUtilization"]


def test_a_changed_script_replaces_mlflow_and_rolls_the_service(tmp_path: Path) -> None:
    """CloudFormation applies a changed UserData to an AWS::EC2::Instance by stopping and starting it, and
    cloud-init does not run user data again: only a new logical ID replaces it. For the group, a changed
    launch template is a new version, which the rolling update policy replaces instance by instance."""
    before, after = synth(tmp_path / "a"), synth(tmp_path / "b", model_name="mlp", mlflow_port=5001)
    instance_ids = [set(resources(t, "AWS::EC2::Instance")) for _, t in (before, after)]
    assert instance_ids[0] != instance_ids[1]
    scripts = [service_script(template) for _, template in (before, after)]
    assert 'MODEL_NAME="vit_base_patch16_224"' in scripts[0]
    assert 'MODEL_NAME="mlp"' in scripts[1]


def test_every_instance_signals_only_once_it_serves(stack_template: tuple) -> None:
    """A stack reports CREATE_COMPLETE over a dead instance unless it waits for a signal (CreationPolicy),
    and the signal says the script's exit status (cfn-signal -e), after the service answers locally."""
    stack, template = stack_template
    ((instance_id, instance),) = resources(template, "AWS::EC2::Instance").items()
    assert instance["CreationPolicy"]["ResourceSignal"]["Timeout"] == "PT20M"
    mlflow = user_data(instance)
    assert f"cfn-signal --stack MhistMlops --resource {instance_id} " in mlflow
    assert 'wait_until 600 answers "http://127.0.0.1:5000/health"' in mlflow
    assert mlflow.index("dnf install -y aws-cfn-bootstrap") < mlflow.index("pip install")
    assert stack.get_logical_id(stack.tracking.database.node.default_child) in instance["DependsOn"]

    group_id = logical_id(stack, stack.service.group)
    service = service_script(template)
    assert f"cfn-signal --stack MhistMlops --resource {group_id} " in service
    assert "wait_until 600 serving" in service
    assert 'answers "http://127.0.0.1:8080/ready"' in service
    assert "wait_until 300 mount /mnt/efs/models" in service


@pytest.mark.parametrize("which", ["mlflow", "service"])
def test_the_rendered_user_data_passes_shellcheck(template: Template, which: str) -> None:
    """The script as cloud-init runs it: CDK's signal trap, the downloads and our assets, concatenated."""
    (instance,) = resources(template, "AWS::EC2::Instance").values()
    script = user_data(instance) if which == "mlflow" else service_script(template)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "shellcheck"), "-s", "bash", "-S", "warning", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


# --- no open door -------------------------------------------------------------------------------------------


def test_mlflow_is_private_authenticated_and_writes_only_its_own_prefix(stack_template: tuple) -> None:
    stack, template = stack_template
    (instance,) = resources(template, "AWS::EC2::Instance").values()
    private = {json.dumps(stack.resolve(s.subnet_id)) for s in stack.network.vpc.private_subnets}
    assert json.dumps(instance["Properties"]["SubnetId"]) in private
    for subnet in stack.network.vpc.private_subnets:  # no public IP is ever given in these subnets
        assert template.to_json()["Resources"][logical_id(stack, subnet)]["Properties"]["MapPublicIpOnLaunch"] is False
    sg = template.to_json()["Resources"][logical_id(stack, stack.tracking.security_group)]["Properties"]
    assert "SecurityGroupIngress" not in sg  # without a certificate nothing reaches it but Session Manager

    script = user_data(instance)
    assert "bash /opt/mlflow/mlflow_config.sh" in script
    assert logical_id(stack, stack.tracking.admin_secret) in script  # its ARN, read at boot
    assert "password" not in script.lower().replace("pgpass", "")  # never a value, never an option
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": {
                "SecretStringTemplate": '{"username": "admin"}',
                "GenerateStringKey": "password",
                "ExcludePunctuation": True,
                "PasswordLength": 32,
            }
        },
    )

    role = stack.get_logical_id(stack.tracking.server.role.node.default_child)
    bucket = logical_id(stack, stack.tracking.bucket)
    writes = [s for s in statements(template, role) if any(a.startswith(("s3:Put", "s3:Delete")) for a in actions(s))]
    assert writes
    for statement in writes:  # object ARNs (a bucket ARN takes no object writes)
        objects = [r for r in statement["Resource"] if "Fn::Join" in r]
        assert objects == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/mlflow/*"]]}]


def test_nothing_in_the_stack_may_write_the_served_models_prefix(template: Template) -> None:
    """Only the publisher (whoever runs inference.publish, with their own credentials) writes serving/."""
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith(("s3:Put", "s3:Delete", "s3:*")) for a in actions(statement)):
                assert "serving" not in json.dumps(statement["Resource"])
                assert not json.dumps(statement["Resource"]).endswith('"/*"]]}')


def test_instances_are_reached_through_the_load_balancer_only(stack_template: tuple) -> None:
    stack, template = stack_template
    service_sg, alb_sg = logical_id(stack, stack.service.security_group), logical_id(stack, stack.entry.security_group)
    ingress = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [service_sg, "GroupId"]}
    ]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "Description": "Load balancer to target",
            "FromPort": 8080,
            "ToPort": 8080,
            "GroupId": {"Fn::GetAtt": [service_sg, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [alb_sg, "GroupId"]},
        }
    ]
    (listener,) = resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert (listener["Properties"]["Port"], listener["Properties"]["Protocol"]) == (80, "HTTP")
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internet-facing"})


def test_with_a_certificate_everything_public_is_https(with_certificate: tuple) -> None:
    stack, template = with_certificate
    listeners = {
        r["Properties"]["Port"]: r["Properties"]
        for r in resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    }
    assert sorted(listeners) == [80, 443, 5000]
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    for port in (443, 5000):
        assert (listeners[port]["Protocol"], listeners[port]["Certificates"]) == (
            "HTTPS",
            [{"CertificateArn": CERTIFICATE}],
        )
    alb_sg = template.to_json()["Resources"][logical_id(stack, stack.entry.security_group)]["Properties"]
    assert sorted((r["CidrIp"], r["FromPort"]) for r in alb_sg["SecurityGroupIngress"]) == [
        ("203.0.113.0/24", 80),
        ("203.0.113.0/24", 443),
        ("203.0.113.0/24", 5000),
    ]
    (instance,) = resources(template, "AWS::EC2::Instance").values()
    assert 'MLFLOW_ALLOWED_HOSTS="localhost:*,127.0.0.1:*,ml.example.org:5000,' in user_data(instance)
    outputs = template.find_outputs("*")
    assert outputs["ServiceUrl"]["Value"] == "https://ml.example.org/predict"
    assert outputs["MlflowUrl"]["Value"] == "https://ml.example.org:5000"


def test_instance_roles_read_only_their_own_asset_files(stack_template: tuple) -> None:
    """``Asset.grant_read`` grants every object of the CDK staging bucket: every stack's assets."""
    stack, template = stack_template
    for role in (stack.tracking.server.role, stack.service.role):
        reads = [
            s
            for s in statements(template, stack.get_logical_id(role.node.default_child))
            if "cdk-hnb659fds-assets" in json.dumps(s["Resource"])
        ]
        assert reads
        for statement in reads:
            assert actions(statement) == ["s3:GetObject"]
            objects = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(json.dumps(o).count(".") >= 1 and not json.dumps(o).endswith('/*"]]}') for o in objects)


def test_the_model_store_takes_tls_and_iam_only_and_one_writer(stack_template: tuple) -> None:
    """With a file-system policy, EFS evaluates IAM and treats clients that mount without it as anonymous;
    Lambda mounts read-only when its role lacks ClientWrite (AWS Lambda developer guide)."""
    stack, template = stack_template
    (file_system,) = resources(template, "AWS::EFS::FileSystem").values()
    policy = file_system["Properties"]["FileSystemPolicy"]["Statement"]
    assert {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in policy
    sync_role = stack.get_logical_id(stack.sync.function.role.node.default_child)
    (writes,) = [s for s in policy if s["Effect"] == "Deny" and "elasticfilesystem:ClientWrite" in actions(s)]
    assert set(actions(writes)) == {"elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"}
    assert writes["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [sync_role, "Arn"]}}}
    allowed = [a for s in policy if s["Effect"] == "Allow" for a in actions(s)]
    assert "elasticfilesystem:ClientMount" not in allowed  # no mount without IAM: anonymous clients are refused

    def efs_actions(role: object) -> set[str]:
        found = statements(template, stack.get_logical_id(role.node.default_child))
        return {a for s in found for a in actions(s) if a.startswith("elasticfilesystem:")}

    assert efs_actions(stack.api.function.role) == {"elasticfilesystem:ClientMount"}
    assert efs_actions(stack.service.role) == {"elasticfilesystem:ClientMount"}
    assert "elasticfilesystem:ClientWrite" in efs_actions(stack.sync.function.role)
    assert "efs _netdev,tls,iam,ro,accesspoint=" in service_script(template)


def test_the_api_admits_the_allowed_networks_only(template: Template) -> None:
    (api,) = resources(template, "AWS::ApiGateway::RestApi").values()
    deny = next(s for s in api["Properties"]["Policy"]["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}}


# --- alarms that reach someone ------------------------------------------------------------------------------


def test_alarms_publish_to_a_topic_cloudwatch_and_budgets_can_use(stack_template: tuple) -> None:
    """CloudWatch and Budgets cannot publish to a topic encrypted with alias/aws/sns (its key policy is
    AWS's and names neither): the topic's key must let them encrypt, and the topic let them publish."""
    stack, template = stack_template
    key_id = logical_id(stack, stack.node.find_child("Monitoring").key)
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key_policy = template.to_json()["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    (topic_policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    published = topic_policy["Properties"]["PolicyDocument"]["Statement"]
    for service in ("cloudwatch.amazonaws.com", "budgets.amazonaws.com"):
        (use,) = [s for s in key_policy if s.get("Principal") == {"Service": service}]
        assert set(actions(use)) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        assert use["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        (publish,) = [s for s in published if s.get("Principal") == {"Service": service}]
        assert actions(publish) == ["sns:Publish"]
    (budget,) = resources(template, "AWS::Budgets::Budget").values()
    subscribers = [s for n in budget["Properties"]["NotificationsWithSubscribers"] for s in n["Subscribers"]]
    assert {(s["SubscriptionType"], json.dumps(s["Address"])) for s in subscribers} == {
        ("SNS", json.dumps({"Ref": logical_id(stack, stack.node.find_child("Monitoring").topic)}))
    }


def test_a_failed_sync_is_kept_and_alarmed(stack_template: tuple) -> None:
    """S3 invokes the sync function asynchronously: after Lambda's retries, a failed event is dropped
    unless the function has a dead-letter queue (or an on-failure destination)."""
    stack, template = stack_template
    queue = logical_id(stack, stack.sync.dead_letters)
    function = template.to_json()["Resources"][logical_id(stack, stack.sync.function)]["Properties"]
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [queue, "Arn"]}}
    template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2})
    alarms = {
        a["Properties"]["AlarmDescription"]: a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    depth = alarms["MHIST: SyncDeadLetters"]
    assert (depth["MetricName"], depth["Dimensions"][0]["Value"]) == (
        "ApproximateNumberOfMessagesVisible",
        {"Fn::GetAtt": [queue, "QueueName"]},
    )
    assert alarms["MHIST: SyncErrors"]["MetricName"] == "Errors"
    assert alarms["MHIST: ServiceUnhealthyHosts"]["MetricName"] == "UnHealthyHostCount"
    assert alarms["MHIST: LoadBalancer5xx"]["MetricName"] == "HTTPCode_ELB_5XX_Count"
    assert alarms["MHIST: Service5xx"]["MetricName"] == "HTTPCode_Target_5XX_Count"


# --- checked by something nobody here wrote -----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["default", "with_certificate"])
def test_checkov_finds_nothing_that_is_not_acknowledged_with_a_reason(
    variant: str, stack_template: tuple, with_certificate: tuple, tmp_path: Path
) -> None:
    """Every check checkov fails is fixed or skipped on its resource (``Metadata.checkov``, written by
    ``infra_stack.nag.checkov_skip``) with a reason; --skip-download keeps it off the network."""
    assert CHECKOV.exists(), "make venv installs checkov into .venv-checkov (its pins clash with ours)"
    stack, _ = stack_template if variant == "default" else with_certificate
    path = tmp_path / "template.json"
    path.write_text(json.dumps(Template.from_stack(stack).to_json()))
    result = subprocess.run(
        [str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = json.loads(result.stdout)
    report = output["results"]
    failed = [(c["check_id"], c["resource"]) for c in report["failed_checks"]]
    assert failed == []
    assert output["summary"]["passed"] > 200
    skips = report["skipped_checks"]
    assert skips
    assert all(len(s["check_result"]["suppress_comment"]) > 20 for s in skips)


def test_the_lambdas_body_limit_and_api_gateways_refusals_speak_the_apis_json(template: Template) -> None:
    """A Lambda event is at most 6 MB and API Gateway base64-encodes a binary body into it, so the function
    refuses over about 4.4 MB itself; what API Gateway refuses (a key, a size, a throttle) it answers with
    its own {"message": ...} unless a gateway response says otherwise."""
    (function,) = [
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("PackageType") == "Image"
    ]
    variables = function["Environment"]["Variables"]
    assert variables["MAX_IMAGE_BYTES"] == variables["MAX_REQUEST_BYTES"] == "4400000"
    assert 4_400_000 * 4 // 3 + 64 * 1024 < 6 * 1024 * 1024  # one image as base64 in JSON still fits an event
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {
        "INVALID_API_KEY",
        "REQUEST_TOO_LARGE",
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    for properties in responses.values():
        body = properties["ResponseTemplates"]["application/json"].replace("$context.error.messageString", '"m"')
        assert set(json.loads(body)["error"]) == {"code", "message"}
    assert (responses["INVALID_API_KEY"]["StatusCode"], responses["REQUEST_TOO_LARGE"]["StatusCode"]) == ("403", "413")
