"""Monitoring: an SNS topic by e-mail, CloudWatch alarms, a small dashboard, a monthly budget."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

FIVE_MINUTES = Duration.minutes(5)


def _ec2_metric(instance: ec2.Instance, name: str, statistic: str = "Maximum") -> cw.Metric:
    return cw.Metric(
        namespace="AWS/EC2",
        metric_name=name,
        dimensions_map={"InstanceId": instance.instance_id},
        statistic=statistic,
        period=FIVE_MINUTES,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        email: str,
        function: lambda_.IFunction,
        api: apigw.RestApi,
        instances: dict[str, ec2.Instance],
        database: rds.DatabaseInstance,
        lambda_p99_ms: int,
        api_latency_ms: int,
        cpu_percent: int,
        db_free_storage_gb: int,
        budget_usd: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name="MHIST MLOps alarms",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        self.topic.add_subscription(subscriptions.EmailSubscription(email))
        action = cw_actions.SnsAction(self.topic)
        gte = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        alarms: dict[str, tuple[cw.IMetric, float, cw.ComparisonOperator]] = {
            "LambdaErrors": (function.metric_errors(period=FIVE_MINUTES), 1, gte),
            "LambdaThrottles": (function.metric_throttles(period=FIVE_MINUTES), 1, gte),
            "LambdaP99Duration": (function.metric_duration(period=FIVE_MINUTES, statistic="p99"), lambda_p99_ms, gte),
            "Api5xx": (api.metric_server_error(period=FIVE_MINUTES), 1, gte),
            "ApiLatency": (api.metric_latency(period=FIVE_MINUTES, statistic="p99"), api_latency_ms, gte),
            "DbCpu": (database.metric_cpu_utilization(period=FIVE_MINUTES), cpu_percent, gte),
            "DbFreeStorage": (
                database.metric_free_storage_space(period=FIVE_MINUTES),
                db_free_storage_gb * 1024**3,
                cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        }
        for name, instance in instances.items():
            alarms[f"{name}StatusCheck"] = (_ec2_metric(instance, "StatusCheckFailed"), 1, gte)
            alarms[f"{name}Cpu"] = (_ec2_metric(instance, "CPUUtilization", "Average"), cpu_percent, gte)
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
                title="EC2 CPU", left=[_ec2_metric(i, "CPUUtilization", "Average") for i in instances.values()]
            ),
            cw.GraphWidget(
                title="RDS CPU and free storage",
                left=[database.metric_cpu_utilization()],
                right=[database.metric_free_storage_space()],
            ),
        )

        notify = [budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=email)]
        budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=budget_usd, unit="USD"),
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
