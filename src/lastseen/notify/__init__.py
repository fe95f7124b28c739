"""Notifications: webhook subscriptions, their delivery queue, and alert rules.

Pure modules decide (``alerts``, ``policy``, ``matching``, ``payloads``); the store
(``store``, ``sqlite``, ``postgres``) persists; the ``service`` consumes the hub's
transition stream and runs the delivery worker and the alert timers.
"""
