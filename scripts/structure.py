#!/usr/bin/env python3
"""House rules a reviewer would otherwise count by hand, checked on every run.

- no production source file over 800 lines (tests and generated code aside);
- no production function over 100 lines;
- no cycle between the modules of a crate (edges from `use crate::…`,
  `crate::…` paths and `super::…` paths, between top-level modules and
  between sibling modules of a folder).

Prints what breaks a rule and exits 1; prints a one-line summary otherwise.
`--report` lists the longest functions and files too.
"""
import os
import re
import sys
from collections import defaultdict

ROOTS = ["crates", "gateway"]
MAX_FILE = 800
MAX_FN = 100
SKIP_DIRS = {"target", "node_modules", "gen", "tests", "benches", "fuzz", "web"}

FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def rust_files():
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for f in filenames:
                if f.endswith(".rs") and f != "build.rs":
                    yield os.path.join(dirpath, f)


def production_lines(lines):
    """Lines before a trailing `#[cfg(test)] mod tests`."""
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod \w+", lines[i + 1]):
            return lines[:i]
    return lines


def strip_strings(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "' '", line)
    return line.split("//")[0]


def functions(path, lines):
    """(name, first line, length) of each function body in `lines`."""
    out = []
    i = 0
    n = len(lines)
    while i < n:
        m = FN_RE.match(lines[i])
        if not m:
            i += 1
            continue
        name = m.group(6)
        depth = 0
        started = False
        j = i
        while j < n:
            code = strip_strings(lines[j])
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            for ch in code:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
            if started and depth <= 0:
                break
            j += 1
        if started:
            out.append((name, i + 1, j - i + 1))
            i = j + 1
        else:
            i += 1
    return out


def crate_of(path):
    parts = path.split(os.sep)
    if "src" not in parts:
        return None, None
    k = parts.index("src")
    return os.sep.join(parts[:k]), parts[k + 1:]


def module_path(rel):
    """src-relative parts → module path list."""
    parts = list(rel)
    last = parts[-1][:-3]
    parts = parts[:-1]
    if last not in ("lib", "main", "mod"):
        parts.append(last)
    return parts


def module_edges(files):
    """Edges between modules of the same parent, per crate."""
    edges = defaultdict(set)  # (crate, parent tuple) -> set of (from, to)
    for path in files:
        crate, rel = crate_of(path)
        if crate is None:
            continue
        me = module_path(rel)
        with open(path, encoding="utf-8") as fh:
            text = "".join(production_lines(fh.readlines()))
        text = re.sub(r"//[^\n]*", "", text)
        targets = set()
        for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
            targets.add(tuple(m.group(1).split("::")))
        for m in re.finditer(r"\b((?:super::)+)((?:\w+::)*\w+)", text):
            ups = m.group(1).count("super::")
            base = me[: len(me) - ups]
            targets.add(tuple(base + m.group(2).split("::")))
        for m in re.finditer(r"\buse\s+crate::\{([^;]*)\};", text, re.S):
            for item in re.findall(r"\b(\w+)(?:::|\s*[,}]|\s*$)", m.group(1)):
                targets.add((item,))
        for t in targets:
            t = list(t)
            # the edge between the first differing modules under a common parent
            k = 0
            while k < len(me) and k < len(t) and me[k] == t[k]:
                k += 1
            if k >= len(me) or k >= len(t):
                continue
            parent = tuple(me[:k])
            edges[(crate, parent)].add((me[k], t[k]))
    return edges


def cycles(edge_set):
    graph = defaultdict(set)
    for a, b in edge_set:
        if a != b:
            graph[a].add(b)
    found = []
    state = {}
    stack = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return found


def main():
    report = "--report" in sys.argv
    problems = []
    files = sorted(rust_files())
    longest = []
    sizes = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        prod = production_lines(lines)
        sizes.append((len(prod), path))
        if len(prod) > MAX_FILE:
            problems.append(f"{path}: {len(prod)} production lines (at most {MAX_FILE})")
        for name, line, length in functions(path, prod):
            longest.append((length, f"{path}:{line} {name}"))
            if length > MAX_FN:
                problems.append(f"{path}:{line}: fn {name} is {length} lines (at most {MAX_FN})")
    for (crate, parent), edge_set in sorted(module_edges(files).items()):
        for cycle in cycles(edge_set):
            where = "::".join(parent) or "crate root"
            problems.append(f"{crate} ({where}): module cycle {' -> '.join(cycle)}")
    if report:
        print("longest functions:")
        for length, what in sorted(longest, reverse=True)[:15]:
            print(f"  {length:4} {what}")
        print("largest files:")
        for length, path in sorted(sizes, reverse=True)[:10]:
            print(f"  {length:4} {path}")
    if problems:
        print("\n".join(problems))
        print(f"structure: {len(problems)} problem(s) in {len(files)} files")
        sys.exit(1)
    over80 = sum(1 for length, _ in longest if length > 80)
    print(f"structure: {len(files)} files, {len(longest)} functions (longest {max(longest)[0]} lines, {over80} over 80), no module cycle")


if __name__ == "__main__":
    main()
