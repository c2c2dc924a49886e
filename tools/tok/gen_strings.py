#!/usr/bin/env python3
"""Write tests/data/tok/strings.txt: the test strings every tokenizer oracle
encodes (one per line, escaped; see esc()).

Seeded generator (random.Random(1234)) plus real prompt lines read from the
MedVersa dataset at generation time (the dataset itself is never committed).

    python3 tools/tok/gen_strings.py [/work/shared/datasets/medversa] > /dev/null

Characters deliberately left out: U+0085 and U+FEFF (JavaScript's \\s and
Unicode White_Space disagree on them; medrek follows Unicode, the gpt-3-encoder
oracle follows JavaScript), NUL, surrogates, and code points not assigned in
Unicode 14 (utf8proc 2.8 knows Unicode 15, node knows 17: keep to the common
part).
"""
import json
import os
import random
import sys
import unicodedata

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "tok", "strings.txt")
DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets/medversa"

rng = random.Random(1234)


def esc(s):
    """Escape one string into one line: \\\\ \\n \\t \\r and \\xHH for other
    control bytes; everything else (incl. UTF-8) raw."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def ok_char(c):
    cp = ord(c)
    if cp in (0, 0x85, 0xFEFF) or 0xD800 <= cp <= 0xDFFF:
        return False
    return unicodedata.category(c) != "Cn"


def prompts():
    lines = []
    for name in ("train.json", "valid.json", "test.json"):
        p = os.path.join(DATA, name)
        if not os.path.exists(p):
            continue
        for e in json.load(open(p, encoding="utf-8")):
            for k in ("prompt", "rephrase_prompt", "locality_prompt", "ground_truth",
                      "target_new", "locality_ground_truth", "topic_name"):
                v = e.get(k)
                if isinstance(v, str) and v:
                    lines.append(v)
    return lines


WORDS = ("patient dose mg kg tablet infection fever cough chest pain diabetes insulin "
         "hypertension myocardial infarction aspirin heparin warfarin renal hepatic "
         "cardiac pulmonary embolism sepsis antibiotic penicillin vancomycin MRI CT "
         "ECG HbA1c IgG IL-6 TNF-α COVID-19 SARS-CoV-2 BRCA1 p53 CD4+ T-cells "
         "the of and to in is was for with on by as at from an be this that which "
         "Schwartz sign otosclerosis Down's syndrome Crohn's disease Parkinson's").split()
ACCENT = ("café naïve Ångström façade Müller São Paulo Zürich résumé coöperate "
          "Dvořák Łódź Ærø niño über déjà vu piñata Straße İstanbul Ελληνικά "
          "e\u0301 a\u0308 n\u0303 o\u0302\u0323").split()
CJK = ("糖尿病 高血压 心肌梗死 医生 病人 药物 感染 日本語 病院 看護師 薬 검사 환자 병원 "
       "ひらがな カタカナ 漢字 中文 测试 の が は").split()
EMOJI = ["😀", "🩺", "💊", "🏥", "❤️", "👍🏽", "👩‍⚕️", "🧬", "🇺🇸", "🇮🇳", "✅", "⚠️",
         "🦠", "😷", "👨‍👩‍👧", "🤒", "1️⃣", "©", "™", "∑", "∞", "≤", "→", "°C", "µg", "½"]
SCRIPTS = ("Привет мир больница врач Γειά σου κόσμε مرحبا بالعالم طبيب שלום עולם "
           "नमस्ते दुनिया डॉक्टर สวัสดี ชาวโลก Բարեւ ქართული ᏣᎳᎩ ሰላም "
           "Tiếng Việt bệnh viện").split()
CONTR = ["don't", "I'm", "they'll", "it's", "WE'RE", "We'Re", "'s", "''s", "y'all",
         "o'clock", "she'd", "you've", "'ll", "'t", "rock'n'roll", "'d'", "can't",
         "IT'S", "I'M", "ʼs", "’s", "the patient's", "doctors'", "'m'm"]
PUNCT = "!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~§±–—…«»¿¡·•†‡"
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\t\t", "\x0b", "\x0c",
          "\u00a0", "\u3000", "\u2009", "\u2003", "\u202f", " \t ", "\n \n", "\u2028",
          "    ", "\r", " \r\n "]
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
          (0x900, 0x97F), (0xE00, 0xE7F), (0x1E00, 0x1EFF), (0x2000, 0x206F),
          (0x2070, 0x209F), (0x20A0, 0x20BF), (0x2100, 0x214F), (0x2150, 0x218F),
          (0x2190, 0x23FF), (0x2460, 0x24FF), (0x2500, 0x27BF), (0x3000, 0x30FF),
          (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF),
          (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x10000, 0x1007F), (0x1, 0x1F)]


def rand_char():
    while True:
        lo, hi = rng.choice(RANGES)
        c = chr(rng.randint(lo, hi))
        if ok_char(c):
            return c


def number():
    k = rng.randrange(9)
    if k == 0:
        return str(rng.randint(0, 99))
    if k == 1:
        return str(rng.randint(0, 10 ** rng.randint(1, 15)))
    if k == 2:
        return "%.*f" % (rng.randint(1, 4), rng.uniform(0, 1000))
    if k == 3:
        return "{:,}".format(rng.randint(1000, 10 ** 9))
    if k == 4:
        return "%d/%d" % (rng.randint(60, 200), rng.randint(40, 120))
    if k == 5:
        return "%d%%" % rng.randint(0, 100)
    if k == 6:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
    if k == 7:
        return rng.choice(["²", "³", "½", "Ⅻ", "٣", "४", "①", "¹⁰", "₂"]) + str(rng.randint(0, 9))
    return "%de-%d" % (rng.randint(1, 9), rng.randint(1, 12))


def piece():
    k = rng.randrange(12)
    if k <= 2:
        return rng.choice(WORDS)
    if k == 3:
        return rng.choice(ACCENT)
    if k == 4:
        return rng.choice(CJK)
    if k == 5:
        return rng.choice(EMOJI)
    if k == 6:
        return rng.choice(SCRIPTS)
    if k == 7:
        return rng.choice(CONTR)
    if k == 8:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 6)))
    if k == 9:
        return number()
    if k == 10:
        return "".join(rand_char() for _ in range(rng.randint(1, 4)))
    return rng.choice(WORDS).upper() if rng.random() < 0.5 else rng.choice(WORDS).capitalize()


def sep():
    r = rng.random()
    if r < 0.6:
        return " "
    if r < 0.75:
        return ""
    return rng.choice(SPACES)


def generated():
    n = rng.randint(1, 14)
    s = "".join(piece() + sep() for _ in range(n))
    r = rng.random()
    if r < 0.1:
        s = rng.choice(SPACES) + s
    elif r < 0.2:
        s = s.rstrip(" ")
    return s


def main():
    out = []
    # fixed corner cases first
    out += ["", " ", "  ", "\n", "\t", " \n ", "a", "A", "'", "''", "'s", " 's", "'S",
            "hello world", "Hello  world", "   leading", "trailing   ", "a\n\nb", "x\r\ny",
            "1234567", " 1234", "1,000,000", "3.14159", "!!!", " !!!", "?!?!", "...",
            "don't stop", "I'll", "😀😀😀", "日本語のテキスト", "naïve café", "e\u0301",
            "tab\tsep\tvalues", "multi\n\n\nline", "\u00a0nbsp", "mixed\u3000ideographic",
            "a" * 300, " " * 40, "ab" * 100, "9" * 50, "\n" * 10 + "x"]
    lines = prompts()
    rng.shuffle(lines)
    out += lines[:800]
    # dataset lines with perturbations
    for line in lines[800:1100]:
        r = rng.random()
        if r < 0.3:
            line = line.upper()
        elif r < 0.5:
            line = line.replace(" ", rng.choice(SPACES))
        elif r < 0.7:
            line = line + " " + number() + rng.choice(EMOJI)
        else:
            line = rng.choice(SPACES) + line + rng.choice(SPACES)
        out.append(line)
    while len(out) < 2000:
        out.append(generated())
    for s in out:
        assert all(ok_char(c) or c in "\t\n\r\x0b\x0c" or (1 <= ord(c) < 32) for c in s), repr(s)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for s in out:
            f.write(esc(s) + "\n")
    print("%d strings -> %s" % (len(out), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
