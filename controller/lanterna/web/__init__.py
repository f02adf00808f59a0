"""The web console (`lanterna web`): the fleet on a map, a node's story, schedules
previewed before they are pushed, energy, faults, rollouts, operators and their audit log.

An ASGI application (Starlette, served by uvicorn; docs/web.md says why) over the same
store and the same signed-command library as the CLI. ``app`` builds it, ``auth`` holds
sessions, CSRF and the sign-in limiter, ``reads`` and ``writes`` are the JSON API, ``live``
the server-sent events of the map, ``static/`` the front end (no third-party code).
"""
