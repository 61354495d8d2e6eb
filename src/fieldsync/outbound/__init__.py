"""Calls fieldsync makes to other systems: webhook deliveries over HTTP (httpx).

An adapter, like ``fieldsync.storage``: services hand it a checked target, headers and a body,
and get back what happened (a status, a ``Retry-After``, or an error text) — never an exception.

Every call is bounded by one deadline covering name resolution, connecting, sending and reading
the answer (httpx's own timeouts are per phase, so a receiver that trickles bytes could hold a
call forever without it). The target's name is resolved here, every address is checked with
``domain.webhooks.address_allowed`` unless private targets are allowed, and the request goes to
the checked address (with the name in ``Host`` and TLS SNI, so certificates still verify): a name
that resolves to a public address at one moment and to 127.0.0.1 the next (DNS rebinding) cannot
steer a delivery inside. Redirects are not followed and proxy variables are ignored. Only the
first bytes of an answer are read, for the attempt log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import time

import httpx

from fieldsync import __version__, errors
from fieldsync.domain import webhooks as rules

EXCERPT_BYTES = 512


async def resolve(host: str, port: int, *, timeout_s: float) -> list[str]:
    """The addresses ``host`` resolves to, in resolver order; ``WebhookTargetUnresolved`` if none."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s)
    except TimeoutError:  # before OSError, of which it is a subclass
        raise errors.WebhookTargetUnresolved(f"{host} did not resolve within {timeout_s:g} s") from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise errors.WebhookTargetUnresolved(f"{host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise errors.WebhookTargetUnresolved(f"{host} has no address")
    return addresses


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """One attempt as the sender saw it: a status (with its ``Retry-After``) or an error."""

    status_code: int | None
    retry_after: str | None
    error: str | None
    latency_ms: int


class WebhookSender:
    """An httpx client for webhook deliveries; ``aclose`` when done."""

    def __init__(self, *, timeout_s: float, allow_private: bool, max_keepalive: int) -> None:
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
            # the worker's slots bound the calls in flight; a pool limit on top would make a call
            # wait for a connection a hanging receiver's cancelled call has not given back yet
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_keepalive),
            headers={"user-agent": f"fieldsync-webhooks/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _address(self, target: rules.Target) -> str:
        """The checked address to connect to (a refused or unresolvable target raises)."""
        if target.ip_literal:
            addresses = [target.host]
        else:
            if not self.allow_private and rules.name_is_local(target.host):
                raise rules.refused_target(f"{target.host} is this machine")
            addresses = await resolve(target.host, target.port, timeout_s=self.timeout_s)
        if not self.allow_private:
            refused = [address for address in addresses if not rules.address_allowed(address)]
            if refused:
                raise rules.refused_target(f"{target.host} resolves to {refused[0]}, which is not a public address")
        return addresses[0]

    async def post(self, target: rules.Target, headers: dict[str, str], body: bytes) -> Answer:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(target, headers, body, started)
        except TimeoutError:
            error = f"no complete answer within {self.timeout_s:g} s"
        except (errors.WebhookTargetForbidden, errors.WebhookTargetUnresolved) as exc:
            error = exc.detail
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        return Answer(None, None, error[:500], _ms_since(started))

    async def _post(self, target: rules.Target, headers: dict[str, str], body: bytes, started: float) -> Answer:
        address = await self._address(target)
        host = f"[{address}]" if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else address
        url = f"{target.scheme}://{host}:{target.port}{target.path}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and not target.ip_literal else {}
        request = self._client.build_request(
            "POST", url, content=body, headers={**headers, "host": target.host_header}, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            excerpt = b""
            async for chunk in response.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
        finally:
            await response.aclose()
        status = response.status_code
        error = None
        if rules.verdict(status) != "delivered":
            text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace").strip()
            error = f"HTTP {status}" + (f": {text}" if text else "")
        return Answer(status, response.headers.get("retry-after"), error, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
