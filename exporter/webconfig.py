"""The exporter-toolkit web configuration file (`--web.config.file`): TLS and basic auth.

Same format as node_exporter's, so an SRE's existing file works unchanged:

    tls_server_config: {cert_file: ..., key_file: ..., client_ca_file: ..., client_auth_type: ...,
                        min_version: TLS12}
    http_server_config: {headers: {...}}
    basic_auth_users: {alice: <bcrypt hash>}
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.config import ConfigError

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
             "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
             "client_allowed_sans"}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # bcrypt is deliberately slow (~0.1–0.3 s): remember verified credentials, as
    # exporter-toolkit does, so 20 concurrent scrapers do not spend their time hashing.
    _verified: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def check(self, username: str, password: str) -> bool:
        """True when the credentials match a configured bcrypt hash."""
        import bcrypt

        hashed = self.users.get(username)
        if hashed is None:
            # Spend comparable time on unknown users so timing does not reveal names.
            hmac.compare_digest(b"x", b"y")
            return False
        key = hashlib.sha256(username.encode() + b"\0" + password.encode() + b"\0" + hashed).digest()
        with self._lock:
            if key in self._verified:
                return True
        ok = bcrypt.checkpw(password.encode(), hashed)
        if ok:
            with self._lock:
                self._verified.add(key)
        return ok


def load_web_config(path: str | Path | None) -> WebConfig:
    """Parse the web config file; raise ConfigError naming the bad key."""
    if path is None:
        return WebConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: invalid YAML: {err}"]) from err
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping"])
    for key in data:
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            problems.append(f"{key}: unknown key")
    cfg = WebConfig()
    tls = data.get("tls_server_config")
    if tls:
        cfg.ssl_context = _ssl_context(tls, Path(path).parent, problems)
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        problems.append("basic_auth_users: expected a mapping of user: bcrypt hash")
        users = {}
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(f"basic_auth_users.{user}: expected a bcrypt hash")
        else:
            cfg.users[str(user)] = hashed.encode()
    http = data.get("http_server_config") or {}
    if isinstance(http, dict):
        for key in http:
            if key not in ("headers", "http2"):
                problems.append(f"http_server_config.{key}: unknown key")
        cfg.headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return cfg


def _ssl_context(tls: Any, base: Path, problems: list[str]) -> ssl.SSLContext | None:
    if not isinstance(tls, dict):
        problems.append("tls_server_config: expected a mapping")
        return None
    for key in tls:
        if key not in _TLS_KEYS:
            problems.append(f"tls_server_config.{key}: unknown key")
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if not cert or not key:
        problems.append("tls_server_config: cert_file and key_file are both required")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = _TLS_VERSIONS.get(tls.get("min_version", "TLS12"), ssl.TLSVersion.TLSv1_2)
    if tls.get("max_version"):
        ctx.maximum_version = _TLS_VERSIONS[tls["max_version"]]
    try:
        ctx.load_cert_chain(base / cert, base / key)
    except (OSError, ssl.SSLError) as err:
        problems.append(f"tls_server_config.cert_file: cannot load certificate/key: {err}")
        return None
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        problems.append(f"tls_server_config.client_auth_type: unknown value {auth!r}")
        return ctx
    ctx.verify_mode = _CLIENT_AUTH[auth]
    if tls.get("client_ca_file"):
        try:
            ctx.load_verify_locations(base / tls["client_ca_file"])
        except (OSError, ssl.SSLError) as err:
            problems.append(f"tls_server_config.client_ca_file: cannot load: {err}")
    elif auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        problems.append(f"tls_server_config.client_ca_file: required with {auth}")
    return ctx
