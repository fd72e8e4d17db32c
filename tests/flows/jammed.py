"""A Prefect API on loopback that can be jammed: a proxy in front of a real server (HTTP and the events
websocket) that, while `jam(seconds)` lasts, answers every HTTP request 503 at once, with no
Retry-After, as a busy server of a user's own would (Prefect's client then backs off 2, 4, 8, ... s),
or, with `mode="stall"`, holds every request unanswered until the jam ends. Events pass through."""

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn
import websockets

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "host"}


class JammedApi:
    """The proxy, served by uvicorn in a thread of this process until `stop()`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/api")
        self.until, self.mode = 0.0, "503"
        self.refused = self.stalled = 0
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="jammed-api")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the jammed API did not start"
            time.sleep(0.05)

    def jam(self, seconds: float, mode: str = "503") -> None:
        self.mode, self.until = mode, time.monotonic() + seconds

    def jammed(self) -> bool:
        return time.monotonic() < self.until

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.jammed() and self.mode == "503":
            self.refused += 1
            reply = b'{"exception_message": "Service Unavailable"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": reply})
            return
        if self.jammed():
            self.stalled += 1
            while self.jammed():
                await asyncio.sleep(0.1)
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in HOP_BY_HOP
        ]
        query = f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.request(
                scope["method"], f"{self.upstream}{scope['path']}{query}", headers=headers, content=body
            )
        out = [
            (k.encode(), v.encode())
            for k, v in answer.headers.items()
            if k.lower() not in HOP_BY_HOP | {"content-encoding"}  # httpx decoded it
        ]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        target = self.upstream.replace("http", "ws", 1) + scope["path"]
        await receive()  # websocket.connect
        async with websockets.connect(target) as upstream:
            await send({"type": "websocket.accept"})

            async def downstream() -> None:
                async for message in upstream:
                    key = "text" if isinstance(message, str) else "bytes"
                    await send({"type": "websocket.send", key: message})

            pump = asyncio.create_task(downstream())
            try:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    await upstream.send(message.get("text") or message.get("bytes"))
            finally:
                pump.cancel()
