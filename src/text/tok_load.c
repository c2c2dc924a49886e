/* tok_load.c - tokenizer file formats: Hugging Face tokenizer.json, GPT-2 /
 * RoBERTa vocab.json + merges.txt, and GGUF metadata (tokenizer.ggml.*).
 *
 * What is understood (anything else is MK_ERR_UNSUPPORTED, named):
 *  - model: BPE with vocab + merges ("a b" strings or [a, b] pairs),
 *    byte_fallback, fuse_unk, ignore_merges, unk_token.
 *  - pre_tokenizer: ByteLevel (add_prefix_space, use_regex), Split with a
 *    Regex pattern and behavior Isolated (the GPT-2 and Llama-3 patterns run
 *    on built-in scanners, any other through PCRE2), Metaspace (replacement
 *    "▁", prepend_scheme / add_prefix_space, split), Sequence of these.
 *  - normalizer: Prepend("▁"), Replace(" " -> "▁"), Sequence of these (the
 *    Llama-2 layout).
 *  - post_processor: TemplateProcessing (its "single" template),
 *    RobertaProcessing / BertProcessing, ByteLevel, Sequence.
 *  - decoder: not read; decoding follows the model family (byte-level
 *    mapping, or "▁" -> " " + <0xXX> bytes + strip of the dummy prefix).
 *  - bos/eos/pad are not stored in tokenizer.json: the template's first
 *    special token is BOS, else well-known names (<s>, <|begin_of_text|>,
 *    <|endoftext|>; </s>, <|end_of_text|>, <|endoftext|>; <pad>).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/error.h"
#include "../io/gguf.h"
#include "../io/mapfile.h"
#include "tok_internal.h"

#define TOK_MAX_FILE ((size_t)1 << 30) /* 1 GiB: far above any real tokenizer */
#define TOK_MAX_VOCAB (1 << 24)
#define TOK_MAX_MERGED 256 /* bytes: longest GGUF "llama" piece reachable by merges */

static const char SPM_SPACE[] = "\xE2\x96\x81"; /* "▁" */

/* ------------------------------------------------------------ helpers */

static int json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d) return -1;
    *out = (int64_t)d;
    return 0;
}

static int json_bool(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsTrue(v)) return 1;
    if (cJSON_IsFalse(v)) return 0;
    return dflt;
}

static const char *json_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int32_t find_cstr(const mk_tokenizer *t, const char *s) {
    return s ? tok_find(t, s, strlen(s)) : -1;
}

static int32_t first_of(const mk_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = find_cstr(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* Add merge "a b" (a and b as byte ranges): both parts and their
 * concatenation must be in the vocabulary. */
static int add_merge_text(mk_tokenizer *t, const char *a, size_t al, const char *b, size_t bl,
                          int32_t rank, const char *label, char **buf, size_t *bufcap) {
    int32_t ia = tok_find(t, a, al), ib = tok_find(t, b, bl);
    if (ia < 0 || ib < 0)
        return mk_fail(MK_ERR_FORMAT, "%s: merge %ld (\"%.*s\" \"%.*s\") uses a token that is not "
                       "in the vocabulary", label, (long)rank + 1, (int)(al > 40 ? 40 : al), a,
                       (int)(bl > 40 ? 40 : bl), b);
    if (al + bl > *bufcap) {
        size_t cap = (al + bl) * 2 + 64;
        char *nb = realloc(*buf, cap);
        if (!nb) return mk_fail(MK_ERR_NOMEM, "%s: out of memory", label);
        *buf = nb;
        *bufcap = cap;
    }
    memcpy(*buf, a, al);
    memcpy(*buf + al, b, bl);
    int32_t m = tok_find(t, *buf, al + bl);
    if (m < 0)
        return mk_fail(MK_ERR_FORMAT, "%s: merge %ld (\"%.*s\" \"%.*s\") makes a token that is not "
                       "in the vocabulary", label, (long)rank + 1, (int)(al > 40 ? 40 : al), a,
                       (int)(bl > 40 ? 40 : bl), b);
    return tok_add_merge(t, ia, ib, rank, m);
}

/* Vocabulary object {"piece": id, ...} into t (before tok_finish). */
/* ids must be dense, so none can reach the number of entries (max_ids):
 * checked here so a hostile id cannot make us allocate for 16M tokens */
static int load_vocab_obj(mk_tokenizer *t, const cJSON *vocab, int64_t max_ids, const char *label) {
    if (!cJSON_IsObject(vocab))
        return mk_fail(MK_ERR_FORMAT, "%s: the vocabulary is not a JSON object", label);
    const cJSON *e;
    if (max_ids > TOK_MAX_VOCAB) max_ids = TOK_MAX_VOCAB;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id;
        if (!e->string || json_int(e, 0, max_ids - 1, &id))
            return mk_fail(MK_ERR_FORMAT, "%s: vocabulary entry \"%.40s\" has no valid id "
                           "(ids run 0..%lld without gaps)", label, e->string ? e->string : "",
                           (long long)max_ids - 1);
        int rc = tok_set_piece(t, (int32_t)id, e->string, strlen(e->string), label);
        if (rc) return rc;
    }
    return MK_OK;
}

/* The id range must be dense up to the last id: a hole means a broken file. */
static int check_dense(const mk_tokenizer *t, const char *label) {
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->off[id] == UINT32_MAX)
            return mk_fail(MK_ERR_FORMAT, "%s: no token has id %ld (ids must run 0..%ld without "
                           "gaps)", label, (long)id, (long)t->n_vocab - 1);
    return MK_OK;
}

/* ------------------------------------------------- vocab.json + merges.txt */

static int parse_merges_txt(mk_tokenizer *t, const char *txt, size_t len, const char *label) {
    char *buf = NULL;
    size_t bufcap = 0, i = 0, line = 0;
    int32_t rank = 0;
    int rc = MK_OK;
    while (i < len) {
        size_t e = i;
        while (e < len && txt[e] != '\n') e++;
        size_t l = e - i;
        if (l && txt[i + l - 1] == '\r') l--;
        line++;
        const char *s = txt + i;
        i = e + 1;
        if (l == 0 || (line == 1 && l >= 8 && !memcmp(s, "#version", 8))) continue;
        const char *sp = memchr(s, ' ', l);
        if (!sp || sp == s || sp == s + l - 1 || memchr(sp + 1, ' ', (size_t)(s + l - sp - 1))) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: line %zu is not a merge \"a b\"", label, line);
            goto done;
        }
        if (rank == INT32_MAX - 1) { rc = mk_fail(MK_ERR_FORMAT, "%s: too many merges", label); goto done; }
        rc = add_merge_text(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + l - sp - 1), rank++, label,
                            &buf, &bufcap);
        if (rc) goto done;
    }
done:
    free(buf);
    return rc;
}

/* mark id as an added special token */
static void mark_special(mk_tokenizer *t, int32_t id, int extra) {
    if (id >= 0) t->attr[id] |= TA_SPECIAL | TA_ADDED | TA_NOMERGE | extra;
}

int mk_tok_load_vocab_merges_mem(const char *vocab_json, size_t vocab_len, const char *merges,
                                 size_t merges_len, const char *label, mk_tokenizer **out) {
    cJSON *root = NULL;
    mk_tokenizer *t = NULL;
    int rc;
    if (!out || (!vocab_json && vocab_len) || (!merges && merges_len) || !label)
        return mk_fail(MK_ERR_ARG, "mk_tok_load_vocab_merges_mem: NULL argument");
    *out = NULL;
    root = cJSON_ParseWithLength(vocab_json ? vocab_json : "", vocab_len);
    if (!root) return mk_fail(MK_ERR_FORMAT, "%s: vocab.json is not valid JSON", label);
    t = tok_new(TOK_BYTE_LEVEL);
    if (!t) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", label); goto fail; }
    if ((rc = load_vocab_obj(t, root, cJSON_GetArraySize(root), label))) goto fail;
    if ((rc = check_dense(t, label))) goto fail;
    t->split = SPLIT_GPT2;
    if ((rc = tok_index(t, label))) goto fail;
    /* specials: RoBERTa (<s> <pad> </s> <unk> <mask>) or GPT-2 (<|endoftext|>) */
    int32_t s = find_cstr(t, "<s>"), e = find_cstr(t, "</s>"), eot = find_cstr(t, "<|endoftext|>");
    t->pad = find_cstr(t, "<pad>");
    t->unk = find_cstr(t, "<unk>");
    mark_special(t, s, 0);
    mark_special(t, e, 0);
    mark_special(t, t->pad, 0);
    mark_special(t, t->unk, 0);
    mark_special(t, find_cstr(t, "<mask>"), TA_LSTRIP); /* RoBERTa's <mask> eats the space before it */
    mark_special(t, eot, 0);
    if (s >= 0 && e >= 0) {
        t->bos = s;
        t->eos = e;
        t->pre_ids[t->n_pre++] = s;
        t->post_ids[t->n_post++] = e;
    } else if (eot >= 0) {
        t->bos = t->eos = eot; /* GPT-2 adds nothing on MK_TOK_SPECIAL */
    }
    if ((rc = tok_finish(t, label))) goto fail;
    if ((rc = parse_merges_txt(t, merges ? merges : "", merges_len, label))) goto fail;
    cJSON_Delete(root);
    *out = t;
    return MK_OK;
fail:
    cJSON_Delete(root);
    mk_tok_free(t);
    return rc;
}

int mk_tok_load_vocab_merges(const char *vocab_json, const char *merges_txt, mk_tokenizer **out) {
    char *v = NULL, *m = NULL;
    size_t vl, ml;
    int rc;
    if (!vocab_json || !merges_txt || !out)
        return mk_fail(MK_ERR_ARG, "mk_tok_load_vocab_merges: NULL argument");
    *out = NULL;
    if ((rc = mk_read_file(vocab_json, TOK_MAX_FILE, &v, &vl))) return rc;
    if ((rc = mk_read_file(merges_txt, TOK_MAX_FILE, &m, &ml))) { free(v); return rc; }
    rc = mk_tok_load_vocab_merges_mem(v, vl, m, ml, vocab_json, out);
    if (rc) mk_fail_ctx(rc, "%s + %s", vocab_json, merges_txt);
    free(v);
    free(m);
    return rc;
}

/* ------------------------------------------------------- tokenizer.json */

typedef struct {
    int byte_level, split, prefix_space, prepend, prepend_if_missing, replace_space;
    const char *regex;
} pt_conf;

static int parse_pretok(const cJSON *p, pt_conf *c, const char *label) {
    if (!p || cJSON_IsNull(p)) return MK_OK;
    const char *type = json_str(p, "type");
    if (!type) return mk_fail(MK_ERR_FORMAT, "%s: pre_tokenizer without a type", label);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(arr))
            return mk_fail(MK_ERR_FORMAT, "%s: pre_tokenizer Sequence without a pretokenizers array",
                           label);
        cJSON_ArrayForEach(e, arr) {
            int rc = parse_pretok(e, c, label);
            if (rc) return rc;
        }
        return MK_OK;
    }
    int want_split = SPLIT_NONE;
    if (!strcmp(type, "ByteLevel")) {
        c->byte_level = 1;
        c->prefix_space = json_bool(p, "add_prefix_space", 0);
        if (json_bool(p, "use_regex", 1)) want_split = SPLIT_GPT2;
    } else if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = json_str(pat, "Regex");
        const char *beh = json_str(p, "behavior");
        if (!re)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: Split pre-tokenizer without a Regex pattern is "
                           "not supported", label);
        if ((beh && strcmp(beh, "Isolated")) || json_bool(p, "invert", 0))
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: Split pre-tokenizer behavior %s%s is not "
                           "supported (only Isolated)", label, beh ? beh : "?",
                           json_bool(p, "invert", 0) ? " inverted" : "");
        if (!strcmp(re, TOK_RE_GPT2)) want_split = SPLIT_GPT2;
        else if (!strcmp(re, TOK_RE_LLAMA3)) want_split = SPLIT_LLAMA3;
        else { want_split = SPLIT_PCRE; c->regex = re; }
    } else if (!strcmp(type, "Metaspace")) {
        const char *rep = json_str(p, "replacement");
        if (rep && strcmp(rep, SPM_SPACE))
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: Metaspace replacement other than \"▁\" is not "
                           "supported", label);
        const char *scheme = json_str(p, "prepend_scheme");
        if (scheme) {
            if (!strcmp(scheme, "always")) c->prepend = PREPEND_ALWAYS;
            else if (!strcmp(scheme, "first")) c->prepend = PREPEND_FIRST;
            else if (!strcmp(scheme, "never")) c->prepend = PREPEND_NEVER;
            else return mk_fail(MK_ERR_FORMAT, "%s: Metaspace prepend_scheme \"%s\" unknown", label, scheme);
        } else {
            c->prepend = json_bool(p, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        }
        c->prepend_if_missing = 1;
        c->replace_space = 1;
        if (json_bool(p, "split", 1)) want_split = SPLIT_METASPACE;
    } else {
        return mk_fail(MK_ERR_UNSUPPORTED, "%s: pre_tokenizer type %s is not supported (ByteLevel, "
                       "Split, Metaspace, Sequence are)", label, type);
    }
    if (want_split != SPLIT_NONE) {
        if (c->split != SPLIT_NONE)
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: two splitting pre-tokenizers in sequence are not "
                           "supported", label);
        c->split = want_split;
    }
    return MK_OK;
}

static int parse_normalizer(const cJSON *p, pt_conf *c, const char *label) {
    if (!p || cJSON_IsNull(p)) return MK_OK;
    const char *type = json_str(p, "type");
    if (!type) return mk_fail(MK_ERR_FORMAT, "%s: normalizer without a type", label);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "normalizers"), *e;
        if (!cJSON_IsArray(arr))
            return mk_fail(MK_ERR_FORMAT, "%s: normalizer Sequence without a normalizers array", label);
        cJSON_ArrayForEach(e, arr) {
            int rc = parse_normalizer(e, c, label);
            if (rc) return rc;
        }
        return MK_OK;
    }
    if (!strcmp(type, "Prepend")) {
        const char *s = json_str(p, "prepend");
        if (!s || strcmp(s, SPM_SPACE))
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: Prepend normalizer other than \"▁\" is not "
                           "supported", label);
        c->prepend = PREPEND_ALWAYS;
        return MK_OK;
    }
    if (!strcmp(type, "Replace")) {
        const char *from = json_str(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        const char *to = json_str(p, "content");
        if (!from || !to || strcmp(from, " ") || strcmp(to, SPM_SPACE))
            return mk_fail(MK_ERR_UNSUPPORTED, "%s: Replace normalizer other than \" \" -> \"▁\" is "
                           "not supported", label);
        c->replace_space = 1;
        return MK_OK;
    }
    return mk_fail(MK_ERR_UNSUPPORTED, "%s: normalizer type %s is not supported (Prepend, Replace, "
                   "Sequence are)", label, type);
}

/* id of a template special token: the special_tokens map, else the vocab */
static int32_t template_id(const mk_tokenizer *t, const cJSON *specials, const char *name) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
    int64_t v;
    if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 1 &&
        !json_int(cJSON_GetArrayItem(ids, 0), 0, t->n_vocab - 1, &v))
        return (int32_t)v;
    return find_cstr(t, name);
}

static int parse_post(mk_tokenizer *t, const cJSON *p, const char *label) {
    if (!p || cJSON_IsNull(p)) return MK_OK;
    const char *type = json_str(p, "type");
    if (!type) return mk_fail(MK_ERR_FORMAT, "%s: post_processor without a type", label);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        cJSON_ArrayForEach(e, arr) {
            int rc = parse_post(t, e, label);
            if (rc) return rc;
        }
        return MK_OK;
    }
    if (!strcmp(type, "ByteLevel")) return MK_OK;
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        int64_t a, b;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) ||
            json_int(cJSON_GetArrayItem(cls, 1), 0, t->n_vocab - 1, &a) ||
            json_int(cJSON_GetArrayItem(sep, 1), 0, t->n_vocab - 1, &b))
            return mk_fail(MK_ERR_FORMAT, "%s: %s needs cls and sep as [token, id] with ids in the "
                           "vocabulary", label, type);
        t->n_pre = t->n_post = 1;
        t->pre_ids[0] = (int32_t)a;
        t->post_ids[0] = (int32_t)b;
        return MK_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *e;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single))
            return mk_fail(MK_ERR_FORMAT, "%s: TemplateProcessing without a single template", label);
        int seen_seq = 0;
        t->n_pre = t->n_post = 0;
        cJSON_ArrayForEach(e, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) { seen_seq = 1; continue; }
            const char *name = json_str(sp, "id");
            int32_t id = name ? template_id(t, specials, name) : -1;
            if (id < 0)
                return mk_fail(MK_ERR_FORMAT, "%s: TemplateProcessing names a special token \"%s\" "
                               "that is not in the vocabulary", label, name ? name : "?");
            int32_t *dst = seen_seq ? t->post_ids : t->pre_ids;
            int *cnt = seen_seq ? &t->n_post : &t->n_pre;
            if (*cnt >= 4)
                return mk_fail(MK_ERR_UNSUPPORTED, "%s: more than 4 special tokens on one side of "
                               "the template", label);
            dst[(*cnt)++] = id;
        }
        return MK_OK;
    }
    return mk_fail(MK_ERR_UNSUPPORTED, "%s: post_processor type %s is not supported", label, type);
}

int mk_tok_load_json_mem(const char *json, size_t len, const char *label, mk_tokenizer **out) {
    cJSON *root = NULL;
    mk_tokenizer *t = NULL;
    char *buf = NULL;
    size_t bufcap = 0;
    int rc;
    if (!out || (!json && len) || !label) return mk_fail(MK_ERR_ARG, "mk_tok_load_json_mem: NULL argument");
    *out = NULL;
    root = cJSON_ParseWithLength(json ? json : "", len);
    if (!root || !cJSON_IsObject(root)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: not a JSON object (expected a Hugging Face tokenizer.json)", label);
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: no \"model\" object (is this a tokenizer.json?)", label);
        goto fail;
    }
    const char *mtype = json_str(model, "type");
    if (mtype && strcmp(mtype, "BPE")) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: model type %s is not supported (only BPE)", label, mtype);
        goto fail;
    }
    const char *cont = json_str(model, "continuing_subword_prefix");
    const char *eow = json_str(model, "end_of_word_suffix");
    if ((cont && *cont) || (eow && *eow)) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: BPE with continuing_subword_prefix/end_of_word_suffix "
                     "is not supported", label);
        goto fail;
    }
    pt_conf c = {0};
    if ((rc = parse_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &c, label))) goto fail;
    if ((rc = parse_pretok(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &c, label))) goto fail;
    t = tok_new(c.byte_level ? TOK_BYTE_LEVEL : TOK_SPM);
    if (!t) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory", label); goto fail; }
    t->split = c.split;
    t->prefix_space = c.prefix_space;
    t->prepend = c.byte_level ? PREPEND_NEVER : c.prepend;
    t->prepend_if_missing = c.prepend_if_missing;
    t->replace_space = c.replace_space;
    t->byte_fallback = json_bool(model, "byte_fallback", 0);
    t->fuse_unk = json_bool(model, "fuse_unk", 0);
    t->ignore_merges = json_bool(model, "ignore_merges", 0);
    if (c.split == SPLIT_PCRE && (rc = tok_re_compile(c.regex, strlen(c.regex), &t->re, label)))
        goto fail;
    if (!c.byte_level && c.split != SPLIT_NONE && c.split != SPLIT_METASPACE) {
        rc = mk_fail(MK_ERR_UNSUPPORTED, "%s: a regex Split without ByteLevel is not supported", label);
        goto fail;
    }
    /* added tokens: may extend the vocabulary or re-mark model tokens */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    int64_t max_ids = (int64_t)cJSON_GetArraySize(vocab) + (cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0);
    if ((rc = load_vocab_obj(t, vocab, max_ids, label))) goto fail;
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: added_tokens is not an array", label);
        goto fail;
    }
    cJSON_ArrayForEach(e, added) {
        int64_t id;
        const char *content = json_str(e, "content");
        if (!content || json_int(cJSON_GetObjectItemCaseSensitive(e, "id"), 0,
                                 (max_ids < TOK_MAX_VOCAB ? max_ids : TOK_MAX_VOCAB) - 1, &id)) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: an added token lacks content or a valid id", label);
            goto fail;
        }
        size_t cl = strlen(content);
        if (id < t->n_vocab && t->off[id] != UINT32_MAX) {
            if (t->plen[id] != cl || memcmp(t->blob + t->off[id], content, cl)) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: added token %ld \"%.40s\" clashes with the "
                             "vocabulary's token of that id", label, (long)id, content);
                goto fail;
            }
        } else if ((rc = tok_set_piece(t, (int32_t)id, content, cl, label))) {
            goto fail;
        }
        uint8_t a = TA_ADDED;
        if (json_bool(e, "special", 0)) a |= TA_SPECIAL | TA_NOMERGE;
        if (json_bool(e, "lstrip", 0)) a |= TA_LSTRIP;
        if (json_bool(e, "rstrip", 0)) a |= TA_RSTRIP;
        t->attr[id] |= a;
    }
    if ((rc = check_dense(t, label))) goto fail;
    if ((rc = tok_finish(t, label))) goto fail;
    const char *unk = json_str(model, "unk_token");
    if (unk) {
        t->unk = find_cstr(t, unk);
        if (t->unk < 0) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: unk_token \"%.40s\" is not in the vocabulary", label, unk);
            goto fail;
        }
        t->attr[t->unk] |= TA_NOMERGE;
    }
    /* merges */
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (merges && !cJSON_IsArray(merges)) {
        rc = mk_fail(MK_ERR_FORMAT, "%s: model.merges is not an array", label);
        goto fail;
    }
    int32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) {
            a = e->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || sp == a || !sp[1]) {
                rc = mk_fail(MK_ERR_FORMAT, "%s: merge %ld is not \"a b\"", label, (long)rank + 1);
                goto fail;
            }
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            rc = mk_fail(MK_ERR_FORMAT, "%s: merge %ld is neither \"a b\" nor [a, b]", label, (long)rank + 1);
            goto fail;
        }
        if (rank == INT32_MAX - 1) { rc = mk_fail(MK_ERR_FORMAT, "%s: too many merges", label); goto fail; }
        if ((rc = add_merge_text(t, a, al, b, bl, rank++, label, &buf, &bufcap))) goto fail;
    }
    if ((rc = parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), label))) goto fail;
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
    static const char *const pad_names[] = {"<pad>", "[PAD]", "<|pad|>", NULL};
    t->bos = t->n_pre ? t->pre_ids[0] : first_of(t, bos_names);
    t->eos = first_of(t, eos_names);
    t->pad = first_of(t, pad_names);
    free(buf);
    cJSON_Delete(root);
    *out = t;
    return MK_OK;
fail:
    free(buf);
    cJSON_Delete(root);
    mk_tok_free(t);
    return rc;
}

int mk_tok_load_json(const char *path, mk_tokenizer **out) {
    char *s = NULL;
    size_t n;
    if (!path || !out) return mk_fail(MK_ERR_ARG, "mk_tok_load_json: NULL argument");
    *out = NULL;
    int rc = mk_read_file(path, TOK_MAX_FILE, &s, &n);
    if (rc) return rc;
    rc = mk_tok_load_json_mem(s, n, path, out);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------ GGUF */

static int gguf_arr(const mk_gguf *g, const char *key, mk_gguf_type want, uint64_t n_want,
                    long *k, uint64_t *n, int required) {
    *k = mk_gguf_find(g, key);
    if (*k < 0) {
        if (required) return mk_fail(MK_ERR_FORMAT, "gguf: %s is missing", key);
        return MK_ERR_NOTFOUND;
    }
    if (mk_gguf_kv_type(g, (size_t)*k) != MK_GGUF_ARRAY)
        return mk_fail(MK_ERR_FORMAT, "gguf: %s is not an array", key);
    mk_gguf_type at = mk_gguf_kv_arr_type(g, (size_t)*k);
    int ok = want == MK_GGUF_STRING ? at == MK_GGUF_STRING
             : want == MK_GGUF_FLOAT32 ? (at == MK_GGUF_FLOAT32 || at == MK_GGUF_FLOAT64)
                                       : (at != MK_GGUF_STRING && at != MK_GGUF_FLOAT32 &&
                                          at != MK_GGUF_FLOAT64 && at != MK_GGUF_BOOL && at != MK_GGUF_ARRAY);
    if (!ok) return mk_fail(MK_ERR_FORMAT, "gguf: %s has elements of the wrong type (%d)", key, (int)at);
    *n = mk_gguf_kv_arr_n(g, (size_t)*k);
    if (n_want != UINT64_MAX && *n != n_want)
        return mk_fail(MK_ERR_FORMAT, "gguf: %s has %llu elements, tokenizer.ggml.tokens has %llu", key,
                       (unsigned long long)*n, (unsigned long long)n_want);
    return MK_OK;
}

/* optional token id key; -1 when absent */
static int gguf_tok_id(const mk_gguf *g, const char *key, int32_t n_vocab, int32_t *id) {
    uint64_t v;
    *id = -1;
    if (mk_gguf_find(g, key) < 0) return MK_OK;
    int rc = mk_gguf_get_u64(g, key, &v);
    if (rc) return rc;
    if (v >= (uint64_t)n_vocab)
        return mk_fail(MK_ERR_FORMAT, "gguf: %s = %llu is outside the vocabulary (%ld tokens)", key,
                       (unsigned long long)v, (long)n_vocab);
    *id = (int32_t)v;
    return MK_OK;
}

static int gguf_flag(const mk_gguf *g, const char *key, int dflt, int *v) {
    *v = dflt;
    if (mk_gguf_find(g, key) < 0) return MK_OK;
    return mk_gguf_get_bool(g, key, v);
}

typedef struct {
    double score;
    int32_t id;
} scored;

static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

int mk_tok_from_gguf(const mk_gguf *g, mk_tokenizer **out) {
    mk_tokenizer *t = NULL;
    scored *sc = NULL;
    int32_t *rank = NULL;
    char *buf = NULL;
    size_t bufcap = 0;
    int rc;
    const char *s;
    size_t sl;
    if (!g || !out) return mk_fail(MK_ERR_ARG, "mk_tok_from_gguf: NULL argument");
    *out = NULL;
    if ((rc = mk_gguf_get_str(g, "tokenizer.ggml.model", &s, &sl)))
        return mk_fail_ctx(rc, "gguf: no tokenizer (tokenizer.ggml.model)");
    int spm;
    if (sl == 5 && !memcmp(s, "llama", 5)) spm = 1;
    else if (sl == 4 && !memcmp(s, "gpt2", 4)) spm = 0;
    else return mk_fail(MK_ERR_UNSUPPORTED, "gguf: tokenizer.ggml.model \"%.*s\" is not supported "
                        "(llama, gpt2 are)", (int)(sl > 40 ? 40 : sl), s);
    long kt, ks = -1, ky = -1, km = -1;
    uint64_t n, nn;
    if ((rc = gguf_arr(g, "tokenizer.ggml.tokens", MK_GGUF_STRING, UINT64_MAX, &kt, &n, 1))) return rc;
    if (n == 0 || n > TOK_MAX_VOCAB)
        return mk_fail(MK_ERR_FORMAT, "gguf: tokenizer.ggml.tokens has %llu entries (1..%d allowed)",
                       (unsigned long long)n, TOK_MAX_VOCAB);
    rc = gguf_arr(g, "tokenizer.ggml.scores", MK_GGUF_FLOAT32, n, &ks, &nn, spm);
    if (rc && rc != MK_ERR_NOTFOUND) return rc;
    rc = gguf_arr(g, "tokenizer.ggml.token_type", MK_GGUF_INT32, n, &ky, &nn, 0);
    if (rc && rc != MK_ERR_NOTFOUND) return rc;
    uint64_t n_merges = 0;
    if (!spm && (rc = gguf_arr(g, "tokenizer.ggml.merges", MK_GGUF_STRING, UINT64_MAX, &km, &n_merges, 1)))
        return rc;
    t = tok_new(spm ? TOK_SPM : TOK_BYTE_LEVEL);
    if (!t) return mk_fail(MK_ERR_NOMEM, "gguf: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = mk_gguf_arr_str(g, (size_t)kt, i, &s, &sl))) goto fail;
        if ((rc = tok_set_piece(t, (int32_t)i, s, sl, "gguf tokenizer.ggml.tokens"))) goto fail;
        int64_t ty = 1;
        if (ky >= 0 && (rc = mk_gguf_arr_i64(g, (size_t)ky, i, &ty))) goto fail;
        switch (ty) {
        case 1: break;                                            /* normal */
        case 2: t->attr[i] |= TA_NOMERGE; if (t->unk < 0) t->unk = (int32_t)i; break; /* unknown */
        case 3: t->attr[i] |= TA_SPECIAL | TA_ADDED | TA_NOMERGE; break; /* control */
        case 4: t->attr[i] |= TA_ADDED; break;                    /* user defined */
        case 5: t->attr[i] |= TA_NOMERGE; break;                  /* unused */
        case 6: t->attr[i] |= TA_BYTE | TA_NOMERGE; break;        /* byte */
        default:
            rc = mk_fail(MK_ERR_FORMAT, "gguf: token %llu has token_type %lld (1..6 allowed)",
                         (unsigned long long)i, (long long)ty);
            goto fail;
        }
    }
    /* special ids */
    int32_t id;
    if ((rc = gguf_tok_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos))) goto fail;
    if ((rc = gguf_tok_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos))) goto fail;
    if ((rc = gguf_tok_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad))) goto fail;
    if ((rc = gguf_tok_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &id))) goto fail;
    if (id >= 0) t->unk = id;
    int add_bos, add_eos, add_space;
    if ((rc = gguf_flag(g, "tokenizer.ggml.add_bos_token", spm, &add_bos))) goto fail;
    if ((rc = gguf_flag(g, "tokenizer.ggml.add_eos_token", 0, &add_eos))) goto fail;
    if ((rc = gguf_flag(g, "tokenizer.ggml.add_space_prefix", 1, &add_space))) goto fail;
    if (add_bos && t->bos >= 0) t->pre_ids[t->n_pre++] = t->bos;
    if (add_eos && t->eos >= 0) t->post_ids[t->n_post++] = t->eos;
    if (spm) {
        t->prepend = add_space ? PREPEND_ALWAYS : PREPEND_NEVER;
        t->replace_space = 1;
        t->byte_fallback = 1;
        t->split = SPLIT_NONE;
    } else {
        t->split = SPLIT_GPT2;
        if (mk_gguf_find(g, "tokenizer.ggml.pre") >= 0) {
            if ((rc = mk_gguf_get_str(g, "tokenizer.ggml.pre", &s, &sl))) goto fail;
            if ((sl == 9 && !memcmp(s, "llama-bpe", 9)) || (sl == 6 && !memcmp(s, "llama3", 6))) {
                t->split = SPLIT_LLAMA3;
                t->ignore_merges = 1;
            }
        }
    }
    if ((rc = tok_finish(t, "gguf"))) goto fail;
    if (spm) {
        /* merges from scores: a token is reachable from any split into two
           tokens; the higher its score the earlier it merges */
        sc = malloc((size_t)n * sizeof *sc);
        rank = malloc((size_t)n * sizeof *rank);
        if (!sc || !rank) { rc = mk_fail(MK_ERR_NOMEM, "gguf: out of memory"); goto fail; }
        for (uint64_t i = 0; i < n; i++) {
            double v;
            if ((rc = mk_gguf_arr_f64(g, (size_t)ks, i, &v))) goto fail;
            if (v != v) v = -1e300; /* NaN sorts last */
            sc[i].score = v;
            sc[i].id = (int32_t)i;
        }
        qsort(sc, (size_t)n, sizeof *sc, cmp_scored);
        for (uint64_t i = 0; i < n; i++) rank[sc[i].id] = (int32_t)i;
        for (int32_t i = 0; i < t->n_vocab; i++) {
            if (t->attr[i] & (TA_NOMERGE | TA_SPECIAL)) continue;
            const char *p = t->blob + t->off[i];
            size_t pl = t->plen[i];
            /* longer pieces are never merge results: bounds the work on a
               hostile file (real SentencePiece pieces are <= 16 characters) */
            if (pl > TOK_MAX_MERGED) continue;
            for (size_t k = 1; k < pl; k++) {
                if (((uint8_t)p[k] & 0xC0) == 0x80) continue; /* inside a character */
                int32_t a = tok_find(t, p, k), b = tok_find(t, p + k, pl - k);
                if (a < 0 || b < 0 || (t->attr[a] & (TA_BYTE | TA_SPECIAL)) ||
                    (t->attr[b] & (TA_BYTE | TA_SPECIAL)))
                    continue;
                if ((rc = tok_add_merge(t, a, b, rank[i], i))) goto fail;
            }
        }
    } else {
        for (uint64_t i = 0; i < n_merges; i++) {
            if ((rc = mk_gguf_arr_str(g, (size_t)km, i, &s, &sl))) goto fail;
            const char *sp = memchr(s, ' ', sl);
            if (!sp || sp == s || sp == s + sl - 1) {
                rc = mk_fail(MK_ERR_FORMAT, "gguf: tokenizer.ggml.merges[%llu] is not \"a b\"",
                             (unsigned long long)i);
                goto fail;
            }
            if ((rc = add_merge_text(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + sl - sp - 1),
                                     (int32_t)i, "gguf tokenizer.ggml.merges", &buf, &bufcap)))
                goto fail;
        }
    }
    free(sc);
    free(rank);
    free(buf);
    *out = t;
    return MK_OK;
fail:
    free(sc);
    free(rank);
    free(buf);
    mk_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------- by path */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int load_file(const char *path, mk_tokenizer **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return mk_fail(MK_ERR_IO, "%s: cannot open the tokenizer file", path);
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) {
        mk_gguf *g = NULL;
        int rc = mk_gguf_open(path, &g);
        if (rc) return rc;
        rc = mk_tok_from_gguf(g, out);
        if (rc) mk_fail_ctx(rc, "%s", path);
        mk_gguf_close(g);
        return rc;
    }
    if (ends_with(path, "vocab.json")) {
        /* merges.txt beside it */
        size_t n = strlen(path);
        char *m = malloc(n + 8);
        if (!m) return mk_fail(MK_ERR_NOMEM, "out of memory");
        memcpy(m, path, n - 10);
        memcpy(m + n - 10, "merges.txt", 11);
        int rc = mk_tok_load_vocab_merges(path, m, out);
        free(m);
        return rc;
    }
    return mk_tok_load_json(path, out);
}

int mk_tok_load(const char *path, mk_tokenizer **out) {
    if (!path || !out) return mk_fail(MK_ERR_ARG, "mk_tok_load: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return mk_fail(MK_ERR_IO, "%s: no such file or directory", path);
    if (!S_ISDIR(st.st_mode)) return load_file(path, out);
    static const char *const names[] = {"tokenizer.json", "vocab.json", NULL};
    size_t n = strlen(path);
    for (int i = 0; names[i]; i++) {
        char *p = malloc(n + strlen(names[i]) + 2);
        if (!p) return mk_fail(MK_ERR_NOMEM, "out of memory");
        sprintf(p, "%s/%s", path, names[i]);
        if (is_file(p)) {
            int rc = load_file(p, out);
            free(p);
            return rc;
        }
        free(p);
    }
    /* else the first .gguf by name */
    DIR *d = opendir(path);
    char *best = NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!ends_with(e->d_name, ".gguf") || (best && strcmp(e->d_name, best) >= 0)) continue;
            free(best);
            best = strdup(e->d_name);
        }
        closedir(d);
    }
    if (best) {
        char *p = malloc(n + strlen(best) + 2);
        int rc = p ? MK_OK : mk_fail(MK_ERR_NOMEM, "out of memory");
        if (p) {
            sprintf(p, "%s/%s", path, best);
            rc = load_file(p, out);
        }
        free(p);
        free(best);
        return rc;
    }
    return mk_fail(MK_ERR_NOTFOUND, "%s: no tokenizer.json, vocab.json + merges.txt or .gguf file "
                   "in this directory", path);
}
