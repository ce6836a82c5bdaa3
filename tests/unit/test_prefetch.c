/* test_prefetch.c - the prefetch load option: after a load with it, every
 * page of the model's file is in memory (mincore says so, where it said
 * the opposite before); it runs once per model, holds its model while it
 * runs (releasing the model and destroying the manager at once is safe)
 * and none once its wait returns, and has nothing to do in read mode. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgr_util.h"
#include "testutil.h"

static char *dir, *file;
static size_t file_size;

/* Fraction of the file's pages in the page cache. */
static double resident(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    size_t len = (size_t)sb.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    size_t pages = (len + page - 1) / page, in = 0;
    unsigned char *vec = malloc(pages);
    assert_int_equal(mincore(m, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        in += vec[i] & 1;
    free(vec);
    munmap(m, len);
    close(fd);
    return (double)in / (double)pages;
}

static void drop(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
}

static ttsm_manager *manager(int prefetch, ttsm_io_mode io)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.prefetch = prefetch;
    o.io_mode = io;
    ttsm_manager *m;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &m, &err), &err);
    return m;
}

static void prefetch_brings_every_page_in(void **state)
{
    (void)state;
    drop(file);
    if (resident(file) > 0.5)
        skip(); /* the file system keeps files in memory (tmpfs): nothing to measure */
    /* A load alone reads the header, not the data. */
    ttsm_manager *mgr = manager(0, TTSM_IO_MMAP);
    ttsm_load_config c = mu_cfg("file", file, "cpu");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_true(resident(file) < 0.5);
    assert_int_equal(ttsm_model_prefetch_wait(m), 0); /* none started */
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    drop(file);
    mgr = manager(1, TTSM_IO_MMAP);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(ttsm_model_prefetch_wait(m), file_size);
    assert_true(resident(file) > 0.99);
    /* Once per model: a second start is a no-op, the wait says the same. */
    tu_assert_ok(ttsm_model_prefetch(m, &err), &err);
    assert_int_equal(ttsm_model_prefetch_wait(m), file_size);
    /* The tensors read back what was written. */
    const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, 0);
    assert_non_null(t);
    float v;
    memcpy(&v, t->data, sizeof v);
    assert_true(v == 1.0f);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

static void the_prefetch_holds_its_model(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        drop(file);
        ttsm_manager *mgr = manager(0, TTSM_IO_MMAP);
        ttsm_load_config c = mu_cfg("file", file, "cpu");
        ttsm_model *m;
        ttsm_error err;
        tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
        tu_assert_ok(ttsm_model_prefetch(m, &err), &err);
        /* Gone at once: the mapping must stay until the thread is done. */
        ttsm_model_release(m);
        ttsm_manager_destroy(mgr);
    }
    usleep(200000); /* the last threads finish on their own */
}

/* Whether this process maps `path` (/proc/self/maps). */
static int mapped(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, path) != NULL;
    fclose(f);
    return found;
}

/* Once the wait returns the prefetch holds no reference: releasing the
 * model and destroying the manager unmap the file at once (else the next
 * cold run of a benchmark found it still mapped, its pages kept in the
 * page cache). */
static void after_the_wait_the_model_is_the_caller_s(void **state)
{
    (void)state;
    for (int round = 0; round < 100; round++) {
        ttsm_manager *mgr = manager(1, TTSM_IO_MMAP);
        ttsm_load_config c = mu_cfg("file", file, "cpu");
        ttsm_model *m;
        ttsm_error err;
        tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
        assert_int_equal(ttsm_model_prefetch_wait(m), file_size);
        ttsm_entry_info *v;
        size_t n;
        tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].refs, 1); /* ours alone */
        ttsm_free(v);
        assert_true(mapped(file));
        ttsm_model_release(m);
        ttsm_manager_destroy(mgr);
        assert_false(mapped(file));
    }
}

static void read_mode_has_nothing_to_do(void **state)
{
    (void)state;
    ttsm_manager *mgr = manager(1, TTSM_IO_READ);
    ttsm_load_config c = mu_cfg("file", file, "cpu");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(ttsm_model_prefetch_wait(m), 0);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(ttsm_model_prefetch(NULL, &err), TTSM_ERR_INVALID_ARGUMENT);
    assert_int_equal(ttsm_model_prefetch_wait(NULL), 0);
}

int main(void)
{
    dir = strdup(tu_mkdtemp());
    /* 32 MiB of F32 ones in 8 tensors: enough pages that residency means
     * something. */
    size_t n = 8, elems = (size_t)1 << 20; /* 4 MiB each */
    char header[1024];
    int k = snprintf(header, sizeof header, "{");
    for (size_t i = 0; i < n; i++)
        k += snprintf(header + k, sizeof header - (size_t)k,
                      "%s\"t%zu\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}",
                      i ? "," : "", i, elems, i * elems * 4, (i + 1) * elems * 4);
    k += snprintf(header + k, sizeof header - (size_t)k, "}");
    while ((8 + k) % 8)
        header[k++] = ' ';
    file_size = 8 + (size_t)k + n * elems * 4;
    unsigned char *b = malloc(file_size);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)k >> (8 * i));
    memcpy(b + 8, header, (size_t)k);
    float one = 1.0f;
    for (size_t i = 0; i < n * elems; i++)
        memcpy(b + 8 + k + 4 * i, &one, 4);
    file = tu_write_file(dir, "ones.safetensors", b, file_size);
    free(b);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefetch_brings_every_page_in),
        cmocka_unit_test(the_prefetch_holds_its_model),
        cmocka_unit_test(after_the_wait_the_model_is_the_caller_s),
        cmocka_unit_test(read_mode_has_nothing_to_do),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(file);
    tu_rmtree(dir);
    free(dir);
    return rc;
}
