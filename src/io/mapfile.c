/* mapfile.c - mmap and small-file helpers with clear errors. */
#define _GNU_SOURCE
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.h"

int mk_map_open(const char *path, mk_mapfile *m) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mk_fail(MK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mk_fail(MK_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mk_fail(MK_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return MK_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return mk_fail(MK_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return MK_OK;
}

void mk_map_close(mk_mapfile *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int mk_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mk_fail(MK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = MK_OK;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 65536 + 1;
            char *nb = realloc(buf, ncap);
            if (!nb) { rc = mk_fail(MK_ERR_NOMEM, "%s: out of memory reading file", path); goto fail; }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > max_bytes) {
            rc = mk_fail(MK_ERR_FORMAT, "%s: file larger than the %zu-byte limit", path, max_bytes);
            goto fail;
        }
        if (r == 0) break;
    }
    if (ferror(f)) { rc = mk_fail(MK_ERR_IO, "%s: read error", path); goto fail; }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return MK_OK;
fail:
    fclose(f);
    free(buf);
    return rc;
}

int mk_afile_open(mk_afile *a, const char *path) {
    memset(a, 0, sizeof *a);
    size_t pl = strlen(path);
    a->path = strdup(path);
    a->tmp = malloc(pl + 5);
    if (!a->path || !a->tmp) {
        mk_afile_abort(a);
        return mk_fail(MK_ERR_NOMEM, "out of memory");
    }
    memcpy(a->tmp, path, pl);
    memcpy(a->tmp + pl, ".tmp", 5);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int rc = mk_fail(MK_ERR_IO, "%s: cannot create: %s", a->tmp, strerror(errno));
        mk_afile_abort(a);
        return rc;
    }
    return MK_OK;
}

int mk_afile_write(mk_afile *a, const void *buf, size_t len) {
    if (a->failed) return MK_ERR_IO;
    if (len && fwrite(buf, 1, len, a->f) != len) {
        a->failed = 1;
        return mk_fail(MK_ERR_IO, "%s: write failed: %s", a->tmp, strerror(errno));
    }
    return MK_OK;
}

int mk_afile_commit(mk_afile *a) {
    int rc = a->failed ? MK_ERR_IO : MK_OK;
    if (rc == MK_OK && fflush(a->f) != 0) rc = mk_fail(MK_ERR_IO, "%s: write failed: %s", a->tmp, strerror(errno));
    if (rc == MK_OK && fsync(fileno(a->f)) != 0) rc = mk_fail(MK_ERR_IO, "%s: fsync failed: %s", a->tmp, strerror(errno));
    if (fclose(a->f) != 0 && rc == MK_OK) rc = mk_fail(MK_ERR_IO, "%s: close failed: %s", a->tmp, strerror(errno));
    a->f = NULL;
    if (rc == MK_OK && rename(a->tmp, a->path) != 0) rc = mk_fail(MK_ERR_IO, "%s: rename failed: %s", a->path, strerror(errno));
    if (rc != MK_OK) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return rc;
}

void mk_afile_abort(mk_afile *a) {
    if (a->f) {
        fclose(a->f);
        unlink(a->tmp);
    }
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

int mk_write_file_atomic(const char *path, const void *buf, size_t len) {
    mk_afile a;
    int rc = mk_afile_open(&a, path);
    if (rc) return rc;
    rc = mk_afile_write(&a, buf, len);
    if (rc) {
        mk_afile_abort(&a);
        return rc;
    }
    return mk_afile_commit(&a);
}
