"""The admin HTTP API (`backup-pipeline api`)."""

from backup_pipeline.api.app import create_app

__all__ = ["create_app"]
