/* error.c - thread-local error message for library calls. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

int mk_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return code;
}

int mk_fail_ctx(int code, const char *fmt, ...) {
    char old[sizeof errbuf];
    memcpy(old, errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    /* Append ": <old>" by hand: the result is cut at the buffer's end. */
    size_t len = n < 0 ? 0 : (size_t)n < sizeof errbuf ? (size_t)n : sizeof errbuf - 1;
    const char *parts[2] = {": ", old};
    for (int k = 0; k < 2; k++)
        for (const char *c = parts[k]; *c && len + 1 < sizeof errbuf; c++) errbuf[len++] = *c;
    errbuf[len] = 0;
    return code;
}

const char *mk_errmsg(void) { return errbuf[0] ? errbuf : "unknown error"; }

void mk_clear_error(void) { errbuf[0] = 0; }

const char *mk_status_name(int code) {
    switch (code) {
    case MK_OK: return "ok";
    case MK_ERR_IO: return "i/o error";
    case MK_ERR_FORMAT: return "malformed input";
    case MK_ERR_NOMEM: return "out of memory";
    case MK_ERR_ARG: return "invalid argument";
    case MK_ERR_UNSUPPORTED: return "unsupported";
    case MK_ERR_RANGE: return "out of range";
    case MK_ERR_NOTFOUND: return "not found";
    case MK_ERR_MISMATCH: return "mismatch";
    case MK_ERR_DB: return "knowledge-base error";
    case MK_ERR_CONFLICT: return "conflict";
    default: return "error";
    }
}
