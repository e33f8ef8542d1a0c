"""What a compiled step moves and computes, read from its optimized HLO (``compiled_work``):
the bytes of its arrays and its floating-point operations, against which a step's time is
read as a bandwidth."""

from __future__ import annotations

import math
import re


_HLO_COMPUTATION = re.compile(r"^(?:ENTRY )?%(?P<name>[\w.\-]+) \(.*\{$")


_HLO_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT )?%(?P<name>[\w.\-]+) = (?P<shape>\(.*?\)|\w+\[[\d,]*\](?:\{[^}]*\})?) "
    r"(?P<op>[\w\-]+)\((?P<args>[^)]*)\)(?P<rest>.*)$")


_HLO_ARRAY = re.compile(r"(?P<dtype>[a-z]+\d*)\[(?P<dims>[\d,]*)\]")


_HLO_BYTES = {"pred": 1, "s8": 1, "u8": 1, "f16": 2, "bf16": 2, "s16": 2, "f32": 4, "s32": 4,
              "u32": 4, "f64": 8, "s64": 8, "u64": 8}


# Instructions that move or compute nothing per element.
_HLO_FREE = {"parameter", "constant", "broadcast", "bitcast", "reshape", "tuple",
             "get-tuple-element", "iota"}


def _hlo_arrays(shape: str) -> list[tuple[int, int]]:
    """(elements, bytes per element) of each array in an HLO shape (a tuple has several)."""
    return [(math.prod(int(d) for d in m["dims"].split(",") if d), _HLO_BYTES.get(m["dtype"], 4))
            for m in _HLO_ARRAY.finditer(shape)]


def compiled_work(hlo: str, parameters: int, min_elements: int) -> tuple[float, float]:
    """(bytes read + written, element-wise operations) per parameter of a compiled step.

    Read off XLA's optimized HLO text: every instruction of the entry computation that
    produces an array of at least ``min_elements`` elements (the parameters' tensors) is a
    pass over memory that reads its array operands of that size and writes its result; a
    fusion's operations are the non-trivial instructions of the computation it calls
    (``_HLO_FREE`` excepted). Both sums are weighted by the array's size and divided by
    ``parameters``. Deterministic, unlike the timings: where the custom and the built-in
    step move the same bytes and do the same operations, XLA gives them the same loop.
    """
    computations: dict[str, dict[str, tuple]] = {}
    entry, current = None, None
    for line in hlo.splitlines():
        head = _HLO_COMPUTATION.match(line)
        if head:
            current = computations.setdefault(head["name"], {})
            if line.startswith("ENTRY"):
                entry = current
            continue
        inst = _HLO_INSTRUCTION.match(line)
        if inst and current is not None:
            current[inst["name"]] = (inst["shape"], inst["op"], inst["args"], inst["rest"])

    def big(shape):
        return [a for a in _hlo_arrays(shape) if a[0] >= min_elements]

    def operations(name):
        return sum(1 for shape, op, _, _ in computations.get(name, {}).values()
                   if op not in _HLO_FREE and big(shape))

    moved = ops = 0.0
    for shape, op, args, rest in (entry or {}).values():
        written = big(shape)
        if op in _HLO_FREE or not written:
            continue
        elements = written[0][0]
        read = [a for arg in re.findall(r"%([\w.\-]+)", args) if arg in entry
                for a in big(entry[arg][0])]
        moved += sum(n * b for n, b in written + read)
        called = re.search(r"calls=%([\w.\-]+)", rest)
        ops += elements * (operations(called[1]) if op == "fusion" and called else 1)
    return moved / parameters, ops / parameters
