"""Drives an Egress Twirp server through LiveKit's own Python server SDK (livekit-api,
in target/peers-venv), one call per run. Run with target/peers-venv/bin/python.

  egress_py.py <method> '<json args>'
  env: LIVEKIT_URL (http://host:port), LIVEKIT_API_KEY, LIVEKIT_API_SECRET

Prints one JSON line on stdout and exits 0:
  {"ok": <EgressInfo as MessageToDict, camelCase>}      (listEgress: {"ok": [<EgressInfo>...]})
  {"error": {"code": ..., "message": ..., "status": ...}}   for a TwirpError (ServerError)
Exits 3 after printing {"transportError": "..."} when the server cannot be reached,
2 on bad usage, 1 on anything else (a bug here)."""
import asyncio
import json
import os
import sys
import warnings

# Test secrets are short; PyJWT would warn about every token on stderr.
warnings.filterwarnings("ignore", message="The HMAC key")

USAGE = """usage: egress_py.py <method> '<json args>'
env: LIVEKIT_URL (http://host:port), LIVEKIT_API_KEY, LIVEKIT_API_SECRET
methods and their args (a JSON object; output and option objects are protobuf JSON,
camelCase or proto names, enums by name):
  startRoomComposite  {roomName, file? | outputs?: {file?, stream?, segments?, images?}, layout?,
                       preset?: "H264_720P_30"|..., advanced?: {EncodingOptions}, audioOnly?, videoOnly?,
                       customBaseUrl?, legacyFile?}
  startWeb            {url, file? | outputs?, preset?, advanced?, audioOnly?, videoOnly?, awaitStartSignal?, legacyFile?}
  startParticipant    {roomName, identity, file? | outputs?, preset?, advanced?, screenShare?}
  startTrackComposite {roomName, audioTrackId?, videoTrackId?, file? | outputs?, preset?, advanced?, legacyFile?}
  startTrack          {roomName, trackId, filepath | websocketUrl}
  updateLayout        {egressId, layout}
  updateStream        {egressId, add?: [url], remove?: [url]}
  listEgress          {roomName?, egressId?, active?}
  stopEgress          {egressId}
A "file" goes into the request's fileOutputs list, or, with "legacyFile": true, into the
deprecated single "file" field. Any method also takes {"request": {...}}: the whole
request message as protobuf JSON, sent as is."""


class Usage(Exception):
    pass


def build(method, a, api):
    """Returns (service method name, request message) for a CLI method and its args."""
    from google.protobuf.json_format import ParseDict

    def need(k):
        if k not in a:
            raise Usage(f'{method} needs "{k}"')
        return a[k]

    def start(fields, has_legacy_file=True):
        d = dict(fields)
        if "outputs" in a:
            o = a["outputs"]
            for k, field in [("file", "fileOutputs"), ("stream", "streamOutputs"),
                             ("segments", "segmentOutputs"), ("images", "imageOutputs")]:
                if k in o:
                    d[field] = [o[k]]
        elif "file" in a:
            if a.get("legacyFile") and has_legacy_file:
                d["file"] = a["file"]
            else:
                d["fileOutputs"] = [a["file"]]
        else:
            raise Usage(f'{method} needs "file" or "outputs"')
        if "preset" in a:
            d["preset"] = a["preset"]
        elif "advanced" in a:
            d["advanced"] = a["advanced"]
        return d

    def opt(*keys):
        return {k: a[k] for k in keys if k in a}

    table = {
        "startRoomComposite": ("start_room_composite_egress", api.RoomCompositeEgressRequest,
                               lambda: start({"roomName": need("roomName"),
                                              **opt("layout", "audioOnly", "videoOnly", "customBaseUrl")})),
        "startWeb": ("start_web_egress", api.WebEgressRequest,
                     lambda: start({"url": need("url"), **opt("audioOnly", "videoOnly", "awaitStartSignal")})),
        "startParticipant": ("start_participant_egress", api.ParticipantEgressRequest,
                             lambda: start({"roomName": need("roomName"), "identity": need("identity"),
                                            **opt("screenShare")}, has_legacy_file=False)),
        "startTrackComposite": ("start_track_composite_egress", api.TrackCompositeEgressRequest,
                                lambda: start({"roomName": need("roomName"),
                                               **opt("audioTrackId", "videoTrackId")})),
        "startTrack": ("start_track_egress", api.TrackEgressRequest,
                       lambda: {"roomName": need("roomName"), "trackId": need("trackId"),
                                **({"websocketUrl": a["websocketUrl"]} if "websocketUrl" in a
                                   else {"file": {"filepath": need("filepath")}})}),
        "updateLayout": ("update_layout", api.UpdateLayoutRequest,
                         lambda: {"egressId": need("egressId"), "layout": need("layout")}),
        "updateStream": ("update_stream", api.UpdateStreamRequest,
                         lambda: {"egressId": need("egressId"), "addOutputUrls": a.get("add", []),
                                  "removeOutputUrls": a.get("remove", [])}),
        "listEgress": ("list_egress", api.ListEgressRequest, lambda: opt("roomName", "egressId", "active")),
        "stopEgress": ("stop_egress", api.StopEgressRequest, lambda: {"egressId": need("egressId")}),
    }
    if method not in table:
        raise Usage(f"unknown method {json.dumps(method)}")
    name, cls, fields = table[method]
    d = a["request"] if "request" in a else fields()
    try:
        return name, ParseDict(d, cls())
    except Exception as e:  # json_format.ParseError
        raise Usage(f"bad {cls.__name__}: {e}")


async def run(method, a, url, key, secret):
    import aiohttp
    from google.protobuf.json_format import MessageToDict
    from livekit import api

    name, req = build(method, a, api)
    lk = api.LiveKitAPI(url, key, secret)
    try:
        res = await getattr(lk.egress, name)(req)
        if method == "listEgress":
            return {"ok": [MessageToDict(i) for i in res.items]}, 0
        return {"ok": MessageToDict(res)}, 0
    except api.TwirpError as e:
        return {"error": {"code": e.code, "message": e.message, "status": e.status}}, 0
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        return {"transportError": f"{type(e).__name__}: {e}"}, 3
    finally:
        await lk.aclose()


def main():
    argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        print(USAGE)
        return 0
    try:
        if not 1 <= len(argv) <= 2:
            raise Usage("expected <method> and one JSON argument")
        try:
            a = json.loads(argv[1] if len(argv) > 1 else "{}")
        except ValueError as e:
            raise Usage(f"args are not JSON: {e}")
        if not isinstance(a, dict):
            raise Usage("args must be a JSON object")
        url, key, secret = (os.environ.get(k) for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"))
        if not (url and key and secret):
            raise Usage("LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set")
        out, code = asyncio.run(run(argv[0], a, url, key, secret))
    except Usage as e:
        print(f"egress_py: {e}\n{USAGE}", file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown, where the SDK's native parts can misbehave.
    os._exit(code)
