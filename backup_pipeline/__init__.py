"""Backup and restore of the application's PostgreSQL database and user documents."""
