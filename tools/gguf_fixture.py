#!/usr/bin/python3
"""Independent reference data for tests/test_gguf.c and tests/test_dtype.c.

Writes GGUF files by hand from the format description (struct only, no gguf
package) and computes f16 / bf16 conversions with numpy / PyTorch and GGML's
Q8_0 / Q4_0 block rules with numpy float32 arithmetic.

Run with Debian's python (numpy + torch):  /usr/bin/python3 tools/gguf_fixture.py
Outputs (tests/data/gguf/):
  v3.gguf, v2.gguf   small GGUF files whose content test_gguf.c checks
  dtype_f16_all.bin  65536 x u32: f32 bits of every f16 bit pattern (numpy)
  dtype_f32_cases.bin N x (u32 f32 bits, u16 numpy f16 bits, u16 torch bf16 bits)
  dtype_qblocks.bin  N x (32 f32 in, 34 B Q8_0, 32 f32 Q8_0 dequant,
                          18 B Q4_0, 32 f32 Q4_0 dequant)
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflib import (GG_ARR as ARR, GG_BOOL as BOOL, GG_F32 as F32, GG_F64 as F64,  # noqa: E402
                    GG_I8 as I8, GG_I16 as I16, GG_I32 as I32, GG_I64 as I64, GG_STR as STR,
                    GG_U8 as U8, GG_U16 as U16, GG_U32 as U32, GG_U64 as U64,
                    GGML_BF16 as G_BF16, GGML_F16 as G_F16, GGML_F32 as G_F32,
                    GGML_Q4_0 as G_Q4_0, GGML_Q8_0 as G_Q8_0, f16_bits, q4_0_block, q8_0_block,
                    write_gguf as write_gguf_raw)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "gguf")

# ---- element types ----

def bf16_bits(x):
    t = torch.from_numpy(np.asarray(x, dtype=np.float32).copy()).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def tensor_bytes(gtype, x):
    x = np.asarray(x, dtype=np.float32)
    if gtype == G_F32:
        return x.astype("<f4").tobytes()
    if gtype == G_F16:
        return f16_bits(x).astype("<u2").tobytes()
    if gtype == G_BF16:
        return bf16_bits(x).astype("<u2").tobytes()
    blocks = x.reshape(-1, 32)
    fn = q8_0_block if gtype == G_Q8_0 else q4_0_block
    return b"".join(fn(b)[0] for b in blocks)


def fixture_values(n, k):
    """x_k[i] = ((i*37 + k*11) % 101 - 50) / 16: exact in f16 and bf16."""
    i = np.arange(n, dtype=np.int64)
    return (((i * 37 + k * 11) % 101) - 50).astype(np.float32) / np.float32(16)


def write_gguf(path, version, kvs, tensors, align=32, data_order=None):
    """kvs: [(key, type, value)]; tensors: [(name, gtype, row-major shape)],
    tensor k holding fixture_values(n, k); every blob padded to align."""
    raws = [(name, shape, gt, tensor_bytes(gt, fixture_values(int(np.prod(shape)), k)))
            for k, (name, gt, shape) in enumerate(tensors)]
    write_gguf_raw(path, kvs, raws, version, align, data_order, pad_last=True)


def gguf_files():
    v3_kvs = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "fixture v3"),
        ("f.u8", U8, 7), ("f.i8", I8, -7), ("f.u16", U16, 65535), ("f.i16", I16, -32768),
        ("f.u32", U32, 123456789), ("f.i32", I32, -123456789), ("f.f32", F32, 0.125),
        ("f.bool", BOOL, 1), ("f.u64", U64, 2**63 + 5), ("f.i64", I64, -(2**62)),
        ("f.f64", F64, 2.5e-300),
        ("f.arr_u8", ARR, (U8, [1, 2, 3])),
        ("f.arr_i32", ARR, (I32, [-1, 0, 1, 2147483647])),
        ("f.arr_f32", ARR, (F32, [0.5, -1.5])),
        ("f.arr_str", ARR, (STR, ["alpha", "", "gamma \u03b4"])),
        ("f.arr_bool", ARR, (BOOL, [0, 1])),
        ("f.arr_empty", ARR, (F32, [])),
        ("f.arr_u64", ARR, (U64, [2**64 - 1])),
        ("f.arr_f64", ARR, (F64, [-0.25])),
    ]
    v3_tensors = [
        ("t.f32", G_F32, (2, 3)),
        ("t.f16", G_F16, (4,)),
        ("t.bf16", G_BF16, (2, 2)),
        ("t.q8", G_Q8_0, (2, 64)),
        ("t.q4", G_Q4_0, (3, 32)),
    ]
    write_gguf(os.path.join(OUT, "v3.gguf"), 3, v3_kvs, v3_tensors)

    v2_kvs = [
        ("general.architecture", STR, "gpt2"),
        ("general.alignment", U32, 64),
        ("tokenizer.ggml.tokens", ARR, (STR, ["tok%d" % i for i in range(300)])),
        ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in range(300)])),
    ]
    v2_tensors = [("a", G_F32, (5,)), ("b", G_Q8_0, (32,)), ("c.weight", G_F16, (3, 1, 2, 8))]
    write_gguf(os.path.join(OUT, "v2.gguf"), 2, v2_kvs, v2_tensors, align=64, data_order=[2, 1, 0])

    # small seeds for fuzz/fuzz_gguf.c
    seeds = os.path.join(OUT, "..", "..", "..", "fuzz", "corpus", "fuzz_gguf")
    os.makedirs(seeds, exist_ok=True)
    write_gguf(os.path.join(seeds, "v3.gguf"), 3, v3_kvs, v3_tensors)
    write_gguf(os.path.join(seeds, "v2.gguf"), 2,
               [("general.alignment", U32, 8), ("tokenizer.ggml.tokens", ARR, (STR, ["a", "bc", ""])),
                ("s", ARR, (F64, [1.0, 2.0])), ("b", ARR, (BOOL, [1]))],
               [("x", G_F16, (3,)), ("y", G_Q4_0, (1, 32))], align=8, data_order=[1, 0])
    write_gguf(os.path.join(seeds, "empty.gguf"), 3, [], [])
    write_gguf(os.path.join(seeds, "kv_only.gguf"), 3, [("k", I64, -1), ("m", ARR, (I16, [-2, 3]))], [])


def dtype_files():
    # every f16 bit pattern -> f32 bits
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    f = h.view(np.float16).astype(np.float32)
    f.view(np.uint32).astype("<u4").tofile(os.path.join(OUT, "dtype_f16_all.bin"))

    # f32 -> f16 / bf16 cases
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e6, -1e6,
               2.0**-14, 2.0**-24, 2.0**-25, -(2.0**-25), 2.0**-26, 1e-10, 3.4028235e38,
               1.1754944e-38, 1e-45, float("inf"), float("-inf"), float("nan"),
               0.1, 1.0 / 3.0, 2.0 / 3.0, 1.0009765625, 1.00048828125, 1.00146484375]
    cases = list(np.array(special, dtype=np.float32).view(np.uint32))
    # exact halfway points between neighbouring f16 values (ties), normal and subnormal
    for hb in [0x0001, 0x0002, 0x0003, 0x01ff, 0x03ff, 0x0400, 0x0401, 0x3c00, 0x3c01, 0x7bfe, 0x7bff]:
        lo = np.float32(np.array(hb, dtype=np.uint16).view(np.float16))
        hi = np.float32(np.array(hb + 1, dtype=np.uint16).view(np.float16))
        mid = np.float32((np.float64(lo) + np.float64(hi)) / 2)
        for v in [mid, np.nextafter(mid, np.float32(0)), np.nextafter(mid, np.float32(np.inf))]:
            cases.append(np.float32(v).view(np.uint32))
            cases.append(np.float32(-v).view(np.uint32))
    # bf16 ties
    for b in [0x3f80, 0x3f81, 0x7f7f, 0x0001]:
        mid = (b << 16) | 0x8000
        cases += [mid, mid - 1, mid + 1]
    rng = np.random.default_rng(1234)
    cases += list(rng.integers(0, 2**32, size=12000, dtype=np.uint64).astype(np.uint32))
    # values inside and around the f16 range
    cases += list((rng.standard_normal(6000) * np.exp(rng.uniform(-20, 12, 6000))).astype(np.float32).view(np.uint32))
    cu = np.array(cases, dtype=np.uint32)
    cf = cu.view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        hb = f16_bits(cf)
    bb = bf16_bits(cf)
    rec = np.zeros(len(cu), dtype=[("f", "<u4"), ("h", "<u2"), ("b", "<u2")])
    rec["f"], rec["h"], rec["b"] = cu, hb, bb
    rec.tofile(os.path.join(OUT, "dtype_f32_cases.bin"))

    # quantisation blocks
    blocks = []
    blocks.append(np.zeros(32, np.float32))  # all zero
    blocks.append(np.arange(32, dtype=np.float32) - 16)  # max magnitude is negative (-16)
    b = np.arange(32, dtype=np.float32) - 15.5
    blocks.append(b)  # +-15.5: first largest magnitude is -15.5
    b = np.full(32, 0.5, np.float32); b[3] = 127.0; b[4] = -2.5; b[5] = 2.5; b[6] = -126.5
    blocks.append(b)  # Q8_0 ties (id = 1): round half away from zero
    b = np.linspace(-1, 1, 32).astype(np.float32); b[7] = 8.0; b[8] = -8.0
    blocks.append(b)  # Q4_0: max +8 -> d=-1, element -8 gives 16.5 -> clamped to 15
    blocks.append((np.arange(32, dtype=np.float32) - 10) * np.float32(1e-6))  # f16 subnormal scale
    blocks.append((np.arange(32, dtype=np.float32) + 1) * np.float32(3000.0))  # large
    b = np.zeros(32, np.float32); b[31] = -1e-3
    blocks.append(b)
    for _ in range(24):
        blocks.append((rng.standard_normal(32) * np.exp(rng.uniform(-3, 3))).astype(np.float32))
    with open(os.path.join(OUT, "dtype_qblocks.bin"), "wb") as fo:
        for x in blocks:
            r8, d8 = q8_0_block(x)
            r4, d4 = q4_0_block(x)
            assert len(r8) == 34 and len(r4) == 18
            fo.write(x.astype("<f4").tobytes() + r8 + d8.astype("<f4").tobytes() + r4 + d4.astype("<f4").tobytes())
    return len(cu), len(blocks)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    gguf_files()
    n_cases, n_blocks = dtype_files()
    print("wrote v3.gguf, v2.gguf, dtype_f16_all.bin, %d f32 cases, %d quant blocks to %s" % (n_cases, n_blocks, OUT))
