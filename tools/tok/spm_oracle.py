#!/usr/bin/python3
"""SentencePiece reference data (Debian's python3-sentencepiece).

Trains a small BPE model with byte fallback the way Llama-2's was set up
(identity normalization, dummy prefix, no whitespace squeezing, split digits,
whitespace-only pieces allowed; <unk>=0 <s>=1 </s>=2, then the 256 <0xXX>
byte pieces) on medical text from the MedVersa prompts, and writes into
tests/data/tok/spm/:

  spm.model        the SentencePiece model (for regeneration only)
  tokenizer.json   the same vocabulary as a Llama-2 style Hugging Face file
                   (BPE + merges, byte_fallback, Prepend/Replace normalizer,
                   TemplateProcessing <s> $A)
  tokenizer.gguf   the same as GGUF metadata (tokenizer.ggml.model "llama",
                   tokens/scores/token_type, bos/eos/unk ids, add_bos_token),
                   no tensors; written here with struct (GGUF v3)
and tests/data/tok/spm_ref.txt: sentencepiece's ids (no BOS) of every string
of tests/data/tok/strings.txt, one line each.

    /usr/bin/python3 tools/tok/spm_oracle.py [/work/shared/datasets/medversa]
"""
import json
import os
import struct
import sys
import tempfile

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "tok")
DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets/medversa"
VOCAB = 1500


def unescape(line):
    out = bytearray()
    raw = line.encode("utf-8")
    i = 0
    while i < len(raw):
        b = raw[i]
        if b != 0x5C:
            out.append(b)
            i += 1
            continue
        c = chr(raw[i + 1])
        if c == "n":
            out.append(10)
        elif c == "t":
            out.append(9)
        elif c == "r":
            out.append(13)
        elif c == "\\":
            out.append(0x5C)
        elif c == "x":
            out.append(int(raw[i + 2:i + 4].decode(), 16))
            i += 2
        else:
            raise ValueError(line)
        i += 2
    return out.decode("utf-8")


def training_text(path):
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for name in ("train.json", "valid.json"):
            for e in json.load(open(os.path.join(DATA, name), encoding="utf-8")):
                for k in ("prompt", "rephrase_prompt", "locality_prompt", "ground_truth",
                          "target_new", "locality_ground_truth", "topic_name", "subject_name"):
                    v = e.get(k)
                    if isinstance(v, str) and v.strip():
                        f.write(v.replace("\n", " ") + "\n")
                        n += 1
    return n


def write_gguf(path, pieces, scores, types):
    def s(x):
        b = x.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    kv = []

    def put(key, typ, payload):
        kv.append(s(key) + struct.pack("<I", typ) + payload)

    put("general.architecture", 8, s("llama"))
    put("tokenizer.ggml.model", 8, s("llama"))
    put("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(pieces)) + b"".join(s(p) for p in pieces))
    put("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(scores)) +
        b"".join(struct.pack("<f", x) for x in scores))
    put("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(types)) +
        b"".join(struct.pack("<i", x) for x in types))
    put("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1))
    put("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2))
    put("tokenizer.ggml.unknown_token_id", 4, struct.pack("<I", 0))
    put("tokenizer.ggml.add_bos_token", 7, struct.pack("<B", 1))
    put("tokenizer.ggml.add_eos_token", 7, struct.pack("<B", 0))
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    body = head + b"".join(kv)
    body += b"\0" * ((-len(body)) % 32)
    with open(path, "wb") as f:
        f.write(body)


def main():
    os.makedirs(os.path.join(OUT, "spm"), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        txt = os.path.join(tmp, "train.txt")
        n = training_text(txt)
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(
            input=txt, model_prefix=prefix, model_type="bpe", vocab_size=VOCAB,
            byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
            allow_whitespace_only_pieces=True, max_sentencepiece_length=16,
            character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            num_threads=1, minloglevel=2)
        model = open(prefix + ".model", "rb").read()
    with open(os.path.join(OUT, "spm", "spm.model"), "wb") as f:
        f.write(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    V = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(V)]
    scores = [sp.get_score(i) for i in range(V)]
    # GGUF token types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
    types = []
    for i in range(V):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    # tokenizer.json merges: every split of a normal piece into two pieces,
    # ordered by the merged piece's score (highest first), then by the parts' ids
    index = {p: i for i, p in enumerate(pieces)}
    merges = []
    for i, p in enumerate(pieces):
        if types[i] != 1 or len(p) < 2:
            continue
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in index and b in index and types[index[a]] == 1 and types[index[b]] == 1:
                merges.append((-scores[i], i, index[a], index[b], a, b))
    merges.sort()
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": pieces[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i in (0, 1, 2)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True,
                  "vocab": {p: i for i, p in enumerate(pieces)},
                  "merges": [a + " " + b for (_, _, _, _, a, b) in merges]},
    }
    with open(os.path.join(OUT, "spm", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    write_gguf(os.path.join(OUT, "spm", "tokenizer.gguf"), pieces, scores, types)
    lines = open(os.path.join(OUT, "strings.txt"), encoding="utf-8").read().split("\n")[:-1]
    with open(os.path.join(OUT, "spm_ref.txt"), "w") as f:
        for line in lines:
            f.write(" ".join(str(x) for x in sp.encode(unescape(line))) + "\n")
    # what sentencepiece's own round trip gives (information only)
    bad = sum(sp.decode(sp.encode(unescape(l))) != unescape(l) for l in lines)
    print("%d training lines, vocab %d, %d merges, %d strings (%d not round-tripped by "
          "sentencepiece)" % (n, V, len(merges), len(lines), bad), file=sys.stderr)


if __name__ == "__main__":
    main()
