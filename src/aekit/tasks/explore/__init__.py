"""The latent-space explorer: `aekit explore RUN_DIR` serves a page to look around a model's codes.

state.py holds the model, the codes and the 2-D map; validate.py checks requests; server.py is
the HTTP server (standard library only); page.html + explore.js are the page.
"""

from .server import ExploreServer, make_server
from .state import ExploreState

__all__ = ["ExploreServer", "ExploreState", "make_server"]
