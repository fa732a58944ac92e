"""Sessions (DESIGN §9): one conversation with one agent across many runs.

``api`` is what the HTTP API calls (create, list, read, rename, delete, a
message, the transcript); ``versions`` pins the agent version a session runs.
A session's message is a run launched through ``runs.api.launch_run`` like any
other; how its runs go one at a time and see the turns before them is
``runs.turns``.
"""
