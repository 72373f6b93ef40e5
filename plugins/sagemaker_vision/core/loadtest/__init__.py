"""core/loadtest: see the package README's architecture section."""
