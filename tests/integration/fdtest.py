"""Support code for the frontdoor end-to-end tests (standard library only), one module per role:

- fd_wire: HTTP/1.1 on raw sockets — a reader, head parsing, a client that sends exact bytes.
- fd_upstream: ScriptedUpstream, a scripted HTTP/1.1 server in threads of the test process.
- fd_config: manifests and configs as dicts, and the YAML they are written as.
- fd_daemon: Frontdoor, the real binary launched on a config, stopped by PID.
- fd_redis: a private redis-server.

Tests import everything from here. Every blocking call has a timeout; every loop is bounded.
"""
from fd_config import *  # noqa: F401,F403
from fd_config import _merge, _scalar  # noqa: F401
from fd_daemon import *  # noqa: F401,F403
from fd_daemon import _read_text  # noqa: F401
from fd_postgres import *  # noqa: F401,F403
from fd_redis import *  # noqa: F401,F403
from fd_relay import *  # noqa: F401,F403
from fd_upstream import *  # noqa: F401,F403
from fd_upstream import _reset  # noqa: F401
from fd_wire import *  # noqa: F401,F403
