"""CoAP peers for tests: aiocoap in-process, and the path of libcoap's coap-client."""

from __future__ import annotations

import asyncio
import shutil

COAP_CLIENT = shutil.which("coap-client-notls") or "/usr/bin/coap-client-notls"


def aiocoap_run(port: int, *requests: tuple) -> list:
    """Send (code, path, payload) requests one after the other with one aiocoap client
    context -> the responses (block-wise transfers are done by aiocoap)."""
    import aiocoap

    async def go():
        ctx = await aiocoap.Context.create_client_context()
        try:
            out = []
            for code, path, payload in requests:
                msg = aiocoap.Message(
                    code=code, uri=f"coap://127.0.0.1:{port}{path}", payload=payload
                )
                out.append(await asyncio.wait_for(ctx.request(msg).response, 15))
            return out
        finally:
            await ctx.shutdown()

    return asyncio.run(go())
