"""Restoring a backup: verify first, preview, then a safety backup and an atomic swap of the
database and the documents; and importing archives made elsewhere."""
