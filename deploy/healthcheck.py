"""Docker HEALTHCHECK for the AURA image: exit 0 when AURA's `/-/healthy` answers 200.

    python healthcheck.py [ADDRESS] [PATH]

ADDRESS is AURA's listen address (`:10977`, `127.0.0.1:10977`); by default it is read from
the `--web.listen-address` of the container's main process (PID 1), else `:10977`. PATH is
`/-/healthy` by default.

Works whatever `--web.config.file` says: the probes answer without basic auth, and when TLS is
on (plain HTTP is then refused) the check retries over HTTPS without verifying the
certificate, which names the service, not 127.0.0.1: the check only ever connects to this
container's own listener. A `client_auth_type` that requires a client certificate cannot be
probed this way (see README, "Security"). Standard library only: the image has no curl.
"""

from __future__ import annotations

import http.client
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_ADDRESS = ":10977"
DEFAULT_PATH = "/-/healthy"
TIMEOUT_SECONDS = 4.0
_ANY = ("", "0.0.0.0", "::")


def listen_address(cmdline: Path = Path("/proc/1/cmdline")) -> str:
    """The `--web.listen-address` of the process whose argv is in `cmdline`, or the default."""
    try:
        args = cmdline.read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return DEFAULT_ADDRESS
    for i, arg in enumerate(args):
        if arg.startswith("--web.listen-address="):
            return arg.partition("=")[2]
        if arg == "--web.listen-address" and i + 1 < len(args):
            return args[i + 1]
    return DEFAULT_ADDRESS


def target(address: str) -> tuple[str, int]:
    """(host to connect to, port) for a listen address; all interfaces means loopback."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in _ANY:
        host = "127.0.0.1"
    return host, int(port)


def probe(host: str, port: int, path: str = DEFAULT_PATH,
          timeout: float = TIMEOUT_SECONDS) -> int:
    """The HTTP status of GET `path`: plain HTTP first, HTTPS when the listener wants TLS."""
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return _get(f"http://{netloc}{path}", None, timeout)
    except (http.client.HTTPException, ConnectionResetError):
        pass  # a TLS listener drops a plain HTTP request without an answer
    except urllib.error.URLError as err:
        if not isinstance(err.reason, ConnectionResetError):
            raise
    # Not verified: our own listener, whose certificate is issued for the service's name.
    context = ssl._create_unverified_context()
    return _get(f"https://{netloc}{path}", context, timeout)


def _get(url: str, context: ssl.SSLContext | None, timeout: float) -> int:
    # No proxy, whatever http_proxy / https_proxy say: only ever this container's listener.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def main(argv: list[str]) -> int:
    """Exit status for Docker: 0 healthy, 1 otherwise (with the reason on stderr)."""
    address = argv[0] if argv else listen_address()
    path = argv[1] if len(argv) > 1 else DEFAULT_PATH
    try:
        host, port = target(address)
        status = probe(host, port, path)
    except (OSError, ValueError, http.client.HTTPException) as err:
        print(f"unhealthy: {address}{path}: {err}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {address}{path}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
