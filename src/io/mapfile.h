/* mapfile.h - a whole file mapped read-only. */
#ifndef MK_MAPFILE_H
#define MK_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *data;
    size_t size;
} mk_mapfile;

/* Map `path` read-only (an empty file gives data=NULL, size=0). */
int mk_map_open(const char *path, mk_mapfile *m);
void mk_map_close(mk_mapfile *m);
/* Read a whole (small) file into a NUL-terminated heap buffer; refuses
 * files larger than max_bytes. */
int mk_read_file(const char *path, size_t max_bytes, char **out, size_t *len);
/* Write buf to path atomically: path.tmp, fsync, rename. */
int mk_write_file_atomic(const char *path, const void *buf, size_t len);

/* Streamed atomic write: bytes go to path.tmp; commit flushes, fsyncs and
 * renames over path; abort (or a crash) leaves path untouched. */
typedef struct {
    void *f; /* FILE* */
    char *path, *tmp;
    int failed;
} mk_afile;
int mk_afile_open(mk_afile *a, const char *path);
int mk_afile_write(mk_afile *a, const void *buf, size_t len);
int mk_afile_commit(mk_afile *a);
void mk_afile_abort(mk_afile *a);

#endif
