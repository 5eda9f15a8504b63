"""Network: two AZs; public subnets hold only the load balancer and the NAT gateway, private ones the rest;
an S3 gateway endpoint; interface endpoints behind a switch."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_stack.log_groups import log_group
from infra_stack.nag import acknowledger
from infra_stack.settings import NetworkSettings

INTERFACE_ENDPOINTS = {
    "Ecr": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "SsmMessages": ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
    "Ec2Messages": ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
}


class Network(Construct):
    """Private parts install their software through the NAT gateway and reach S3 through the gateway
    endpoint; the interface endpoints, when switched on, keep AWS API traffic off the NAT."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: NetworkSettings,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24),
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        self.public = ec2.SubnetSelection(subnet_group_name="public")
        self.private = ec2.SubnetSelection(subnet_group_name="private")
        flow_logs = log_group(self, "FlowLogs", log_retention)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        if settings.interface_endpoints:
            endpoint_sg = ec2.SecurityGroup(
                self, "EndpointSg", vpc=self.vpc, description="HTTPS to interface endpoints from inside the VPC"
            )
            endpoint_sg.add_ingress_rule(
                ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(443), "HTTPS from the VPC"
            )
            acknowledger(endpoint_sg)(
                id="AwsSolutions-EC23",
                reason="The only ingress is 443 from the VPC's own CIDR (a token the rule cannot resolve).",
            )
            for name, service in INTERFACE_ENDPOINTS.items():
                self.vpc.add_interface_endpoint(
                    name, service=service, subnets=self.private, security_groups=[endpoint_sg]
                )
