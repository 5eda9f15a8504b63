"""CDK app: ``cdk deploy`` stands up the whole stack. Settings: ``cdk.json`` context key ``mhist``."""

import os

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra_stack.settings import StackSettings
from infra_stack.stack import MhistStack

app = App()
settings = StackSettings.from_context(app.node.try_get_context("mhist"))
env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
MhistStack(app, settings.stack_name, settings=settings, env=env)
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
