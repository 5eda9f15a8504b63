"""The one public door of the EC2 side: an internet-facing Application Load Balancer that only
``allowed_cidrs`` reach. With a certificate it speaks HTTPS (port 80 only redirects) and publishes
MLflow on its own HTTPS listener; without one it serves the inference service over HTTP and MLflow
stays private (Session Manager port forwarding), so its basic-auth password never crosses the
internet in clear. The instances behind it accept traffic from its security group alone."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra_stack.nag import checkov_skip
from infra_stack.settings import AccessSettings

HTTP, HTTPS = 80, 443


class LoadBalancer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        settings: AccessSettings,
        mlflow_port: int,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        ports = (HTTP, HTTPS, mlflow_port) if settings.certificate_arn else (HTTP,)
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=vpc, allow_all_outbound=False, description="The load balancer: allowed networks only"
        )
        for cidr in settings.allowed_cidrs:
            for port in ports:
                self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"{port} from {cidr}")
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            vpc_subnets=subnets,
            internet_facing=True,
            security_group=self.security_group,
            drop_invalid_header_fields=True,
        )
        self.alb.log_access_logs(access_logs, "load-balancer")
        self.mlflow_listener: elbv2.ApplicationListener | None = None
        if settings.certificate_arn:
            tls = {
                "certificates": [elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
                "ssl_policy": elbv2.SslPolicy.RECOMMENDED_TLS,
                "open": False,
            }
            self.service_listener = self.alb.add_listener("Https", port=HTTPS, **tls)
            self.mlflow_listener = self.alb.add_listener(
                "Mlflow", port=mlflow_port, protocol=elbv2.ApplicationProtocol.HTTPS, **tls
            )
            self.alb.add_listener(
                "Http",
                port=HTTP,
                open=False,
                default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port=str(HTTPS), permanent=True),
            )
        else:
            self.service_listener = self.alb.add_listener("Http", port=HTTP, open=False)
            for check in ("CKV_AWS_2", "CKV_AWS_103"):
                checkov_skip(
                    self.service_listener,
                    check,
                    "No certificate_arn yet: plain HTTP from allowed_cidrs "
                    "until one is set, and then this listener only redirects to HTTPS.",
                )
        self.scheme = "https" if settings.certificate_arn else "http"
        # the names clients use, first the one the outputs give: one the certificate covers, else its own
        self.host_names = [*settings.public_host_names, self.alb.load_balancer_dns_name]
