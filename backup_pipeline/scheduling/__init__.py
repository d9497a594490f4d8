"""Scheduled backups without Dagster: schedules, slot claims, locks and retention.

A scheduled backup is made at most once per (schedule, slot time). The catalog's slot claim
(`backup.schedule_slots`) is the real guard; the Redis lock `backup:schedule:{id}` (or a file
lock on a single host) is the fast path that keeps the other runs from even trying.
"""
