"""The explorer's server on an ephemeral port, in a background thread, for the explorer tests."""

from __future__ import annotations

import contextlib
import threading


@contextlib.contextmanager
def serving(state):
    """make_server(state) on 127.0.0.1 with a free port, serving in a daemon thread; shut down and closed after."""
    from aekit.tasks.explore import make_server

    server = make_server(state, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
