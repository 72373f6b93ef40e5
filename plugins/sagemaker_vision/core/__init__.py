"""core: see the package README's architecture section."""
