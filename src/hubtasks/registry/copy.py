"""A blob copied from one registry to another, streamed: no daemon, flat memory.

`copy_blob` asks the target first (`HEAD`: a blob it holds is never sent again), then opens an
upload there, GETs the blob from the source and sends it on as it arrives (`_CHUNK` bytes at
a time), hashing on the way; the target checks the digest too (`PUT …?digest=`). Each side
logs in through its own `RegistryClient` (its Basic or Bearer authorization is reused on the
streaming connections); credentials only ever go to the registry they belong to, never to a
host a redirect names (a blob store behind a CDN).
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse
from collections.abc import Iterator

from hubtasks.errors import AuthError, DigestMismatchError, RegistryError
from hubtasks.registry.client import RegistryClient

_CHUNK = 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


def holds_blob(client: RegistryClient, digest: str) -> bool:
    """Whether the client's repository holds blob `digest` (a `HEAD`)."""
    response = client.send("HEAD", f"/v2/{client.repository.path}/blobs/{digest}")
    if response.status == 404:
        return False
    if response.status in (401, 403):
        raise AuthError(
            f"registry {client.repository.registry} denied reading {client.repository}",
            status=response.status,
        )
    if response.status >= 300:
        raise _failure(client, response.status, f"ask for blob {digest[:19]} in")
    return True


def copy_blob(
    source: RegistryClient, target: RegistryClient, digest: str, *, timeout: float = 60
) -> bool:
    """Make blob `digest` of the source's repository exist in the target's: False when it
    was already there, True when its bytes were streamed across. `timeout` bounds each
    read and write on the two connections (a stalled upload fails within it, transient)."""
    if holds_blob(target, digest):
        return False
    size = _blob_size(source, digest)
    location = _open_upload(target, digest)
    download = _get(
        source, f"{source.base_url}/v2/{source.repository.path}/blobs/{digest}", timeout
    )
    try:
        hasher = hashlib.sha256()
        _put(target, location, digest, size, _chunks(download, hasher, source), timeout)
    finally:
        download.close()
    if "sha256:" + hasher.hexdigest() != digest:  # the target refused it already, or will
        raise DigestMismatchError(
            f"registry {source.repository.registry} sent bytes for {digest[:19]} whose sha256 "
            f"is sha256:{hasher.hexdigest()}"
        )
    return True


def _blob_size(source: RegistryClient, digest: str) -> int:
    """The blob's length as the source says it (a `HEAD`, which also logs in there)."""
    response = source.send("HEAD", f"/v2/{source.repository.path}/blobs/{digest}")
    if response.status == 404:
        raise RegistryError(f"blob {source.named(digest)} is not in the registry", status=404)
    if response.status >= 300 and response.status not in _REDIRECTS:
        raise _failure(source, response.status, f"read blob {digest[:19]} of")
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise RegistryError(
            f"registry {source.repository.registry} gave no length for blob {digest[:19]}"
        )
    return int(length)


def _open_upload(target: RegistryClient, digest: str) -> str:
    """`POST …/blobs/uploads/`: the upload's URL (on the target registry itself)."""
    response = target.send("POST", f"/v2/{target.repository.path}/blobs/uploads/")
    if response.status in (401, 403):
        raise _may_not_push(target, response.status)
    if response.status != 202:
        raise _failure(target, response.status, f"start an upload of blob {digest[:19]} to")
    location = response.headers.get("Location") or ""
    url = urllib.parse.urljoin(target.base_url + "/", location)
    parts = urllib.parse.urlsplit(url)
    if not location or f"{parts.scheme}://{parts.netloc}" != target.base_url:
        raise RegistryError(
            f"registry {target.repository.registry} started an upload elsewhere "
            f"({parts.netloc or 'no Location'}); hubtasks only uploads to the registry itself"
        )
    query = urllib.parse.urlencode({"digest": digest})
    return f"{url}{'&' if parts.query else '?'}{query}"


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return kind(parts.netloc, timeout=timeout), target


def _get(source: RegistryClient, url: str, timeout: float) -> http.client.HTTPResponse:
    """The blob's response, its body unread; a redirect is followed without credentials."""
    for _ in range(4):
        connection, path = _connection(url, timeout)
        own = url.startswith(source.base_url + "/")
        authorization = source.login_state[0] if own else None
        headers = {"Authorization": authorization} if authorization else {}
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            raise _unreachable(source, error) from None
        location = response.getheader("Location")
        if response.status in _REDIRECTS and location:
            response.read()
            connection.close()
            url = urllib.parse.urljoin(url, location)
            continue
        if response.status != 200:
            response.read()
            connection.close()
            raise _failure(source, response.status, "read a blob of")
        return response
    raise RegistryError(f"registry {source.repository.registry} redirected a blob too often")


def _chunks(
    response: http.client.HTTPResponse, hasher: hashlib._Hash, source: RegistryClient
) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (http.client.HTTPException, OSError) as error:
            raise _unreachable(source, error) from None
        if not chunk:
            return
        hasher.update(chunk)
        yield chunk


def _put(
    target: RegistryClient,
    url: str,
    digest: str,
    size: int,
    body: Iterator[bytes],
    timeout: float,
) -> None:
    connection, path = _connection(url, timeout)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    authorization = target.login_state[0]
    if authorization:
        headers["Authorization"] = authorization
    try:
        connection.request("PUT", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
    except (http.client.HTTPException, OSError) as error:
        raise _unreachable(target, error) from None
    finally:
        connection.close()
    if response.status in (401, 403):
        raise _may_not_push(target, response.status)
    if response.status != 201:
        raise _failure(target, response.status, f"upload blob {digest[:19]} to")


def _may_not_push(client: RegistryClient, status: int) -> AuthError:
    return AuthError(
        f"registry {client.repository.registry} refused an upload to {client.repository} "
        f"(HTTP {status}); use credentials with write access to that repository",
        status=403,
    )


def _failure(client: RegistryClient, status: int, action: str) -> RegistryError:
    transient = status == 429 or status >= 500
    return RegistryError(
        f"cannot {action} {client.repository}: registry answered HTTP {status}",
        status=status,
        transient=transient,
    )


def _unreachable(client: RegistryClient, error: BaseException) -> RegistryError:
    reason = "no answer in time" if isinstance(error, TimeoutError) else str(error) or "cut"
    return RegistryError(
        f"copying a blob with registry {client.repository.registry} failed: {reason}",
        transient=True,
    )
