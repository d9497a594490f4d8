"""The archive format: a gzip-compressed tar of manifest.json, the database dump and documents.

Knows nothing of PostgreSQL or Dagster; readers and writers stream, so archive size does not
change memory use.
"""
