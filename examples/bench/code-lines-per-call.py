#!/usr/bin/env python3
"""Code lines per call: how much distinct machine code one call runs, from two callgrind dumps.

Usage: code-lines-per-call.py SHORT.out SHORT_CALLS LONG.out LONG_CALLS [TOP=25]

Both dumps come from `valgrind --tool=callgrind --dump-instr=yes` runs of the same binary
(valgrind loads it at the same addresses every time), one over more calls than the other.
An instruction's count in the long run less its count in the short run, divided by the
difference of the calls, is how often one call runs it; start-up and warm-up cancel out.
Instructions run at least half a time per call are the call's code; the 64-byte cache lines
they lie on are what the processor has to fetch into its instruction cache for a call. When
something else ran in between (the kernel's network stack, another process), those lines are
cold again, and each costs a fetch from further out.

A function entered less than half a time per call (a sweeper every few milliseconds, a
batch handed on every 64 calls) is left out even when a loop in it runs often; a function
never entered in the window (an event loop that lives across calls) is kept. What such a
batch calls once per item (a recorder's per-value function) still counts as if every call
ran it, so the figures are an upper bound. The lines are listed per function (a line shared
by several functions is split between them).
"""

import collections
import re
import sys

LINE = 64


def load(path):
    """From one dump: executions per instruction address, the function of each address, and
    how often each function was entered."""
    names = {}
    counts = collections.Counter()
    entries = collections.Counter()
    callee = None
    owner = {}
    function = None
    npos = 1
    last = [0, 0]
    after_calls = False

    def position(token, i):
        if token == "*":
            return last[i]
        if token[0] == "+":
            return last[i] + int(token[1:], 0)
        if token[0] == "-":
            return last[i] - int(token[1:], 0)
        return int(token, 0)

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("positions:"):
                npos = len(line.split()) - 1
                continue
            if line.startswith(("fn=", "cfn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    if line.startswith("fn="):
                        function = m.group(1)
                    else:
                        callee = m.group(1)
                elif line.startswith("fn="):
                    function = line[3:].strip()
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost, not this function's own.
                after_calls = True
                entries[callee] += int(line[6:].split()[0])
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            tokens = line.split()
            pos = []
            for i in range(npos):
                v = position(tokens[i], i)
                pos.append(v)
                last[i] = v
            if after_calls:
                after_calls = False
                continue
            if len(tokens) > npos:
                counts[pos[0]] += int(tokens[npos])
                owner[pos[0]] = function

    def name(f):
        # Callgrind names the deeper levels of a recursion `f'2`, `f'3`: one function.
        return re.sub(r"'\d+$", "", names.get(f, f))

    entered = collections.Counter()
    for f, n in entries.items():
        entered[name(f)] += n
    return counts, {a: name(f) for a, f in owner.items()}, entered


def main():
    short_path, short_calls, long_path, long_calls = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 25
    calls = int(long_calls) - int(short_calls)
    if calls <= 0:
        sys.exit("the long run made no more calls than the short one")
    short, _, short_entered = load(short_path)
    long, owner, long_entered = load(long_path)

    def per_call(f):
        # Entered at least half a time per call, or never entered at all (an event loop).
        if long_entered.get(f, 0) == 0:
            return True
        return long_entered[f] - short_entered.get(f, 0) >= 0.5 * calls

    hot = [
        a
        for a, n in long.items()
        if n - short.get(a, 0) >= 0.5 * calls and per_call(owner[a])
    ]
    lines = collections.defaultdict(set)
    for a in hot:
        lines[a // LINE].add(owner[a])
    per_function = collections.Counter()
    for functions in lines.values():
        for f in functions:
            per_function[f] += 1 / len(functions)
    print(
        f"{len(hot)} instructions on {len(lines)} cache lines "
        f"({len(lines) * LINE / 1024:.1f} KiB) per call"
    )
    for f, n in per_function.most_common(top):
        print(f"{n:7.1f}  {f[:150]}")


if __name__ == "__main__":
    main()
