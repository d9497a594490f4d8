"""Dagster ops: each wires one domain step, passes file paths on and reports metadata."""
