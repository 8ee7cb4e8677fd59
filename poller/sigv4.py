"""SigV4 for signed POSTs to one URL, byte-identical to botocore's ``SigV4Auth`` and a sixth of
its CPU: the Lambda invoker's requests and the AWS JSON data-plane calls (GetRecords)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials


class PostSigner:
    """SigV4 for POSTs to one URL, byte-identical to botocore's ``SigV4Auth``
    (tests/unit/test_invoke_signer.py). The canonical URI, query and host are taken from
    botocore once; per call only the date, the payload hash and two HMACs remain (the signing
    key is cached per day), a sixth of ``SigV4Auth.add_auth``'s CPU. ``fixed_headers`` (default:
    a RequestResponse Lambda invoke) and per-call ``headers`` are signed and returned."""

    def __init__(self, url: str, region: str, service: str = "lambda",
                 fixed_headers: dict[str, str] | None = None) -> None:
        template = SigV4Auth(Credentials("x", "x"), service, region)
        request = AWSRequest(method="POST", url=url)
        self._uri = template._normalize_url_path(urlsplit(url).path)
        self._query = template.canonical_query_string(request)
        self._host = _host_from_url(url)
        self._region = region
        self._service = service
        self._fixed = (dict(fixed_headers) if fixed_headers is not None
                       else {"X-Amz-Invocation-Type": "RequestResponse"})
        self._key: tuple[str, str, bytes] | None = None  # (secret, day, signing key)
        self._second = -1
        self._stamp_text = ""
        self._templates: dict[tuple[tuple[tuple[str, str], ...], str | None],
                              tuple[str, str, str]] = {}

    @property
    def host(self) -> str:
        """The Host header's value (signed)."""
        return str(self._host)

    def _stamp(self) -> str:
        """The current X-Amz-Date, formatted once per second."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp_text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._stamp_text

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key is None or self._key[:2] != (secret, day):
            key = _hmac(f"AWS4{secret}".encode(), day)
            for part in (self._region, self._service, "aws4_request"):
                key = _hmac(key, part)
            self._key = (secret, day, key)
        return self._key[2]

    def _template(self, headers: tuple[tuple[str, str], ...],
                  token: str | None) -> tuple[str, str, str]:
        """(canonical request up to the date value, after it up to the payload hash, signed
        header names) for one set of per-call headers, built once."""
        key = (headers, token)
        template = self._templates.get(key)
        if template is None:
            out = {**self._fixed, **dict(headers), "X-Amz-Date": "\0"}
            if token:
                out["X-Amz-Security-Token"] = token
            canonical_items = sorted([("host", self._host)] + [
                (name.lower(), " ".join(value.split())) for name, value in out.items()])
            canonical_headers = "".join(f"{name}:{value}\n" for name, value in canonical_items)
            signed = ";".join(name for name, _value in canonical_items)
            before, after = "\n".join(("POST", self._uri, self._query, canonical_headers,
                                        signed, "")).split("\0")
            if len(self._templates) > 64:  # per-call headers that vary, rotated tokens
                self._templates.clear()
            template = self._templates[key] = (before, after, signed)
        return template

    def authorization(self, payload: bytes, credentials: ReadOnlyCredentials,
                      headers: tuple[tuple[str, str], ...] = (),
                      stamp: str | None = None) -> tuple[str, str]:
        """(X-Amz-Date, Authorization) for ``payload`` with the fixed and ``headers``."""
        if stamp is None:
            stamp = self._stamp()
        day = stamp[:8]
        before, after, signed = self._template(headers, credentials.token)
        canonical = f"{before}{stamp}{after}{hashlib.sha256(payload).hexdigest()}"
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = (f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        signature = hmac.digest(self._signing_key(credentials.secret_key, day), to_sign.encode(),
                                "sha256").hex()
        return stamp, (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/"
                       f"{scope}, SignedHeaders={signed}, Signature={signature}")

    def sign(self, payload: bytes, credentials: ReadOnlyCredentials,
             now: datetime.datetime | None = None,
             headers: dict[str, str] | None = None) -> dict[str, str]:
        extra = tuple(headers.items()) if headers else ()
        stamp, authorization = self.authorization(
            payload, credentials, extra,
            now.strftime("%Y%m%dT%H%M%SZ") if now is not None else None)
        out = {**self._fixed, **dict(extra), "X-Amz-Date": stamp}
        if credentials.token:
            out["X-Amz-Security-Token"] = credentials.token
        out["Authorization"] = authorization
        return out


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()
