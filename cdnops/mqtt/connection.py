"""Client options from the `mqtt:` section: the broker, credentials, TLS and the last will."""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass

import aiomqtt

from cdnops.config.mqtt import MqttConfig
from cdnops.config.secrets import Secret
from cdnops.errors import ConfigError, Issue


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything a new client needs; built once at start, so a bad secret or CA file
    stops the daemon at start rather than at the first reconnect."""

    config: MqttConfig
    identifier: str
    password: Secret | None
    tls: ssl.SSLContext | None

    @classmethod
    def from_config(cls, config: MqttConfig, instance: str) -> Connection:
        """Resolve the password and load the TLS files.

        Raises:
            ConfigError: the password's variable or file is missing or empty, or a TLS
                file cannot be loaded.
        """
        password = config.password.resolve() if config.password is not None else None
        return cls(config, config.identifier(instance), password, _tls_context(config))

    def client(self, will: aiomqtt.Will) -> aiomqtt.Client:
        """A new, unconnected client (one per connection attempt)."""
        c = self.config
        return aiomqtt.Client(
            c.host,
            c.port,
            identifier=self.identifier,
            username=c.username,
            password=self.password.reveal() if self.password is not None else None,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            # the outbox is the durable part: no session state kept on the broker, so a
            # command sent while the daemon was away is not run late
            clean_start=True,
            keepalive=c.keepalive_s,
            timeout=c.publish_timeout_s,
            tls_context=self.tls,
            # small messages sent as they come: no waiting to coalesce them
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            logger=logging.getLogger("cdnops.mqtt.client"),
        )

    def describe(self) -> str:
        """`host:port` (and `tls`), for log lines."""
        tls = " tls" if self.tls is not None else ""
        return f"{self.config.host}:{self.config.port}{tls}"


def _tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    tls = config.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([Issue("<config>", 0, 0, "mqtt.tls", f"cannot load: {reason}")]) from None
    return context
