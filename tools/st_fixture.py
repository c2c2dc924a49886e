#!/usr/bin/python3
"""Write safetensors fixtures for tests/test_safetensors.c and tests/test_weights.c.

Independent of medrek and of the `safetensors` package: the files are laid
out by hand from the format description (u64 LE header length, JSON header
starting with '{' padded with spaces, data section covered exactly by the
tensors' [begin, end) offsets). Values come from torch 1.13 (its float16 and
bfloat16 rounding is the reference for the stored bytes).

For each fixture X.safetensors a reference X_ref.json lists every tensor
(name, dtype, shape, n, ref_offset) and X_ref.f32 holds the expected values
as little-endian float32, tensor after tensor.

Run: /usr/bin/python3 tools/st_fixture.py   (from the repository root)
     /usr/bin/python3 tools/st_fixture.py --verify FILE   (check a file by hand)
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflib import (GG_ARR, GG_F32, GG_I32, GG_STR, GGML_F32, st_header, write_gguf,  # noqa: E402
                    write_safetensors_raw)

OUT = os.path.join("tests", "data", "safetensors")
DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def raw_bytes(t):
    """Little-endian bytes of a tensor (int views keep bf16 bytes intact)."""
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    return t.view(torch.int16).numpy().astype("<i2").tobytes()


def write_st(path, tensors, data_order, metadata=None):
    """tensors: list of (name, dtype_str, torch tensor) in HEADER order;
    data_order: names in the order their bytes are laid out (may differ
    from the header order, which readers must not assume)."""
    write_safetensors_raw(path, [(n, d, t.shape, raw_bytes(t)) for n, d, t in tensors], metadata,
                          data_order, meta_first=True, ensure_ascii=False)


def write_ref(stem, tensors):
    entries, vals, off = [], [], 0
    for n, d, t in tensors:
        v = t.float().reshape(-1)  # exact: every f16/bf16 value is an f32
        entries.append({"name": n, "dtype": d, "shape": list(t.shape), "n": v.numel(), "ref_offset": off})
        vals.append(v.numpy().astype("<f4").tobytes())
        off += v.numel()
    with open(stem + "_ref.json", "w") as f:
        json.dump(entries, f, indent=1)
    with open(stem + "_ref.f32", "wb") as f:
        f.write(b"".join(vals))


def mixed():
    g = torch.Generator().manual_seed(1234)
    f16 = torch.randn(2, 3, 5, generator=g) * 4
    # Special values: largest f16, a subnormal, negative zero, infinities.
    f16.view(-1)[:6] = torch.tensor([65504.0, 5.9604645e-08, -0.0, float("inf"), float("-inf"), 1.0 / 3])
    bf16 = torch.randn(7, generator=g) * 1000
    bf16[0] = 3.0e38
    bf16[1] = -1.0e-38
    tensors = [
        ("w_f16", "F16", f16.to(torch.float16)),
        ("w_f32", "F32", torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 2),
        ("w_bf16", "BF16", bf16.to(torch.bfloat16)),
        ("scalar", "F32", torch.tensor(3.25)),
        ("empty", "F16", torch.zeros(0, 4, dtype=torch.float16)),
        ("four_d", "BF16", (torch.randn(2, 1, 2, 3, generator=g)).to(torch.bfloat16)),
        ("x.y/z ü", "F32", torch.tensor([1.5, -2.5])),
    ]
    order = ["scalar", "w_bf16", "empty", "w_f32", "four_d", "w_f16", "x.y/z ü"]
    stem = os.path.join(OUT, "mixed")
    write_st(stem + ".safetensors", tensors, order,
             {"format": "pt", "note": "medrek fixture \u00fc \"quoted\""})
    write_ref(stem, tensors)


def hfdir():
    g = torch.Generator().manual_seed(42)
    d = os.path.join(OUT, "hfdir")
    os.makedirs(d, exist_ok=True)
    s1 = [
        ("model.embed_tokens.weight", "F32", torch.randn(8, 4, generator=g)),
        ("model.layers.0.self_attn.q_proj.weight", "BF16", torch.randn(4, 4, generator=g).to(torch.bfloat16)),
    ]
    s2 = [
        ("model.norm.weight", "F16", (1 + 0.1 * torch.randn(4, generator=g)).to(torch.float16)),
        ("lm_head.weight", "F32", torch.randn(8, 4, generator=g)),
    ]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    write_st(os.path.join(d, names[0]), s1, [n for n, _, _ in s1], {"format": "pt"})
    write_st(os.path.join(d, names[1]), s2, [n for n, _, _ in reversed(s2)], {"format": "pt"})
    weight_map = {n: names[0] for n, _, _ in s1}
    weight_map.update({n: names[1] for n, _, _ in s2})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4,
                   "vocab_size": 8, "num_hidden_layers": 1}, f, indent=2)
    write_ref(os.path.join(OUT, "hfdir"), s1 + s2)


def skip_fixture():
    """Tensors of dtypes medrek does not compute with (an I64 position_ids
    buffer as older RoBERTa checkpoints carry, a BOOL mask) beside F32."""
    pos = torch.arange(6, dtype=torch.int64).reshape(1, 6).numpy().astype("<i8").tobytes()
    mask = bytes([1, 0, 1])
    w = torch.tensor([0.25, -4.0]).numpy().astype("<f4").tobytes()
    header = {
        "embeddings.position_ids": {"dtype": "I64", "shape": [1, 6], "data_offsets": [0, 48]},
        "w": {"dtype": "F32", "shape": [2], "data_offsets": [48, 56]},
        "mask": {"dtype": "BOOL", "shape": [3], "data_offsets": [56, 59]},
    }
    with open(os.path.join(OUT, "skip.safetensors"), "wb") as f:
        f.write(st_header(header) + pos + w + mask)


def inspect_gguf():
    """A GGUF v3 file (layout from the GGUF spec) for `medrek inspect`:
    a long string, control characters, long int and string arrays, and a
    tensor name holding an escape character."""
    kv = [
        (b"general.architecture", GG_STR, "llama"),
        (b"test.long", GG_STR, "a" * 500 + "END"),
        (b"test.ctrl", GG_STR, b"bell\x07esc\x1b[31mred\nnl"),
        (b"test.many", GG_ARR, (GG_I32, list(range(100)))),
        (b"test.strs", GG_ARR, (GG_STR, ["s%d" % i for i in range(20)])),
        (b"test.f", GG_F32, 1.5),
    ]
    tensors = [(b"w", (2, 3), torch.arange(6, dtype=torch.float32)), (b"e\x1bvil", (4,), torch.ones(4))]
    write_gguf(os.path.join(OUT, "inspect.gguf"), kv,
               [(n, shape, GGML_F32, t.numpy().astype("<f4").tobytes()) for n, shape, t in tensors],
               pad_last=True)


def verify(path):
    """Parse a safetensors file by hand (e.g. one medrek wrote) and print
    each tensor through torch: an independent check of the writer."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n].decode("utf-8")
    assert text[0] == "{" and n % 8 == 0, "header must start with '{' and be padded to 8"
    hdr = json.loads(text)
    meta = hdr.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    data = raw[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1]) for v in hdr.values())
    at = 0
    for b, e in spans:
        assert b == at, "hole or overlap at %d" % at
        at = e
    assert at == len(data), "data section not covered exactly"
    size = {"F32": 4, "F16": 2, "BF16": 2}
    for name, v in hdr.items():
        b, e = v["data_offsets"]
        count = 1
        for d in v["shape"]:
            count *= d
        assert e - b == count * size[v["dtype"]], name
        buf = bytearray(data[b:e])
        if v["dtype"] == "F32":
            t = torch.frombuffer(buf, dtype=torch.float32) if count else torch.zeros(0)
        else:
            t = (torch.frombuffer(buf, dtype=torch.int16) if count else torch.zeros(0, dtype=torch.int16)).view(DT[v["dtype"]])
        print(name, v["dtype"], v["shape"], t.float().reshape(v["shape"]).tolist())
    print("metadata", meta)
    print("ok", path, file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        verify(sys.argv[2])
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    mixed()
    hfdir()
    skip_fixture()
    inspect_gguf()
    print("wrote fixtures under", OUT)
