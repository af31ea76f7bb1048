"""The one exception the exporter raises for problems a user can fix; the CLI prints it as one line."""


class ExportError(Exception):
    """A user-facing export failure; str(error) names the input and the fix."""
