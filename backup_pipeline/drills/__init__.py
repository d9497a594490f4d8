"""Restore drills: a backup restored into a scratch database and folder, compared with its
manifest, and dropped again. Knows nothing of Dagster."""
