/* testutil.h - shared helpers for the cmocka unit tests: temporary files and
 * folders, and assertions on ttsm_error that print what they compared. */
#ifndef TTSM_TESTUTIL_H
#define TTSM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ttsm.h"

/* A fresh empty folder under $TMPDIR (removed by tu_rmtree). The string is
 * valid until the next call: copy it if you need two. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *path);
/* A group's own temporary folder: tu_dir_setup makes it (tu_dir), and
 * tu_dir_teardown removes it; for cmocka_run_group_tests. */
extern char *tu_dir;
int tu_dir_setup(void **state);
int tu_dir_teardown(void **state);
/* Writes `len` bytes to dir/name; returns the malloc'd full path. */
char *tu_write_file(const char *dir, const char *name, const void *data, size_t len);
/* Reads a whole file; NULL on failure. *len gets its size. */
unsigned char *tu_read_file(const char *path, size_t *len);
/* Path join into a malloc'd string. */
char *tu_path(const char *a, const char *b);
/* printf into a malloc'd string (free it); fails the test if it cannot.
 * Every path or command built from the checkout, the build folder or a
 * temporary folder is made with this, never in a fixed buffer: no test may
 * depend on how deep the checkout lives. */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* system() on the command tu_fmt makes; returns what system() returns. */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fails the test unless `st` is `code` and err->message contains every
 * non-NULL needle; prints the message on failure. */
void tu_assert_error_(ttsm_status st, const ttsm_error *err, ttsm_status code,
                      const char *const *needles, const char *file, int line);
#define tu_assert_error(st, err, code, ...)                                         \
    do {                                                                            \
        const char *const tu_needles_[] = {__VA_ARGS__, NULL};                      \
        tu_assert_error_((st), (err), (code), tu_needles_, __FILE__, __LINE__);     \
    } while (0)
#define tu_assert_ok(st, err)                                                       \
    do {                                                                            \
        ttsm_status tu_st_ = (st);                                                  \
        if (tu_st_ != TTSM_OK)                                                      \
            fail_msg("%s:%d: expected TTSM_OK, got %s: %s", __FILE__, __LINE__,     \
                     ttsm_status_name(tu_st_), (err)->message);                     \
    } while (0)

#endif
