"""Pure renderings of results: tables, Markdown, CSV, JSON, metrics."""
