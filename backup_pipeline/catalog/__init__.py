"""The catalog: schema `backup` in the application database (schedules, history, settings)."""
