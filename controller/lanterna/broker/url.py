"""The one parser of broker URLs: ``mqtt://[user[:password]@]HOST[:PORT]`` and ``mqtts://``.

Every part of the controller that reaches a broker (the fleet commands, the sim, the
provisioning of a node, the OTA server) reads its URL here, so a TLS broker's
``mqtts://`` is understood everywhere or nowhere. Ports default to 1883 and 8883.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from lanterna.errors import Malformed

DEFAULT_PORT = {"mqtt": 1883, "mqtts": 8883}


class BrokerURLError(Malformed):
    pass


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool
    user: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """Without credentials: safe to print."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse(url: str, what: str = "broker") -> BrokerURL:
    """-> BrokerURL; BrokerURLError (exit 4) naming `what` for anything else."""
    u = urlparse(url)
    if u.scheme not in DEFAULT_PORT or not u.hostname:
        raise BrokerURLError(f"{what}: expected mqtt://HOST:PORT or mqtts://HOST:PORT, got {url!r}")
    try:
        port = u.port or DEFAULT_PORT[u.scheme]
    except ValueError:
        raise BrokerURLError(f"{what}: the port of {u.hostname} is not a number") from None
    return BrokerURL(
        u.hostname,
        port,
        u.scheme == "mqtts",
        unquote(u.username) if u.username else None,
        unquote(u.password) if u.password else None,
    )
