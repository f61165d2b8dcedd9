"""Receives LiveKit webhooks and checks each one with the Python SDK's own verifier
(livekit.api.WebhookReceiver), printing one JSON line per request. Run with
target/peers-venv/bin/python until killed.

  webhook_receiver.py <port> <api_key> <api_secret> [--fail-first N]

Listens on 127.0.0.1:<port> (0 picks a free port) for POSTs on any path, then prints
  {"listening": <port>}
and per request, flushed:
  {"valid": true, "event": ..., "egressId": ..., "status": "EGRESS_ACTIVE", "contentType": ...,
   "id": ..., "createdAt": ..., "path": ..., "egressInfo": {<EgressInfo, camelCase>}}   answered 200
  {"valid": false, "error": "...", "contentType": ..., "path": ...}                       answered 401
The first N requests (--fail-first N) are answered 500 unread and unverified, each printing
  {"failedOnPurpose": true, "path": ...}"""
import argparse
import asyncio
import json
import sys
import warnings

from aiohttp import web
from google.protobuf.json_format import MessageToDict
from livekit import api

# Test secrets are short; PyJWT would warn about every token on stderr.
warnings.filterwarnings("ignore", message="The HMAC key")


def out(obj):
    print(json.dumps(obj), flush=True)


async def main(a):
    receiver = api.WebhookReceiver(api.TokenVerifier(a.api_key, a.api_secret))
    to_fail = a.fail_first

    async def handle(request: web.Request) -> web.Response:
        nonlocal to_fail
        if to_fail > 0:
            to_fail -= 1
            out({"failedOnPurpose": True, "path": request.path})
            return web.Response(status=500, text="failing on purpose")
        ctype = request.headers.get("Content-Type")
        try:
            # The SDK hashes body.encode() (UTF-8), so this is the exact bytes that came.
            body = (await request.read()).decode("utf-8")
            # Passed verbatim, as the SDK's receive() expects: LiveKit sends the bare token.
            event = receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception as e:
            out({"valid": False, "error": f"{type(e).__name__}: {e}", "contentType": ctype, "path": request.path})
            return web.Response(status=401, text="invalid webhook")
        has_egress = event.HasField("egress_info")
        info = event.egress_info
        out({
            "valid": True,
            "event": event.event,
            "egressId": info.egress_id if has_egress else None,
            "status": api.EgressStatus.Name(info.status) if has_egress else None,
            "contentType": ctype,
            "id": event.id,
            "createdAt": event.created_at,
            "path": request.path,
            "egressInfo": MessageToDict(info) if has_egress else None,
        })
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", a.port)
    await site.start()
    port = runner.addresses[0][1]
    out({"listening": port})
    await asyncio.Event().wait()


p = argparse.ArgumentParser(description="Verifies LiveKit webhooks with the Python SDK and prints one JSON line each.")
p.add_argument("port", type=int, help="port on 127.0.0.1 (0: pick a free one)")
p.add_argument("api_key")
p.add_argument("api_secret")
p.add_argument("--fail-first", type=int, default=0, metavar="N", help="answer the first N requests 500")
try:
    asyncio.run(main(p.parse_args()))
except KeyboardInterrupt:
    sys.exit(0)
