#!/usr/bin/env python3
"""Module dependency check: builds the graph of the crate's top-level modules from every
`crate::<module>` path in src/ (uses, paths in code, `pub use` re-exports), prints each
module's dependencies, and fails if any modules form a cycle (a strongly connected
component of more than one module). Run by `make lint`.

Why a script: `cargo modules` would need its own build of the crate's analysis (minutes on
these machines) for a check that reads paths. Comments are stripped first; strings are
not, since serde's `with = \"crate::...\"` attributes are dependencies too."""
import re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent / "src"
lib = (root / "lib.rs").read_text()
modules = re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;", lib, re.M)

def top_of(path: Path) -> str | None:
    rel = path.relative_to(root)
    name = rel.parts[0].removesuffix(".rs")
    return name if name in modules else None

def strip(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    # cfg(test) modules use whatever they like.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
    return text[: cut.start()] if cut else text

graph = {m: set() for m in modules}
for f in root.rglob("*.rs"):
    src = top_of(f)
    if src is None:
        continue
    text = strip(f.read_text())
    for m in re.findall(r"\bcrate::([a-z_0-9]+)", text):
        if m in graph and m != src:
            graph[src].add(m)
    # `use crate::{a, b::c}` groups.
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        for m in re.findall(r"(?:^|,)\s*([a-z_0-9]+)", group):
            if m in graph and m != src:
                graph[src].add(m)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)

if "-v" in sys.argv:
    for m in sorted(graph):
        print(f"{m:10} -> {', '.join(sorted(graph[m])) or '-'}")
cycles = [c for c in sccs if len(c) > 1]
for c in cycles:
    edges = [f"{a} -> {b}" for a in c for b in sorted(graph[a]) if b in c]
    print(f"cycle among {', '.join(c)}: {'; '.join(edges)}")
if cycles:
    sys.exit(1)
print(f"{len(modules)} modules, no cycle")
