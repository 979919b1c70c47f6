"""Character maps inside tokenizer.json: an OpenCC conversion (t2s, ...) compiled, character by character, into the
`precompiled_charsmap` of a `tokenizers` `normalizers.Precompiled`, so the conversion travels with the tokenizer
folder and every consumer (and transformers) applies it.

    normalizers.Precompiled(precompiled_charsmap(opencc_charmap("t2s"))).normalize_str("還不錯")   # '还不错'
"""
from __future__ import annotations

import functools
import struct

from electra.errors import ElectraError
from electra.readers import make_converter


@functools.lru_cache(maxsize=4)
def opencc_charmap(name: str) -> dict[str, str]:
    """OpenCC's conversion `name` (t2s, tw2s, hk2s, s2t, ...) character by character: {char: replacement} for every
    code point it changes. Character-level, so it can live in tokenizer.json; OpenCC's phrase table (e.g. 乾隆
    keeping 乾) is not applied, the same way at training and at every later encode."""
    convert = make_converter(name)
    table = {}
    for cp in range(0x80, 0x323B0):  # Latin-1 .. CJK Extension H: everything OpenCC's tables touch
        if 0xD800 <= cp < 0xE000:  # surrogates
            continue
        char = chr(cp)
        out = convert(char)
        if out != char:
            table[char] = out
    return table


def precompiled_charsmap(table: dict[str, str]) -> bytes:
    """A {char: replacement} table as the `precompiled_charsmap` of `normalizers.Precompiled` (sentencepiece's
    format): u32 trie size in bytes, a Darts-clone double-array trie over the keys' UTF-8 bytes whose leaves hold
    offsets into the NUL-terminated replacement strings that follow."""
    blob, trie = bytearray(), {}
    for key in sorted(table):
        node = trie
        for byte in key.encode():  # UTF-8 is prefix-free: no key ends inside another
            node = node.setdefault(byte, {})
        node[0] = len(blob)  # label 0 holds the leaf value
        blob += table[key].encode() + b"\0"
    units, used, bases = [0], bytearray(b"\1"), set()

    def grow(n: int) -> None:
        if n > len(units):
            units.extend([0] * (n - len(units)))
            used.extend(bytes(n - len(used)))

    def place(pos: int, node: dict, label: int) -> None:
        # A node's children sit at base ^ label; base is unique per node and every child slot must be free.
        labels, start = sorted(node), 1
        while True:
            grow(start + 512)
            start = used.find(0, start) if used.find(0, start) >= 0 else len(used)
            base = start ^ labels[0]
            grow((base | 0xFF) + 1)
            if base not in bases and not any(used[base ^ c] for c in labels):
                break
            start += 1
        bases.add(base)
        for c in labels:
            used[base ^ c] = 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ElectraError("the conversion table is too large for a precompiled character map")
        units[pos] = offset << 10 | (1 << 8 if 0 in node else 0) | label  # offset, has-leaf bit, label
        for c in labels:
            if c == 0:
                units[base] = 1 << 31 | node[0]  # a value unit: the top bit keeps it from matching any label
            else:
                place(base ^ c, node[c], c)

    place(0, trie, 0)
    packed = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(packed)) + packed + bytes(blob)
