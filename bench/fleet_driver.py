"""Drives the fleet benchmark through livekit-server's Egress API with LiveKit's Python SDK
(one process, so no SDK start-up is counted). Run with target/peers-venv/bin/python.

  fleet_driver.py starts N          N recordings of room "bench", one after another: each is
                                    started, waited for until ListEgress shows it ACTIVE, and
                                    stopped. Prints {"start_to_active_ms": [...]}: from just
                                    before the Start call to the ACTIVE state's updated_at.
  fleet_driver.py rooms N SECS      N rooms ("room1".."roomN") recorded at once for SECS s, then
                                    stopped; prints {"egress": [{"id", "room", "file"}...]}.
                                    With NODE_METRICS (the nodes' /metrics URLs, comma-separated)
                                    also {"late": total late ticks, "slowest": lowest encoder speed},
                                    read just before the stop.
env: LIVEKIT_URL (http://host:port), LIVEKIT_API_KEY, LIVEKIT_API_SECRET"""
import asyncio
import json
import re
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="The HMAC key")
from livekit import api  # noqa: E402

SMALL = api.EncodingOptions(width=640, height=360, framerate=15, video_bitrate=1200)


async def start(lk, room, path):
    req = api.RoomCompositeEgressRequest(
        room_name=room, layout="grid", advanced=SMALL, file_outputs=[api.EncodedFileOutput(filepath=path)]
    )
    return await lk.egress.start_room_composite_egress(req)


FINAL = (api.EgressStatus.EGRESS_COMPLETE, api.EgressStatus.EGRESS_FAILED, api.EgressStatus.EGRESS_ABORTED,
         api.EgressStatus.EGRESS_LIMIT_REACHED)


async def wait(lk, egress_id, *statuses, limit=60):
    """The egress's info once it has one of `statuses`; fails after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        res = await lk.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))
        if res.items and res.items[0].status in statuses:
            return res.items[0]
        if time.monotonic() > deadline:
            sys.exit(f"egress {egress_id} never reached {statuses}: {res.items[:1]}")
        await asyncio.sleep(0.02)


async def scrape(urls):
    """Late ticks of all running jobs and the slowest encoder, from the nodes' /metrics."""
    import aiohttp

    late, speeds = 0, []
    async with aiohttp.ClientSession() as http:
        for url in urls:
            async with http.get(url) as r:
                text = await r.text()
            late += sum(int(float(v)) for v in re.findall(r"^tessera_job_frames_late\{[^}]*\} (\S+)", text, re.M))
            speeds += [float(v) for v in re.findall(r"^tessera_job_encoder_speed\{[^}]*\} (\S+)", text, re.M)]
    return {"late": late, "slowest": min(speeds) if speeds else None} if urls else {}


async def main(argv):
    lk = api.LiveKitAPI(os.environ["LIVEKIT_URL"], os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
    try:
        if argv[0] == "starts":
            out = []
            for i in range(int(argv[1])):
                t0 = time.time_ns()
                info = await start(lk, "bench", f"start{i}.mp4")
                active = await wait(lk, info.egress_id, api.EgressStatus.EGRESS_ACTIVE)
                out.append((active.updated_at - t0) / 1e6)
                await asyncio.sleep(1)  # a second recorded, so the stop completes it
                await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                await wait(lk, info.egress_id, *FINAL)
            print(json.dumps({"start_to_active_ms": out}))
        elif argv[0] == "rooms":
            n, secs = int(argv[1]), float(argv[2])
            infos = [await start(lk, f"room{i}", f"room{i}.mp4") for i in range(1, n + 1)]
            for info in infos:
                await wait(lk, info.egress_id, api.EgressStatus.EGRESS_ACTIVE)
            await asyncio.sleep(secs)
            health = await scrape([u for u in os.environ.get("NODE_METRICS", "").split(",") if u])
            for info in infos:
                await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                print(f"stopped {info.egress_id} ({info.room_name})", file=sys.stderr, flush=True)
            for info in infos:
                done = await wait(lk, info.egress_id, *FINAL)
                print(f"{info.egress_id}: {api.EgressStatus.Name(done.status)}", file=sys.stderr, flush=True)
            egress = [{"id": i.egress_id, "room": i.room_name, "file": f"{i.room_name}.mp4"} for i in infos]
            print(json.dumps({"egress": egress, **health}))
        else:
            sys.exit(f"usage: {__doc__}")
    finally:
        await lk.aclose()


asyncio.run(main(sys.argv[1:]))
