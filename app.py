"""CDK app: ``cdk deploy`` stands up the whole stack. Settings: ``cdk.json`` context key ``mhist``,
one at a time with ``-c mhist.<key>=<value>``."""

import os
import sys

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra_stack.settings import SettingsError, StackSettings
from infra_stack.stack import MhistStack

app = App()
try:
    settings = StackSettings.from_context(app.node.get_all_context())
except SettingsError as error:  # one line for the user, not a traceback inside cdk's output
    sys.exit(f"error: {error}")
# The CDK CLI sets both from the credentials and profile it uses (the region at least, offline too);
# the load balancer's access logs need the region at synth.
region = os.environ.get("CDK_DEFAULT_REGION")
if not region:
    sys.exit("error: no AWS region: run through the CDK CLI (cdk synth/deploy), or set CDK_DEFAULT_REGION")
env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=region)
MhistStack(app, settings.stack_name, settings=settings, env=env)
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
