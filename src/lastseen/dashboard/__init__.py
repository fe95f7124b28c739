"""The live fleet dashboard: static files served by the hub at ``/``.

Plain HTML, CSS and JavaScript modules in ``static/``: no framework, no build step,
nothing fetched from elsewhere. The page reads the same public API as any client
(``/v1/ws`` with ``/v1/stream`` as a fallback, ``/v1/devices``, uptime and history).
"""
