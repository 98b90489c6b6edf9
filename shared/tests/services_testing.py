"""Minimal ASGI apps that the uvicorn_app tests serve in a child process (no framework needed)."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
GREETING_VARIABLE = "SERVICES_TESTING_GREETING"


def create_app() -> ASGIApp:
    """An app answering every GET with JSON: the path, the server's pid and a greeting read
    from the environment when the factory runs (so a test sees that its ``env`` arrived)."""
    greeting = os.environ.get(GREETING_VARIABLE, "hello")

    async def asgi(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = json.dumps({"path": scope["path"], "pid": os.getpid(), "greeting": greeting})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    return asgi


app = create_app()
