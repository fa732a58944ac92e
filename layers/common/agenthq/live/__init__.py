"""Live status: the WebSocket API (connect, subscribe with replay) and the
broadcaster that fans stored run events out to subscribed connections.

- ``protocol``: the frames, both ways, and the limits AWS puts on them.
- ``access``: one-time tickets (``POST /v1/ws-tickets``) and the ``$connect`` authorizer.
- ``connections``: the WebSocket routes — connect, disconnect, subscribe (with replay), unsubscribe, ping.
- ``broadcast``: a stream record → the frames and the connections that get them.
"""
