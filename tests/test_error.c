/* test_error.c - error messages and the atomic file helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/mapfile.h"
#include "util/check.h"

int main(void) {
    int rc = mk_fail(MK_ERR_FORMAT, "%s: bad magic", "x.gguf");
    CHECK(rc == MK_ERR_FORMAT);
    CHECK(!strcmp(mk_errmsg(), "x.gguf: bad magic"));
    mk_fail_ctx(rc, "loading %s", "model");
    CHECK(!strcmp(mk_errmsg(), "loading model: x.gguf: bad magic"));

    char path[] = "/tmp/mk_test_error_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(mk_write_file_atomic(path, "hello", 5));
    char *buf;
    size_t n;
    CHECK_OK(mk_read_file(path, 100, &buf, &n));
    CHECK(n == 5 && !memcmp(buf, "hello", 5));
    free(buf);
    CHECK(mk_read_file(path, 3, &buf, &n) == MK_ERR_FORMAT);
    mk_mapfile m;
    CHECK_OK(mk_map_open(path, &m));
    CHECK(m.size == 5 && !memcmp(m.data, "hello", 5));
    mk_map_close(&m);
    CHECK(mk_map_open("/nonexistent/file", &m) == MK_ERR_IO);
    CHECK(strstr(mk_errmsg(), "/nonexistent/file") != NULL);
    unlink(path);
    return check_summary("test_error");
}
