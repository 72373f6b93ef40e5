"""Hooks: the package's AWS and Label Studio access, one hook per service (the provider's style).

``SageMakerVisionHook`` owns the one not-found rule and tag paging. Hooks import only the core,
the waiters and each other.
"""
