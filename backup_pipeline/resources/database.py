"""The application database (and the catalog in its schema `backup`)."""

import dagster as dg

from backup_pipeline.postgres import describe


class DatabaseResource(dg.ConfigurableResource):
    """DATABASE_URL, resolved at run time so the UI only ever shows the variable's name."""

    url: str

    def describe(self) -> str:
        return describe(self.url)
