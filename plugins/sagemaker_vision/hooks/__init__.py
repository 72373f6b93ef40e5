"""Hooks: the package's AWS and Label Studio access, one hook per service (the provider's style)."""
