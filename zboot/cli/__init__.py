"""The zboot command line (typer)."""
