"""The offsite target for Dagster runs: OFFSITE_URL and friends, read when a run starts.

The S3 client comes from dagster-aws's S3Resource, built at run time from the target's
endpoint and region, so changing S3_ENDPOINT_URL needs no code location reload and a run
with offsite copies off never needs credentials. Keys set in the environment are bound with
`dg.EnvVar` (the UI shows only the variable's name); unset, boto3 finds credentials its usual
way (profiles, instance roles).
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from backup_pipeline.offsite import config as offsite_config
from backup_pipeline.offsite.config import OffsiteConfig

ENV = {"url": "OFFSITE_URL", "endpoint_url": "S3_ENDPOINT_URL",
       "age_recipients": "OFFSITE_AGE_RECIPIENTS", "encryption": "OFFSITE_ENCRYPTION",
       "object_lock_days": "OFFSITE_OBJECT_LOCK_DAYS", "region": "AWS_REGION",
       "identity_file": "AGE_IDENTITY_FILE"}
S3_MAX_ATTEMPTS = 5


class OffsiteResource(dg.ConfigurableResource):
    """Where copies go; an unset field falls back to its environment variable at run time."""

    url: str | None = Field(default=None, description="s3://bucket[/prefix]; unset: "
                            "OFFSITE_URL (unset too: no offsite copies).")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint; "
                                     "unset: S3_ENDPOINT_URL, else AWS.")
    region: str | None = Field(default=None, description="Unset: AWS_REGION.")
    age_recipients: str | None = Field(default=None, description="Comma-separated age public "
                                       "keys; unset: OFFSITE_AGE_RECIPIENTS.")
    encryption: str | None = Field(default=None, description="none to copy unencrypted.")
    object_lock_days: str | None = Field(default=None, description="Unset: "
                                         "OFFSITE_OBJECT_LOCK_DAYS.")
    identity_file: str | None = Field(default=None, description="Unset: AGE_IDENTITY_FILE.")
    aws_access_key_id: str | None = Field(default=None, description="Use "
                                          "dg.EnvVar('AWS_ACCESS_KEY_ID').")
    aws_secret_access_key: str | None = Field(default=None, description="Use "
                                              "dg.EnvVar('AWS_SECRET_ACCESS_KEY').")

    def config(self) -> OffsiteConfig | None:
        """The target, or None when copies are off; a bad setting raises ConfigError."""
        env = {var: os.environ.get(var, "") for var in ENV.values()}
        for field, var in ENV.items():
            value = getattr(self, field)
            if value:
                env[var] = value
        return offsite_config.from_env(env)

    def client(self, config: OffsiteConfig):
        # imported here: dagster_aws costs about 0.3 s to import (it pulls in Dagster's test
        # utilities and daemon), and only a run that copies offsite needs it
        from dagster_aws.s3 import S3Resource

        return S3Resource(endpoint_url=config.endpoint_url, region_name=config.region,
                          max_attempts=S3_MAX_ATTEMPTS, aws_access_key_id=self.aws_access_key_id,
                          aws_secret_access_key=self.aws_secret_access_key).get_client()


def offsite_resource_from_env() -> OffsiteResource:
    """The resource for definitions.py; checks the offsite settings when the code location
    loads, so a bad one is refused at start with one line."""
    offsite_config.from_env()
    keys = {field: dg.EnvVar(var) for field, var in
            (("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
             ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")) if os.environ.get(var)}
    return OffsiteResource(**keys)
