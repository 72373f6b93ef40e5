"""Deferrable triggers of the package, one module per domain; they run in the triggerer.

Each trigger takes only JSON-serialisable arguments (``serialize()`` hands them back), so the
triggerer can rebuild it from the database; the AWS ones wait with a custom waiter from ``waiters/``.
"""
