"""The HTTP service (`pipestate serve`): FastAPI on uvicorn, in the `pipestate[service]` extra.

Import it only to serve: `pipestate run` and the engine packages never import fastapi.
"""

from pipestate.service.app import Plugins, create_app
from pipestate.service.settings import ServiceSettings

__all__ = ["Plugins", "ServiceSettings", "create_app"]
