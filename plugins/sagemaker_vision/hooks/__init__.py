"""hooks: see the package README's architecture section."""
