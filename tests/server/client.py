"""A tiny raw SIP client built from the SIP core, for the registrar tests.

It frames with :class:`StreamFramer`, builds REGISTERs with ``Headers``/``Request`` and answers
401s with :class:`DigestClient`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.digest import DigestClient
from softphone.sip.framing import StreamFramer
from softphone.sip.message import Headers, Message, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import parse_uri
from softphone.transport.stream import ByteStream, open_tcp_connection, open_tls_connection
from softphone.transport.tls import TLSConfig

DOMAIN = "example.test"
WAIT = 10.0


class RawClient:
    """One connection to the registrar and one user's Digest state."""

    def __init__(
        self,
        stream: ByteStream,
        *,
        user: str,
        password: str,
        aor_user: str | None = None,
        transport: str = "TLS",
    ) -> None:
        self.stream = stream
        self.user = user
        self.aor_user = aor_user or user
        self.digest = DigestClient(user, password)
        self.transport = transport
        self.framer = StreamFramer()
        self.inbox: list[Message] = []
        self.call_id = new_call_id("client.invalid")
        self.tag = new_tag()
        self.cseq = 0
        self.sent: list[Request] = []
        self.received: list[Response] = []

    @classmethod
    async def connect_tls(cls, port: int, **kwargs: object) -> RawClient:
        stream = await open_tls_connection(
            "127.0.0.1", port, TLSConfig.client(server_name=DOMAIN), timeout=WAIT
        )
        return cls(stream, **kwargs)  # type: ignore[arg-type]

    @classmethod
    async def connect_tcp(cls, port: int, **kwargs: object) -> RawClient:
        stream = await open_tcp_connection("127.0.0.1", port, timeout=WAIT)
        return cls(stream, transport="TCP", **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.stream.close()

    # -- wire ---------------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        self.stream.write(data)

    def send(self, request: Request) -> None:
        self.sent.append(request)
        self.stream.write(bytes(request))

    async def read_raw(self) -> bytes:
        return await asyncio.wait_for(self.stream.read(), WAIT)

    async def receive(self) -> Message:
        while not self.inbox:
            data = await asyncio.wait_for(self.stream.read(), WAIT)
            if not data:
                raise ConnectionResetError("the registrar closed the connection")
            self.inbox += self.framer.feed(data)
        return self.inbox.pop(0)

    async def response(self) -> Response:
        message = await self.receive()
        assert isinstance(message, Response), message
        self.received.append(message)
        return message

    # -- requests -----------------------------------------------------------------------------

    def request(
        self,
        method: str = "REGISTER",
        *,
        contacts: Sequence[str] = ("<sip:alice@client.invalid;transport=tls>",),
        expires: int | None = None,
        extra: Sequence[tuple[str, str]] = (),
        uri: str = f"sip:{DOMAIN}",
    ) -> Request:
        self.cseq += 1
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{self.transport} client.invalid;branch={new_branch()}")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:{self.aor_user}@{DOMAIN}>;tag={self.tag}")
        headers.add("To", f"<sip:{self.aor_user}@{DOMAIN}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} {method}")
        for contact in contacts:
            headers.add("Contact", contact)
        if expires is not None:
            headers.add("Expires", str(expires))
        for name, value in extra:
            headers.add(name, value)
        return Request(method, parse_uri(uri), headers)

    async def register(
        self,
        *,
        preemptive: bool = False,
        challenge_filter: Callable[[list[str]], list[str]] = lambda v: v,
        **kwargs: object,
    ) -> Response:
        """REGISTER, answering one 401 with the DigestClient (which refuses to loop)."""
        request = self.request(**kwargs)  # type: ignore[arg-type]
        if preemptive:
            for header in self.digest.authorize("REGISTER", str(request.uri)):
                request.headers.add(header.name, header.value)
        self.send(request)
        response = await self.response()
        while response.status_code == 401:
            values = challenge_filter(response.headers.get_all("WWW-Authenticate"))
            headers = self.digest.handle_challenge(401, values, "REGISTER", str(request.uri))
            request = self.request(**kwargs)  # type: ignore[arg-type]
            for header in headers:
                request.headers.add(header.name, header.value)
            self.send(request)
            response = await self.response()
        return response
