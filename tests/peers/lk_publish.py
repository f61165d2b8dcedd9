"""Publishes a moving colour pattern (640x360, or --size) and a 440 Hz tone into a
room with the LiveKit Python SDK's default options (simulcast on: at 1280x720 its
three layers are 320x180, 640x360 and 1280x720), for a given time."""
import argparse
import os, array, asyncio, math
from livekit import api, rtc

async def main(a):
    token = (api.AccessToken(a.key, a.secret).with_identity(a.identity).with_name(a.identity)
             .with_grants(api.VideoGrants(room_join=True, room=a.room)).to_jwt())
    room = rtc.Room()
    await asyncio.wait_for(room.connect(a.url, token), 20)
    w, h = (int(v) for v in a.size.split("x"))
    vsrc = rtc.VideoSource(w, h)
    vtrack = rtc.LocalVideoTrack.create_video_track("camera", vsrc)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    if a.codec == "h264":
        opts.video_codec = rtc.VideoCodec.H264
    await room.local_participant.publish_track(vtrack, opts)
    asrc = rtc.AudioSource(48000, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("mic", asrc)
    await room.local_participant.publish_track(atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    print("published", flush=True)
    background = b"\xc8\x28\x28\xff" * (w * h)
    t0 = asyncio.get_running_loop().time()
    n = 0
    phase = 0.0
    async def audio():
        nonlocal phase
        while True:
            samples = []
            for _ in range(480):
                samples.append(int(8000 * math.sin(phase)))
                phase += 2 * math.pi * 440 / 48000
            f = rtc.AudioFrame.create(48000, 1, 480)
            f.data[:] = array.array("h", samples)
            await asrc.capture_frame(f)
    task = asyncio.create_task(audio())
    while asyncio.get_running_loop().time() - t0 < a.seconds:
        x = (n * 8) % (w - 16)
        frame = bytearray(background)
        for y in range(h):
            o = (y * w + x) * 4
            frame[o:o + 64] = b"\xff\xff\xff\xff" * 16
        vsrc.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, bytes(frame)))
        n += 1
        await asyncio.sleep(1 / 15)
    task.cancel()
    await room.disconnect()
    print("done", n, flush=True)

p = argparse.ArgumentParser()
for k, d in [("url", "ws://127.0.0.1:7880"), ("key", "devkey"), ("secret", "secret"), ("room", "r1"), ("identity", "pub")]:
    p.add_argument("--" + k, default=d)
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--size", default="640x360")
p.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
asyncio.run(main(p.parse_args()))
# Skip interpreter teardown, where the SDK's native callbacks can land in a finalising interpreter.
os._exit(0)
