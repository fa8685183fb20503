"""A local stand-in for Entra ID's token endpoint (the Microsoft identity platform), and the
self-signed TLS certificate it and Azurite's OAuth mode serve with.

Entra ID itself cannot be reached here (no cloud). This server answers what azure-identity's
client-credentials flow asks, reconstructed from Microsoft's public documentation (never
recorded), each answer naming its source:

- `GET /{tenant}/v2.0/.well-known/openid-configuration`: the OpenID Provider metadata, shape and
  values as in "OpenID Connect on the Microsoft identity platform" (learn.microsoft.com/entra/
  identity-platform/v2-protocols-oidc, "Find your app's OpenID configuration document URI" and
  its sample response), with this server's host in place of login.microsoftonline.com.
- `POST /{tenant}/oauth2/v2.0/token` with grant_type=client_credentials: "Microsoft identity
  platform and the OAuth 2.0 client credentials flow" (.../v2-oauth2-client-creds-grant-flow):
  a shared secret (`client_secret`) or a certificate (`client_assertion_type` = jwt-bearer and
  `client_assertion`, a JWT signed with the certificate's key, header `x5t` or `x5t#S256`,
  claims aud = the token endpoint, iss = sub = client id, exp, nbf, jti, as in "Microsoft
  identity platform application authentication certificate credentials"). Success: 200
  `{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ...}`;
  failure: the documented error shape (`error`, `error_description` starting with its AADSTS
  code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`), 401 `invalid_client` for a
  wrong secret (AADSTS7000215) or assertion (AADSTS700027), 400 `unauthorized_client` for an
  unknown client id (AADSTS700016), as the "Microsoft Entra authentication and authorization
  error codes" page lists them.
- The access token: a v1.0 token as storage gets it ("Access tokens in the Microsoft identity
  platform", claims reference): aud https://storage.azure.com, iss https://sts.windows.net/
  {tid}/, iat, nbf, exp, appid, appidacr (1 secret, 2 certificate), idtyp app, oid, sub, tid,
  ver 1.0; signed RS256 with a key of this server (Azurite's `--oauth basic` checks issuer,
  audience and lifetime, not the signature).

Every request is logged (method, path, form keys, never a secret's value) so tests can show
what the client asked.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

STORAGE_AUDIENCE = "https://storage.azure.com"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyPair:
    """A self-signed certificate and its key, PEM; `bundle` is both in one file."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def bundle(self) -> bytes:
        return self.cert_pem + self.key_pem

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


def self_signed(common_name: str, *, server: bool = False) -> KeyPair:
    """A fresh 2048-bit RSA key and a one-day self-signed certificate; `server`: valid for
    127.0.0.1 and localhost (what Azurite and the token endpoint serve TLS with)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return KeyPair(builder.sign(key, hashes.SHA256()), key)


@dataclass
class App:
    """A registered application (its service principal) and the credential it signs in with."""

    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class TokenEndpoint:
    """The HTTPS server; `apps` by client id; `requests`: (method, path, sorted form keys)."""

    def __init__(self, tls: KeyPair, workdir: Path, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.apps: dict[str, App] = {}
        self.requests: list[tuple[str, str, tuple[str, ...]]] = []
        self.issued: list[dict[str, Any]] = []
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert, key = tls.write(workdir, "token-endpoint")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = self.context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def authority_host(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> TokenEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- answers --------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        """v2-protocols-oidc's sample document, with this host (source in the module doc)."""
        base = f"{self.authority_host}/{tenant}"
        return {
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.authority_host}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.authority_host}/{self.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def error(
        self, status: int, error: str, code: int, description: str
    ) -> tuple[int, dict[str, Any]]:
        """The documented error body (v2-oauth2-client-creds-grant-flow, "Error response")."""
        return status, {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()}"
            f" Correlation ID: {uuid.uuid4()} Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }

    def _assertion_ok(self, app: App, assertion: str, token_endpoint: str) -> bool:
        """certificate-credentials: the JWT is signed by the registered certificate's key
        (RS256 PKCS#1 v1.5 or PS256 PSS), names it by thumbprint, and is for this endpoint."""
        if app.certificate is None:
            return False
        try:
            head_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_unb64url(head_b64))
            claims = json.loads(_unb64url(claims_b64))
        except ValueError:
            return False
        der = app.certificate.public_bytes(serialization.Encoding.DER)
        thumbs = {
            "x5t": _b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
            "x5t#S256": _b64url(hashlib.sha256(der).digest()),
        }
        # MSAL sends the thumbprint base64url-encoded with its '=' padding
        if not any(str(header.get(k, "")).rstrip("=") == v for k, v in thumbs.items()):
            return False
        public = app.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        pad: padding.AsymmetricPadding
        if header.get("alg") == "RS256":
            pad = padding.PKCS1v15()
        elif header.get("alg") == "PS256":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        else:
            return False
        try:
            public.verify(
                _unb64url(signature_b64), f"{head_b64}.{claims_b64}".encode(), pad, hashes.SHA256()
            )
        except InvalidSignature:
            return False
        now = time.time()
        return (
            claims.get("aud") == token_endpoint
            and claims.get("iss") == claims.get("sub") == app.client_id
            and claims.get("nbf", now) <= now + 60 < claims.get("exp", 0) + 60
        )

    def access_token(self, app: App, scope: str, by_certificate: bool) -> str:
        """A v1.0 app-only access token for storage (claims reference; see the module doc)."""
        now = int(time.time())
        claims = {
            "aud": scope.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now - 300,
            "exp": now + 3599,
            "appid": app.client_id,
            "appidacr": "2" if by_certificate else "1",
            "idp": f"https://sts.windows.net/{self.tenant_id}/",
            "idtyp": "app",
            "oid": app.object_id,
            "sub": app.object_id,
            "tid": self.tenant_id,
            "ver": "1.0",
        }
        self.issued.append(claims)
        header = {"typ": "JWT", "alg": "RS256", "kid": "local-test-key"}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self.signing_key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64url(signature)}"

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if tenant != self.tenant_id:
            return self.error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return self.error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return self.error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the"
                f" directory '{tenant}'.",
            )
        endpoint = f"{self.authority_host}/{tenant}/oauth2/v2.0/token"
        if "client_assertion" in form:
            if not self._assertion_ok(app, form["client_assertion"], endpoint):
                return self.error(
                    401, "invalid_client", 700027, "Client assertion failed signature validation."
                )
            by_certificate = True
        elif app.secret is None or form.get("client_secret") != app.secret:
            return self.error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is"
                f" the client secret value, not the client secret ID, for a secret added to app"
                f" '{app.client_id}'.",
            )
        else:
            by_certificate = False
        scope = form.get("scope", "")
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": self.access_token(app, scope, by_certificate),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Cache-Control", "no-store, no-cache")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                endpoint.requests.append(("GET", path, ()))
                parts = path.strip("/").split("/")
                if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                    self._send(200, endpoint.openid_configuration(parts[0]))
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                endpoint.requests.append(("POST", path, tuple(sorted(form))))
                parts = path.strip("/").split("/")
                if parts[1:] == ["oauth2", "v2.0", "token"]:
                    self._send(*endpoint.token(parts[0], form))
                else:
                    self._send(404, {"error": "not_found"})

        return Handler
