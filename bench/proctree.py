#!/usr/bin/env python3
"""CPU and memory of a process and all its descendants (Chromium, Xvfb and PulseAudio are
children of `tessera serve`), for the service benches.

  proctree.py cpu PID            -> CPU seconds (user + system) of the live tree
  proctree.py watch PID SECONDS  -> samples every 0.5 s; prints the peak PSS and RSS of the tree in MiB

PSS shares each shared page among the processes that map it, so a tree of Chromium processes
is not counted several times over; RSS is given too.
"""
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def tree(root):
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(p))
        except OSError:
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu(root):
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def memory(root):
    pss = rss = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss / 1024, rss / 1024


if __name__ == "__main__":
    mode, pid = sys.argv[1], int(sys.argv[2])
    if mode == "cpu":
        print(f"{cpu(pid):.2f}")
    else:
        end = time.time() + float(sys.argv[3])
        peak = (0.0, 0.0)
        while time.time() < end:
            m = memory(pid)
            peak = (max(peak[0], m[0]), max(peak[1], m[1]))
            time.sleep(0.5)
        print(f"{peak[0]:.0f} {peak[1]:.0f}")
