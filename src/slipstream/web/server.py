"""Serving the app on a production WSGI server (waitress: threaded, pure Python).

``check_port`` runs before anything forks, so a taken port is one clear sentence at start
instead of a component that keeps dying.
"""

from __future__ import annotations

import errno
import logging
import socket

import waitress

from slipstream.config import Config
from slipstream.errors import ConfigError
from slipstream.web import create_app

log = logging.getLogger(__name__)


def check_port(host: str, port: int) -> None:
    """ConfigError naming the setting when ``host:port`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = (
                "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            )
            raise ConfigError(
                f"the web server's address {host}:{port} {why}: pass --port or set "
                "SLIPSTREAM__WEBSERVER__PORT (and __HOST)"
            ) from None


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}" if ":" not in shown else f"http://[{shown}]:{port}"


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> None:
    """Build the app and serve it until the process is stopped."""
    app = create_app(config)
    web = config.webserver
    waitress.serve(
        app,
        host=host or web.host,
        port=port or web.port,
        threads=web.threads,
        ident="slipstream",
        # the UI polls; keep idle connections from holding threads for long
        channel_timeout=60,
        max_request_body_size=web.max_request_bytes + 65536,
        _quiet=True,
    )
