#!/usr/bin/env python3
"""Glass-to-ingest latency from wall-clock flashes, for bench/latency.sh.

The picture flashes white at every whole multiple of 5 s of Unix time (devroom's
synthetic participants with --wall-clock-marks, or `source` below). `receive` is the
ingest: an FFmpeg RTMP listener that decodes (one thread, no buffering) to a 16x16
grey picture per frame; the time a flash's first frame arrives, minus the 5 s mark
it belongs to, is that frame's glass-to-ingest latency (plus one tiny decode).
Everything runs on one machine, so the clocks are the same clock.

  flash_latency.py receive URL SECONDS  -> JSON {"flashes": n, "p50_ms", "p95_ms", "max_ms", "all_ms"}
  flash_latency.py source URL SECONDS   -> the floor: raw 720p30 frames, flashing on the same
                                           marks, paced on the wall clock into FFmpeg's x264
                                           (Tessera's stream settings) publishing to URL
"""
import json
import subprocess
import sys
import time

EVERY = 5.0
SIDE = 16


def receive(url: str, seconds: float) -> None:
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error",
        "-fflags", "nobuffer", "-flags", "low_delay", "-threads", "1",
        "-listen", "1", "-i", url,
        "-map", "0:v", "-vf", f"scale={SIDE}:{SIDE},format=gray",
        "-f", "rawvideo", "-flush_packets", "1", "pipe:1",
    ]
    ff = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=0)
    assert ff.stdout is not None
    size = SIDE * SIDE
    latencies = []
    recent: list[float] = []
    last_mark = None
    end = None
    while True:
        buf = b""
        while len(buf) < size:
            chunk = ff.stdout.read(size - len(buf))
            if not chunk:
                break
            buf += chunk
        if len(buf) < size:
            break
        now = time.time()
        end = end or now + seconds
        mean = sum(buf) / size
        # A flash is a jump to near-white from whatever the picture was showing.
        base = sorted(recent)[len(recent) // 2] if recent else mean
        mark = (now // EVERY) * EVERY
        # Only a flash's first frame counts (a flash lasts several frames).
        if mean > 200 and base < 170 and mark != last_mark:
            latencies.append((now - mark) * 1000)
            last_mark = mark
        recent = (recent + [mean])[-15:]
        if now >= end:
            break
    ff.kill()
    ff.wait()
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None
    print(json.dumps({
        "flashes": len(latencies), "p50_ms": pick(0.5), "p95_ms": pick(0.95),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "all_ms": [round(x, 1) for x in latencies],
    }))


def source(url: str, seconds: float) -> None:
    w, h, fps = 1280, 720, 30
    grey = bytes([80]) * (w * h) + bytes([128]) * (w * h // 2)
    white = bytes([235]) * (w * h) + bytes([128]) * (w * h // 2)
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "main",
        "-b:v", "3000k", "-bf", "0", "-g", str(4 * fps), "-threads", "2",
        "-f", "flv", "-flush_packets", "1", url,
    ]
    ff = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert ff.stdin is not None
    start = time.time()
    k = 0
    try:
        while True:
            due = start + k / fps
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            if due - start > seconds:
                break
            # The frame shows the moment it is due: white for the first 100 ms of each mark.
            ff.stdin.write(white if due % EVERY < 0.1 else grey)
            ff.stdin.flush()
            k += 1
    except BrokenPipeError:
        pass
    ff.stdin.close()
    ff.wait()


if __name__ == "__main__":
    mode, url, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
    {"receive": receive, "source": source}[mode](url, secs)
