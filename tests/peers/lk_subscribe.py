"""Joins a room, subscribes to everything, and prints a JSON summary of what it
received: per track the decoded video sizes and frame count, or audio frames
and level; participants seen, mutes, and who left."""
import argparse
import os, asyncio, json, math
from livekit import api, rtc

async def main(a):
    token = (api.AccessToken(a.key, a.secret).with_identity(a.identity)
             .with_grants(api.VideoGrants(room_join=True, room=a.room, can_publish=False, hidden=a.hidden)).to_jwt())
    room = rtc.Room()
    seen = {"participants": set(), "left": set(), "muted": set(), "unmuted": set(), "speakers": set(), "tracks": {}}
    tasks = []

    async def read_video(track, key):
        s = seen["tracks"][key]
        async for ev in rtc.VideoStream(track):
            s["frames"] += 1
            s["last_at"] = round(asyncio.get_running_loop().time() - started, 2)
            s.setdefault("size_at", {})[f"{ev.frame.width}x{ev.frame.height}"] = s["last_at"]
            s["sizes"].add((ev.frame.width, ev.frame.height))
            if s["frames"] == 10:
                # The median of a grid of points: the participant's colour, whatever
                # moving bar or label covers some of them.
                rgba = ev.frame.convert(rtc.VideoBufferType.RGBA)
                d, w, h = rgba.data, rgba.width, rgba.height
                pts = [((y * h // 6) * w + x * w // 6) * 4 for y in range(1, 6) for x in range(1, 6)]
                s["pixel"] = [sorted(d[o + c] for o in pts)[len(pts) // 2] for c in range(3)]

    async def read_audio(track, key):
        s = seen["tracks"][key]
        async for ev in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
            s["frames"] += 1
            data = ev.frame.data
            s["energy"] += sum(v * v for v in data) / max(len(data), 1)

    @room.on("track_subscribed")
    def on_track(track, pub, participant):
        key = f"{participant.identity}/{track.kind}"
        seen["tracks"][key] = {"frames": 0, "sizes": set(), "energy": 0.0}
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.append(asyncio.ensure_future(read_video(track, key)))
            if a.quality == "low":
                async def lower():
                    # Full quality first, then ask for the lowest simulcast layer.
                    await asyncio.sleep(3)
                    pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                    seen["requested_low_at"] = round(asyncio.get_running_loop().time() - started, 2)
                tasks.append(asyncio.ensure_future(lower()))
        else:
            tasks.append(asyncio.ensure_future(read_audio(track, key)))

    @room.on("active_speakers_changed")
    def on_speakers(speakers):
        for p in speakers:
            seen["speakers"].add(p.identity)

    @room.on("participant_connected")
    def on_join(p):
        seen["participants"].add(p.identity)

    @room.on("participant_disconnected")
    def on_leave(p):
        seen["left"].add(p.identity)

    @room.on("track_muted")
    def on_mute(participant, publication):
        seen["muted"].add(f"{participant.identity}/{publication.kind}")

    @room.on("track_unmuted")
    def on_unmute(participant, publication):
        seen["unmuted"].add(f"{participant.identity}/{publication.kind}")

    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(room.connect(a.url, token), 20)
    for p in room.remote_participants.values():
        seen["participants"].add(p.identity)
    await asyncio.sleep(a.seconds)
    for t in tasks:
        t.cancel()
    out = {k: sorted(v) if isinstance(v, set) else v for k, v in seen.items()}
    for s in out["tracks"].values():
        s["sizes"] = sorted(s["sizes"])
        s["rms"] = math.sqrt(s.pop("energy") / s["frames"]) if s["frames"] else 0.0
    # The summary goes out before leaving: the SDK's native library has been seen to abort while tearing down.
    print(json.dumps(out), flush=True)
    await asyncio.wait_for(room.disconnect(), 10)

p = argparse.ArgumentParser()
for k, d in [("url", "ws://127.0.0.1:7880"), ("key", "devkey"), ("secret", "secret"), ("room", "r1"), ("identity", "sub")]:
    p.add_argument("--" + k, default=d)
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--hidden", action="store_true")
p.add_argument("--quality", choices=["high", "low"], default="high")
asyncio.run(main(p.parse_args()))
# Skip interpreter teardown, where the SDK's native callbacks can land in a finalising interpreter.
os._exit(0)
