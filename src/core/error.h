/* error.h - status codes and the per-thread error message.
 *
 * Library functions return an mk_status (0 = MK_OK) or NULL, and leave a
 * human-readable message (naming the file and the problem, and how to fix
 * it when we know) in a thread-local buffer. Only cli/ prints it and exits.
 */
#ifndef MK_ERROR_H
#define MK_ERROR_H

typedef enum {
    MK_OK = 0,
    MK_ERR_IO = 1,          /* open/read/write/mmap failed */
    MK_ERR_FORMAT = 2,      /* file or request is malformed */
    MK_ERR_NOMEM = 3,       /* allocation failed or size overflow */
    MK_ERR_ARG = 4,         /* caller passed something invalid */
    MK_ERR_UNSUPPORTED = 5, /* valid but not implemented (dtype, arch...) */
    MK_ERR_RANGE = 6,       /* index/length out of range */
    MK_ERR_NOTFOUND = 7,    /* key, tensor, edit id... not present */
    MK_ERR_MISMATCH = 8,    /* shapes/fingerprints disagree */
    MK_ERR_DB = 9,          /* knowledge-base (SQLite) failure */
    MK_ERR_CONFLICT = 10    /* edit conflicts with an active one */
} mk_status;

/* Format the message and return `code`, so callers can write
 *   return mk_fail(MK_ERR_FORMAT, "%s: bad magic", path);              */
int mk_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepend context to the current message: "ctx: <old message>". */
int mk_fail_ctx(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *mk_errmsg(void);
const char *mk_status_name(int code);
void mk_clear_error(void);

#endif
