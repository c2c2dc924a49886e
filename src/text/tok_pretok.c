/* tok_pretok.c - pre-tokenization: hand-written scanners equivalent to the
 * GPT-2 and Llama-3 split regexes, and PCRE2 for any other Split regex.
 *
 * Character classes follow Unicode 15 (utf8proc): \p{L} = Lu Ll Lt Lm Lo,
 * \p{N} = Nd Nl No, \s = the White_Space property (U+0009-000D, U+0020,
 * U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000), as PCRE2 (UCP) and Hugging Face's regex engine have it.
 * (JavaScript's \s, used by the gpt-3-encoder oracle, also takes U+FEFF and
 * leaves out U+0085; the reference strings avoid both.)
 *
 * Invalid UTF-8: every byte that does not start a well-formed sequence (Unicode
 * table 3-7: no overlongs, surrogates or values above U+10FFFF) is a unit of
 * its own, of class "other" (neither letter, number nor space): it groups like
 * punctuation, so a bad byte next to "!?" lands in the same pre-token, and no
 * byte is ever dropped.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>
#include <utf8proc.h>

#include "../core/error.h"
#include "tok_internal.h"

const char *const TOK_RE_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const TOK_RE_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* class of each ASCII byte */
static const uint8_t ascii_class[128] = {
    ['\t'] = CC_WS, ['\n'] = CC_NL, [0x0B] = CC_WS, [0x0C] = CC_WS, ['\r'] = CC_NL,
    [' '] = CC_WS,
    ['0'] = CC_N, ['1'] = CC_N, ['2'] = CC_N, ['3'] = CC_N, ['4'] = CC_N,
    ['5'] = CC_N, ['6'] = CC_N, ['7'] = CC_N, ['8'] = CC_N, ['9'] = CC_N,
    ['A'] = CC_L, ['B'] = CC_L, ['C'] = CC_L, ['D'] = CC_L, ['E'] = CC_L, ['F'] = CC_L,
    ['G'] = CC_L, ['H'] = CC_L, ['I'] = CC_L, ['J'] = CC_L, ['K'] = CC_L, ['L'] = CC_L,
    ['M'] = CC_L, ['N'] = CC_L, ['O'] = CC_L, ['P'] = CC_L, ['Q'] = CC_L, ['R'] = CC_L,
    ['S'] = CC_L, ['T'] = CC_L, ['U'] = CC_L, ['V'] = CC_L, ['W'] = CC_L, ['X'] = CC_L,
    ['Y'] = CC_L, ['Z'] = CC_L,
    ['a'] = CC_L, ['b'] = CC_L, ['c'] = CC_L, ['d'] = CC_L, ['e'] = CC_L, ['f'] = CC_L,
    ['g'] = CC_L, ['h'] = CC_L, ['i'] = CC_L, ['j'] = CC_L, ['k'] = CC_L, ['l'] = CC_L,
    ['m'] = CC_L, ['n'] = CC_L, ['o'] = CC_L, ['p'] = CC_L, ['q'] = CC_L, ['r'] = CC_L,
    ['s'] = CC_L, ['t'] = CC_L, ['u'] = CC_L, ['v'] = CC_L, ['w'] = CC_L, ['x'] = CC_L,
    ['y'] = CC_L, ['z'] = CC_L,
};

size_t tok_utf8_next(const uint8_t *s, size_t n, int32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    int32_t v;
    if (b >= 0xC2 && b <= 0xDF) { need = 2; v = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 3; v = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4; v = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else { *cp = -1; return 1; }
    if (n < need || s[1] < lo || s[1] > hi) { *cp = -1; return 1; }
    v = (v << 6) | (s[1] & 0x3F);
    for (size_t k = 2; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[k] & 0x3F);
    }
    *cp = v;
    return need;
}

int tok_cp_class(int32_t cp) {
    if (cp < 0) return CC_OTHER;
    if (cp < 0x80) return ascii_class[cp];
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
        return CC_WS;
    default: break;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return CC_WS;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CC_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CC_N;
    default: return CC_OTHER;
    }
}

/* class and length of the unit at s[i] (i < n) */
static inline int unit(const uint8_t *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) { *len = 1; return ascii_class[s[i]]; }
    int32_t cp;
    *len = tok_utf8_next(s + i, n - i, &cp);
    return tok_cp_class(cp);
}

static inline int is_ws(int c) { return c == CC_WS || c == CC_NL; }

/* end of the run of units of class c (c == CC_WS: any space) from i */
static size_t run(const uint8_t *s, size_t n, size_t i, int c) {
    while (i < n) {
        size_t l;
        int k = unit(s, n, i, &l);
        if (c == CC_WS ? !is_ws(k) : k != c) break;
        i += l;
    }
    return i;
}

/* \s+(?!\S) then \s+ from 0 (s[0] is a space): the whole run when it ends
 * the text, else all but its last unit when that leaves one, else the one. */
static size_t space_tail(const uint8_t *s, size_t n) {
    size_t i = 0, last = 0, count = 0;
    while (i < n) {
        size_t l;
        if (!is_ws(unit(s, n, i, &l))) break;
        last = i;
        i += l;
        count++;
    }
    if (i == n || count < 2) return i;
    return last;
}

size_t tok_split_gpt2(const uint8_t *s, size_t n) {
    if (s[0] == '\'' && n >= 2) {
        uint8_t c = s[1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
        if (n >= 3 && ((c == 'r' && s[2] == 'e') || (c == 'v' && s[2] == 'e') ||
                       (c == 'l' && s[2] == 'l')))
            return 3;
    }
    size_t l0;
    int c0 = unit(s, n, 0, &l0);
    if (s[0] == ' ' && n > 1) {
        size_t l1;
        int c1 = unit(s, n, 1, &l1);
        if (c1 == CC_L || c1 == CC_N || c1 == CC_OTHER) return run(s, n, 1, c1);
    }
    if (c0 == CC_L || c0 == CC_N || c0 == CC_OTHER) return run(s, n, 0, c0);
    return space_tail(s, n);
}

/* ASCII letter compare, case-insensitive */
static inline int ci(uint8_t a, char lower) { return (a | 0x20) == (uint8_t)lower; }

size_t tok_split_llama3(const uint8_t *s, size_t n) {
    if (s[0] == '\'' && n >= 2) {
        uint8_t c = s[1];
        if (ci(c, 's') || ci(c, 't') || ci(c, 'm') || ci(c, 'd')) return 2;
        /* (?i) folds U+017F LATIN SMALL LETTER LONG S to s */
        if (n >= 3 && c == 0xC5 && s[2] == 0xBF) return 3;
        if (n >= 3 && ((ci(c, 'r') && ci(s[2], 'e')) || (ci(c, 'v') && ci(s[2], 'e')) ||
                       (ci(c, 'l') && ci(s[2], 'l'))))
            return 3;
    }
    size_t l0, l1 = 0;
    int c0 = unit(s, n, 0, &l0);
    int c1 = l0 < n ? unit(s, n, l0, &l1) : -1;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0 != CC_NL && c0 != CC_L && c0 != CC_N && c1 == CC_L) return run(s, n, l0, CC_L);
    if (c0 == CC_L) return run(s, n, 0, CC_L);
    /* \p{N}{1,3} */
    if (c0 == CC_N) {
        size_t i = l0;
        for (int k = 1; k < 3 && i < n; k++) {
            size_t l;
            if (unit(s, n, i, &l) != CC_N) break;
            i += l;
        }
        return i;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c0 == CC_OTHER || (s[0] == ' ' && c1 == CC_OTHER)) {
        size_t i = run(s, n, c0 == CC_OTHER ? 0 : 1, CC_OTHER);
        return run(s, n, i, CC_NL);
    }
    /* \s*[\r\n]+ : through the last newline of the space run */
    size_t i = 0, nl_end = 0;
    while (i < n) {
        size_t l;
        int k = unit(s, n, i, &l);
        if (!is_ws(k)) break;
        i += l;
        if (k == CC_NL) nl_end = i;
    }
    if (nl_end) return nl_end;
    return space_tail(s, n);
}

int tok_re_compile(const char *pattern, size_t len, void **re, const char *label) {
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pattern, len,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &eoff,
                                  NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return mk_fail(MK_ERR_FORMAT, "%s: pre-tokenizer regex does not compile at offset %zu: %s",
                       label, (size_t)eoff, (const char *)msg);
    }
    (void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* optional speed-up */
    *re = c;
    return MK_OK;
}

void tok_re_free(void *re) { pcre2_code_free((pcre2_code *)re); }

int tok_re_next(void *re, const uint8_t *s, size_t n, size_t start, size_t *ms, size_t *me) {
    pcre2_code *c = re;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    if (!md) return 0;
    size_t at = start;
    int found = 0;
    while (at <= n) {
        int rc = pcre2_match(c, (PCRE2_SPTR)s, n, at, 0, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) { *ms = ov[0]; *me = ov[1]; found = 1; break; }
        /* an empty match: look again one unit further */
        if (ov[0] >= n) break;
        int32_t cp;
        at = ov[0] + tok_utf8_next(s + ov[0], n - ov[0], &cp);
    }
    pcre2_match_data_free(md);
    return found;
}
