"""The AWS stack in CDK (Python): one construct per concern, wired in ``stack.py``."""
