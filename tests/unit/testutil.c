/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *tu_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        fail_msg("out of memory formatting \"%s\"", fmt);
    return s;
}

int tu_system(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        fail_msg("out of memory formatting \"%s\"", fmt);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

char *tu_mkdtemp(void)
{
    static char *last; /* still reachable at exit: not a leak */
    const char *t = getenv("TMPDIR");
    free(last);
    last = tu_fmt("%s/ttsm-test-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(last))
        fail_msg("mkdtemp: %s", last);
    return last;
}

char *tu_dir;

int tu_dir_setup(void **state)
{
    (void)state;
    tu_dir = strdup(tu_mkdtemp());
    return tu_dir ? 0 : -1;
}

int tu_dir_teardown(void **state)
{
    (void)state;
    tu_rmtree(tu_dir);
    free(tu_dir);
    tu_dir = NULL;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *a, const char *b)
{
    return tu_fmt("%s/%s", a, b);
}

char *tu_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        fail_msg("cannot write %s", p);
    if (len && fwrite(data, 1, len, f) != len)
        fail_msg("short write %s", p);
    fclose(f);
    return p;
}

unsigned char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

void tu_assert_error_(ttsm_status st, const ttsm_error *err, ttsm_status code,
                      const char *const *needles, const char *file, int line)
{
    if (st != code)
        fail_msg("%s:%d: expected %s, got %s: %s", file, line, ttsm_status_name(code),
                 ttsm_status_name(st), err ? err->message : "(no error)");
    if (err && err->code != code)
        fail_msg("%s:%d: err->code is %s, returned %s", file, line, ttsm_status_name(err->code),
                 ttsm_status_name(code));
    for (; err && *needles; needles++)
        if (!strstr(err->message, *needles))
            fail_msg("%s:%d: message lacks \"%s\": %s", file, line, *needles, err->message);
}
