"""Dagster resources: thin, typed access to the environment the ops run in."""
