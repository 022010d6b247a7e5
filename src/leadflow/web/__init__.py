"""The console: server-rendered pages at ``/app`` for the business's users (sign-in, sessions, roles, CSRF).

See ``docs/console.md``. Pages read and write through the domains' services, like the API, and every
change is audited with the actor ``user:<email>``.
"""
