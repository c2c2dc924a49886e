#!/usr/bin/python3
"""Independent GGUF reader for checking files by hand (not used by tests).

Parses a GGUF v2/v3 file with struct only, checks the layout rules llama.cpp
relies on (alignment, offsets packed in order, data in bounds) and prints the
metadata and tensor table; with --values it dequantises the first elements of
every tensor with numpy (F32, F16, BF16, Q8_0, Q4_0).

  /usr/bin/python3 tools/gguf_check.py model.gguf [--values N]

Exit status 0 when the file is well-formed, 1 with a message otherwise.
"""
import struct
import sys

VT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
VNAME = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"]
# ggml type: (name, elements per block, bytes per block)
GT = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}


class Bad(Exception):
    pass


class R:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if n > len(self.b) - self.p:
            raise Bad("truncated at offset %d (need %d bytes)" % (self.p, n))
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def un(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def s(self):
        return self.take(self.un("<Q")).decode("utf-8", "replace")

    def val(self, t):
        if t == 8:
            return self.s()
        if t == 9:
            et, n = self.un("<I"), self.un("<Q")
            if et == 9 or et not in VT and et != 8:
                raise Bad("array of unsupported type %d" % et)
            return [self.val(et) for _ in range(n)]
        if t not in VT:
            raise Bad("invalid value type %d" % t)
        return self.un(VT[t])


def dequant(gt, raw, n):
    import numpy as np
    if gt == 0:
        return np.frombuffer(raw, "<f4", n)
    if gt == 1:
        return np.frombuffer(raw, "<f2", n).astype(np.float32)
    if gt == 30:
        return (np.frombuffer(raw, "<u2", n).astype(np.uint32) << 16).view(np.float32)
    nb = (n + 31) // 32
    if gt == 8:
        blk = np.frombuffer(raw, np.uint8, nb * 34).reshape(nb, 34)
        d = blk[:, :2].copy().view("<f2").astype(np.float32)
        q = blk[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)[:n]
    blk = np.frombuffer(raw, np.uint8, nb * 18).reshape(nb, 18)
    d = blk[:, :2].copy().view("<f2").astype(np.float32)
    qs = blk[:, 2:]
    q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
    return (d * q).reshape(-1)[:n]


def check(path, n_values):
    b = open(path, "rb").read()
    r = R(b)
    if r.take(4) != b"GGUF":
        raise Bad("bad magic")
    ver = r.un("<I")
    if ver not in (2, 3):
        raise Bad("version %d" % ver)
    n_t, n_kv = r.un("<Q"), r.un("<Q")
    print("%s: GGUF v%d, %d metadata entries, %d tensors, %d bytes" % (path, ver, n_kv, n_t, len(b)))
    kv = {}
    for _ in range(n_kv):
        k = r.s()
        t = r.un("<I")
        v = r.val(t)
        if k in kv:
            raise Bad("duplicate key %r" % k)
        kv[k] = v
        shown = v if not isinstance(v, list) or len(v) <= 8 else v[:8] + ["... (%d)" % len(v)]
        print("  %-40s %-4s %r" % (k, VNAME[t] if t < len(VNAME) else t, shown))
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(n_t):
        name = r.s()
        nd = r.un("<I")
        if not 1 <= nd <= 4:
            raise Bad("tensor %r has %d dims" % (name, nd))
        ne = [r.un("<Q") for _ in range(nd)]
        gt, off = r.un("<I"), r.un("<Q")
        if gt not in GT:
            raise Bad("tensor %r has unsupported ggml type %d" % (name, gt))
        infos.append((name, ne, gt, off))
    start = (r.p + align - 1) // align * align
    expect = 0
    for name, ne, gt, off in infos:
        tn, per, nbytes = GT[gt]
        n = 1
        for d in ne:
            n *= d
        if ne[0] % per:
            raise Bad("tensor %r: ne[0]=%d not a multiple of %d" % (name, ne[0], per))
        size = n // per * nbytes
        if off % align:
            raise Bad("tensor %r offset %d not aligned to %d" % (name, off, align))
        if start + off + size > len(b):
            raise Bad("tensor %r data out of bounds" % name)
        packed = "" if off == expect else "  (llama.cpp expects offset %d)" % expect
        expect = off + (size + align - 1) // align * align
        shape = list(reversed(ne))
        print("  tensor %-36s %-5s shape %-20s offset %d%s" % (name, tn, shape, off, packed))
        if n_values:
            k = min(n, n_values)
            kb = (k + per - 1) // per * nbytes
            vals = dequant(gt, b[start + off:start + off + kb], k)
            print("         " + " ".join("%.6g" % x for x in vals))
    print("  data section at %d, alignment %d: ok" % (start, align))


if __name__ == "__main__":
    args = sys.argv[1:]
    nv = 0
    if "--values" in args:
        i = args.index("--values")
        nv = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        print(__doc__)
        sys.exit(2)
    try:
        check(args[0], nv)
    except (Bad, OSError, UnicodeDecodeError) as e:
        print("%s: %s" % (args[0], e))
        sys.exit(1)
