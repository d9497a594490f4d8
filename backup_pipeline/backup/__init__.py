"""Making a backup: dump the database, collect the documents, assemble and verify the archive."""
