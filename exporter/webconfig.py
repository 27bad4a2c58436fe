"""The exporter's web settings: the `--web.*` flags and the exporter-toolkit web configuration
file (`--web.config.file`): TLS and basic auth.

Same format as node_exporter's, so an SRE's existing file works unchanged:

    tls_server_config: {cert_file: ..., key_file: ..., client_ca_file: ..., client_auth_type: ...,
                        min_version: TLS12}
    http_server_config: {headers: {...}}
    basic_auth_users: {alice: <bcrypt hash>}
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.config import ConfigError

DEFAULT_PORT = 10977


# Health and readiness probes answer without basic auth (TLS still applies; exporter.server):
# they tell only "up" and "ready", and the kubelet's httpGet probes and Docker's HEALTHCHECK
# carry no credentials; behind auth they would fail and the liveness probe would restart-loop
# the pod.
PROBE_PATHS = frozenset({"/-/healthy", "/-/ready"})


def telemetry_path(text: str) -> str:
    """The --web.telemetry-path value: an absolute URL path that is not a probe's.

    Raises argparse.ArgumentTypeError otherwise (argparse prints it as a usage error).
    """
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} must start with '/'")
    if text in PROBE_PATHS:
        raise argparse.ArgumentTypeError(
            f"{text} is the {'health' if text.endswith('healthy') else 'readiness'} probe's "
            "path (answered without basic auth); choose another, e.g. /metrics")
    return text


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `aura run` and `aura demo`."""
    parser.add_argument("--web.listen-address", dest="listen_address", default=f":{DEFAULT_PORT}",
                        help="address to listen on (default %(default)s)")
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                        type=telemetry_path, help="path under which to expose metrics")
    parser.add_argument("--web.config.file", dest="web_config_file", default=None,
                        help="exporter-toolkit web config (TLS, basic auth)")
    parser.add_argument("--web.max-requests", dest="max_requests", type=int, default=40,
                        help="maximum parallel requests; 0 means no limit")


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """`:10977` -> (None, 10977) meaning all interfaces; `127.0.0.1:80` -> ('127.0.0.1', 80)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"invalid listen address {address!r} (expected host:port)")
    host = host.strip("[]")
    return (host or None), int(port)


_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
             "max_version"}
# exporter-toolkit keys AURA does not implement: refused by name rather than silently ignored,
# since each of them narrows what the server accepts (a user relying on it would be exposed).
_TLS_UNSUPPORTED = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                    "client_allowed_sans"}
_HTTP_KEYS = {"headers", "http2"}
_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TOP_UNSUPPORTED = {"rate_limit"}


@dataclass
class WebConfig:
    """A parsed web config file (see `load_web_config`); the default serves plain HTTP, no auth.

    Attributes
    ----------
    ssl_context: the server's TLS context, or None for plain HTTP.
    users: user name -> bcrypt hash (`basic_auth_users`); empty means no authentication.
    headers: extra response headers (`http_server_config.headers`).
    """

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # bcrypt is deliberately slow (~0.1–0.3 s): remember verified credentials, as
    # exporter-toolkit does, so 20 concurrent scrapers do not spend their time hashing.
    _verified: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def auth_required(self) -> bool:
        """True when basic auth users are configured (every request must then authenticate)."""
        return bool(self.users)

    def check(self, username: str, password: str) -> bool:
        """True when the credentials match a configured bcrypt hash.

        An unknown user name costs one bcrypt comparison too (against a configured user's hash,
        so at the same cost factor), as exporter-toolkit compares against a dummy hash: the
        answer time does not tell which user names exist.
        """
        import bcrypt

        user = username.encode("utf-8", "surrogateescape")
        # bcrypt reads at most 72 bytes (bcrypt 5 refuses more): a longer password is compared
        # on its first 72 bytes for the time it costs, then never matches (no tool hashes it).
        secret = password.encode("utf-8", "surrogateescape")
        hashed = self.users.get(username)
        target = hashed if hashed is not None else next(iter(self.users.values()), None)
        if target is None:
            return False
        if hashed is not None:
            key = hashlib.sha256(user + b"\0" + secret + b"\0" + hashed).digest()
            with self._lock:
                if key in self._verified:
                    return True
        ok = _checkpw(bcrypt, secret, target)
        if hashed is None:
            return False
        if ok:
            with self._lock:
                self._verified.add(key)
        return ok


def _checkpw(bcrypt: Any, secret: bytes, hashed: bytes) -> bool:
    try:
        return bool(bcrypt.checkpw(secret[:72], hashed)) and (
            len(secret) <= 72 or hmac.compare_digest(secret, secret[:72]))
    except ValueError:  # malformed hash (refused at load) or password bytes bcrypt rejects
        return False


def load_web_config(path: str | Path | None) -> WebConfig:
    """Parse the web config file; raise ConfigError naming every bad key.

    Keys of exporter-toolkit's format that AURA does not implement are refused by name (a
    `cipher_suites` list that were silently ignored would leave weaker ciphers enabled).
    """
    if path is None:
        return WebConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror}"]) from err
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError([f"{path}: invalid YAML: {err}"]) from err
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping"])
    for key in data:
        if key in _TOP_UNSUPPORTED:
            problems.append(f"{key}: not supported by AURA (remove it)")
        elif key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key (expected {', '.join(sorted(_TOP_KEYS))})")
    cfg = WebConfig()
    tls = data.get("tls_server_config")
    if tls:
        cfg.ssl_context = _ssl_context(tls, Path(path).parent, problems)
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        problems.append("basic_auth_users: expected a mapping of user: bcrypt hash")
        users = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user:
            problems.append(f"basic_auth_users: user name {user!r} is not a string")
        elif not isinstance(hashed, str) or not _is_bcrypt(hashed):
            problems.append(f"basic_auth_users.{user}: expected a bcrypt hash ($2b$...)")
        else:
            cfg.users[user] = hashed.encode()
    http = data.get("http_server_config") or {}
    if not isinstance(http, dict):
        problems.append("http_server_config: expected a mapping")
        http = {}
    for key in http:
        if key not in _HTTP_KEYS:
            problems.append(f"http_server_config.{key}: unknown key (expected headers, http2)")
    if http.get("http2"):
        problems.append("http_server_config.http2: not supported by AURA (HTTP/1.1 only); "
                        "remove it or set false")
    headers = http.get("headers") or {}
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
            for k, v in headers.items()):
        problems.append("http_server_config.headers: expected a mapping of header: value "
                        "(single-line strings)")
    else:
        cfg.headers = dict(headers)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return cfg


def _is_bcrypt(text: str) -> bool:
    # $2a$/$2b$/$2y$, two-digit cost, 53 characters of salt and hash.
    return len(text) == 60 and text[:4] in ("$2a$", "$2b$", "$2y$") and text[4:6].isdigit() \
        and text[6] == "$"


def _tls_version(tls: dict, key: str, default: str | None, problems: list[str]
                 ) -> ssl.TLSVersion | None:
    value = tls.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or value not in _TLS_VERSIONS:
        problems.append(f"tls_server_config.{key}: unknown value {value!r} (expected one of "
                        f"{', '.join(_TLS_VERSIONS)})")
        return None
    return _TLS_VERSIONS[value]


def _path(tls: dict, key: str, base: Path, problems: list[str]) -> Path | None:
    value = tls.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"tls_server_config.{key}: expected a file path")
        return None
    return base / value


def _ssl_context(tls: Any, base: Path, problems: list[str]) -> ssl.SSLContext | None:
    if not isinstance(tls, dict):
        problems.append("tls_server_config: expected a mapping")
        return None
    for key in tls:
        if key in _TLS_UNSUPPORTED:
            problems.append(f"tls_server_config.{key}: not supported by AURA (Python's TLS "
                            "defaults apply); remove it")
        elif key not in _TLS_KEYS:
            problems.append(f"tls_server_config.{key}: unknown key")
    lowest = _tls_version(tls, "min_version", "TLS12", problems)
    highest = _tls_version(tls, "max_version", None, problems)
    if lowest is not None and highest is not None and highest < lowest:
        problems.append("tls_server_config.max_version: lower than min_version")
        return None
    cert, key = _path(tls, "cert_file", base, problems), _path(tls, "key_file", base, problems)
    if cert is None or key is None:
        problems.append("tls_server_config: cert_file and key_file are both required")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = lowest or ssl.TLSVersion.TLSv1_2
    if highest is not None:
        ctx.maximum_version = highest
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as err:
        problems.append(f"tls_server_config.cert_file: cannot load certificate/key: {err}")
        return None
    auth = tls.get("client_auth_type", "NoClientCert")
    if not isinstance(auth, str) or auth not in _CLIENT_AUTH:
        problems.append(f"tls_server_config.client_auth_type: unknown value {auth!r}")
        return ctx
    ctx.verify_mode = _CLIENT_AUTH[auth]
    ca = _path(tls, "client_ca_file", base, problems)
    if ca is not None:
        try:
            ctx.load_verify_locations(ca)
        except (OSError, ssl.SSLError, ValueError) as err:
            problems.append(f"tls_server_config.client_ca_file: cannot load: {err}")
    elif auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        problems.append(f"tls_server_config.client_ca_file: required with {auth}")
    return ctx
