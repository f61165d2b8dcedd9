#!/usr/bin/env python3
"""HLS timing over a long recording, for bench/hls_drift.sh.

  hls_drift.py watch PLAYLIST SECONDS  -> follows the playlist as it grows and notes, for each new
                                          segment, the wall time it appeared (JSON lines on stdout)
  hls_drift.py report PLAYLIST WATCHED -> compares, per segment: program-date-time against the media
                                          time inside the segment (ffprobe), and the wall time the
                                          segment appeared against its program-date-time end; prints JSON

No drift means: program-date-time minus media time stays constant to the millisecond, and the
appearance lag (wall time the segment was listed minus the end of its program-date-time) does not
grow from the first minutes to the last.
"""
import datetime
import json
import os
import subprocess
import sys
import time


def parse(text):
    segs, pdt, dur = [], None, None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif line.startswith("#EXTINF:"):
            dur = float(line.split(":", 1)[1].rstrip(","))
        elif line and not line.startswith("#"):
            segs.append({"name": line, "pdt": pdt, "dur": dur})
    return segs


def watch(playlist, seconds):
    seen = set()
    end = time.time() + seconds
    while time.time() < end:
        try:
            with open(playlist) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        now = time.time()
        for s in parse(text):
            if s["name"] not in seen:
                seen.add(s["name"])
                print(json.dumps({"name": s["name"], "seen": now}), flush=True)
        time.sleep(0.1)


def first_pts(path, stream):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time",
         "-read_intervals", "%+#1", "-of", "csv=p=0", path],
        capture_output=True, text=True).stdout.split()
    return float(out[0].strip(",")) if out else None


WRAP = 2 ** 33 / 90000  # MPEG-TS timestamps wrap (AAC priming starts audio just below 0)


def av(r):
    if r["a"] is None or r["v"] is None:
        return None
    d = (r["a"] - r["v"] + WRAP / 2) % WRAP - WRAP / 2
    return round(d * 1000, 1)


def report(playlist, watched):
    with open(playlist) as f:
        segs = parse(f.read())
    seen = {}
    with open(watched) as f:
        for line in f:
            w = json.loads(line)
            seen[w["name"]] = w["seen"]
    d = os.path.dirname(playlist)
    rows = []
    for s in segs:
        path = os.path.join(d, s["name"])
        v, a = first_pts(path, "v:0"), first_pts(path, "a:0")
        rows.append({**s, "v": v, "a": a, "seen": seen.get(s["name"])})
    p0, v0 = rows[0]["pdt"], rows[0]["v"]
    # program-date-time against the media time inside the segments
    pdt_vs_media = [abs((r["pdt"] - p0) - (r["v"] - v0)) * 1000 for r in rows if r["v"] is not None]
    # when each segment was listed, minus the wall time its end stands for
    lag = [(r["seen"] - (r["pdt"] + r["dur"])) * 1000 for r in rows if r["seen"] is not None]
    n = max(1, len(lag) // 6)
    span_s = rows[-1]["pdt"] + rows[-1]["dur"] - p0
    print(json.dumps({
        "segments": len(rows),
        "media_s": round(sum(r["dur"] for r in rows), 3),
        "pdt_span_s": round(span_s, 3),
        "pdt_vs_media_max_ms": round(max(pdt_vs_media), 3),
        "lag_first_ms": round(sum(lag[:n]) / n, 1),
        "lag_last_ms": round(sum(lag[-n:]) / n, 1),
        "lag_min_ms": round(min(lag), 1),
        "lag_max_ms": round(max(lag), 1),
        "av_first_ms": av(rows[0]),
        "av_last_ms": av(rows[-2]) if len(rows) > 1 else None,
        "durations_off_target": sum(1 for r in rows[:-1] if abs(r["dur"] - rows[0]["dur"]) > 0.034),
    }))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "watch":
        watch(sys.argv[2], float(sys.argv[3]))
    else:
        report(sys.argv[2], sys.argv[3])
