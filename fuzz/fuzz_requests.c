/* fuzz_requests.c - libFuzzer target for the edit-request parser (what
 * `medrek edit --file` and `medrek kb import` read): JSON arrays, JSON
 * lines, MedVersa / MedCF records, with and without the export fields.
 * Whatever parses must hold the invariants the knowledge base relies on:
 * non-empty prompt and target_new within MK_REQ_MAX_FIELD bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/kb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int flags = (data[0] & 1) ? MK_REQ_EXPORT : 0;
    mk_edit_request *r = NULL;
    int64_t n = 0;
    int rc = mk_edit_requests_parse((const char *)data + 1, size - 1, "fuzz", flags, &r, &n);
    if (rc == MK_OK) {
        for (int64_t i = 0; i < n; i++) {
            size_t a = strlen(r[i].prompt), b = strlen(r[i].target_new);
            if (a == 0 || b == 0 || a > MK_REQ_MAX_FIELD || b > MK_REQ_MAX_FIELD) abort();
            if ((flags & MK_REQ_EXPORT) && r[i].id <= 0) abort();
        }
        mk_edit_requests_free(r, n);
    } else if (r || !mk_errmsg()[0]) {
        abort(); /* failure returns nothing and says why */
    }
    return 0;
}
