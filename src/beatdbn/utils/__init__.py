"""Small helpers every layer may use: atomic file writes, process settings for the CLI entry."""
