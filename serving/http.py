"""uvicorn's httptools protocol with a time limit on request headers (slowloris).

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but has no limit on how long a
client may take to send a request's header: a client that sends one header byte every few
seconds holds its connection (and a file descriptor) forever, and a few thousand such clients
exhaust a worker. `HeaderTimeoutProtocol` arms a timer when a connection opens and when a
request's first byte arrives, and disarms it when the header is complete; when it fires, the
client gets `408 Request Timeout` and the connection is closed. The body has its own limit
(`body_timeout_seconds`, serving.metrics.ServiceMiddleware). `leadscore serve` runs uvicorn
with `http="serving.http:HeaderTimeoutProtocol"`.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("serving")

TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 37\r\n\r\nrequest header not received in time\r\n"
)


def header_timeout_seconds() -> float:
    from serving.config import get_settings

    return get_settings().header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that answers 408 and closes when a header takes too long."""

    header_timeout: float | None = None  # seconds; None: from the settings, once per process

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            seconds = type(self).header_timeout
            if seconds is None:
                seconds = type(self).header_timeout = header_timeout_seconds()
            self._header_timer = self.loop.call_later(seconds, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: the header of the next one is not late
        log.info("closed a connection whose request header did not arrive in time")
        self.transport.write(TIMEOUT_ANSWER)
        self.transport.close()
