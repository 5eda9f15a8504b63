"""Monitoring: an SNS topic by e-mail (encrypted with a key CloudWatch and Budgets may use: they cannot
publish to a topic under ``alias/aws/sns``), CloudWatch alarms, a small dashboard, a monthly budget."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra_stack.settings import AlarmSettings

FIVE_MINUTES = Duration.minutes(5)


def _ec2_metric(dimension: dict[str, str], name: str, statistic: str = "Maximum") -> cw.Metric:
    """An AWS/EC2 metric of one instance (InstanceId) or of a whole group (AutoScalingGroupName)."""
    return cw.Metric(
        namespace="AWS/EC2", metric_name=name, dimensions_map=dimension, statistic=statistic, period=FIVE_MINUTES
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: AlarmSettings,
        function: lambda_.IFunction,
        api: apigw.RestApi,
        mlflow: ec2.Instance,
        service: autoscaling.AutoScalingGroup,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        sync: lambda_.IFunction,
        dead_letters: sqs.IQueue,
        database: rds.DatabaseInstance,
    ) -> None:
        super().__init__(scope, construct_id)
        account, region = Stack.of(self).account, Stack.of(self).region
        publishers = {  # the service principals that publish here, and the sources they act for
            "cloudwatch.amazonaws.com": f"arn:{Stack.of(self).partition}:cloudwatch:{region}:{account}:alarm:*",
            "budgets.amazonaws.com": f"arn:{Stack.of(self).partition}:budgets::{account}:*",
        }
        self.key = kms.Key(
            self,
            "TopicKey",
            description="MHIST alarm topic: CloudWatch alarms and AWS Budgets encrypt what they publish with it",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic = sns.Topic(self, "Alarms", display_name="MHIST MLOps alarms", master_key=self.key, enforce_ssl=True)
        for service_principal, source in publishers.items():
            on_behalf = {"StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": source}}
            principal = iam.ServicePrincipal(service_principal)
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[principal],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions=on_behalf,
                )
            )
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[principal],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions=on_behalf,
                )
            )
        self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        action = cw_actions.SnsAction(self.topic)
        gte = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        mlflow_id = {"InstanceId": mlflow.instance_id}
        group = {"AutoScalingGroupName": service.auto_scaling_group_name}
        alarms: dict[str, tuple[cw.IMetric, float, cw.ComparisonOperator]] = {
            "LambdaErrors": (function.metric_errors(period=FIVE_MINUTES), 1, gte),
            "LambdaThrottles": (function.metric_throttles(period=FIVE_MINUTES), 1, gte),
            "LambdaP99Duration": (
                function.metric_duration(period=FIVE_MINUTES, statistic="p99"),
                settings.alarm_lambda_p99_ms,
                gte,
            ),
            "Api5xx": (api.metric_server_error(period=FIVE_MINUTES), 1, gte),
            "ApiLatency": (
                api.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                settings.alarm_api_latency_ms,
                gte,
            ),
            "DbCpu": (database.metric_cpu_utilization(period=FIVE_MINUTES), settings.alarm_cpu_percent, gte),
            "DbFreeStorage": (
                database.metric_free_storage_space(period=FIVE_MINUTES),
                settings.alarm_db_free_storage_gb * 1024**3,
                cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
            "MlflowStatusCheck": (_ec2_metric(mlflow_id, "StatusCheckFailed"), 1, gte),
            "MlflowCpu": (_ec2_metric(mlflow_id, "CPUUtilization", "Average"), settings.alarm_cpu_percent, gte),
            "ServiceStatusCheck": (_ec2_metric(group, "StatusCheckFailed"), 1, gte),
            "ServiceCpu": (_ec2_metric(group, "CPUUtilization", "Average"), settings.alarm_cpu_percent, gte),
            # a target that fails /ready (no model, a model that does not load, a dead container)
            "ServiceUnhealthyHosts": (target_group.metrics.unhealthy_host_count(period=FIVE_MINUTES), 1, gte),
            "Service5xx": (
                target_group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES),
                1,
                gte,
            ),
            "LoadBalancer5xx": (
                load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES),
                1,
                gte,
            ),
            # the model store is stale: a publish that did not reach EFS
            "SyncErrors": (sync.metric_errors(period=FIVE_MINUTES), 1, gte),
            "SyncDeadLetters": (
                dead_letters.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                1,
                gte,
            ),
        }
        self.alarms = {}
        for name, (metric, threshold, comparison) in alarms.items():
            alarm = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=2 if "Cpu" in name else 1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"MHIST: {name}",
            )
            alarm.add_alarm_action(action)
            self.alarms[name] = alarm

        dashboard = cw.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda duration (p50, p99)",
                left=[function.metric_duration(statistic="p50"), function.metric_duration(statistic="p99")],
            ),
            cw.GraphWidget(
                title="Lambda invocations and errors",
                left=[function.metric_invocations(), function.metric_errors(), function.metric_throttles()],
            ),
            cw.GraphWidget(title="API latency and 5XX", left=[api.metric_latency()], right=[api.metric_server_error()]),
            cw.GraphWidget(
                title="EC2 service: requests per target and healthy hosts",
                left=[target_group.metrics.request_count_per_target()],
                right=[target_group.metrics.healthy_host_count()],
            ),
            cw.GraphWidget(
                title="EC2 CPU",
                left=[
                    _ec2_metric(mlflow_id, "CPUUtilization", "Average"),
                    _ec2_metric(group, "CPUUtilization", "Average"),
                ],
            ),
            cw.GraphWidget(
                title="RDS CPU and free storage",
                left=[database.metric_cpu_utilization()],
                right=[database.metric_free_storage_space()],
            ),
        )

        notify = [budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=self.topic.topic_arn)]
        budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=settings.budget_monthly_usd, unit="USD"),
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type="ACTUAL",
                        comparison_operator="GREATER_THAN",
                        threshold=percent,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=notify,
                )
                for percent in (80, 100)
            ],
        )
        budget.node.add_dependency(self.topic)  # its policy must let Budgets publish before the budget checks
