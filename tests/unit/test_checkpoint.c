/* test_checkpoint.c - the checkpoint core (src/formats/table.c and checkpoint.c) seen through
 * safetensors files: the O(1) name index, both I/O modes (copy-on-write
 * mappings, 64-byte-aligned read buffers, files truncated after opening),
 * the metadata API, totals, options and argument checks, thread safety. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/table.h"
#include "testutil.h"

/* Builds a safetensors image from a header and data (header space-padded). */
static unsigned char *build(const char *header, const void *data, size_t dlen, size_t *out_len)
{
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    unsigned char *b = malloc(8 + hp + dlen + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', hp - h);
    if (dlen)
        memcpy(b + 8 + hp, data, dlen);
    *out_len = 8 + hp + dlen;
    return b;
}

/* A file of `n` F32 tensors "layer.<i>.w" of shape [i % 7 + 1], each
 * element holding its tensor's index. Returns its path (malloc'd). */
static char *write_many(const char *dir, size_t n)
{
    size_t cap = n * 96 + 64, used = 0, off = 0;
    char *h = malloc(cap);
    used += (size_t)snprintf(h + used, cap - used, "{\"__metadata__\":{\"format\":\"pt\","
                                                   "\"name\":\"many\"}");
    for (size_t i = 0; i < n; i++) {
        size_t elems = i % 7 + 1;
        used += (size_t)snprintf(h + used, cap - used,
                                 ",\"layer.%zu.w\":{\"dtype\":\"F32\",\"shape\":[%zu],"
                                 "\"data_offsets\":[%zu,%zu]}",
                                 i, elems, off, off + elems * 4);
        off += elems * 4;
    }
    snprintf(h + used, cap - used, "}");
    float *data = malloc(off);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < i % 7 + 1; e++)
            data[k++] = (float)i;
    size_t len;
    unsigned char *b = build(h, data, off, &len);
    char *p = tu_write_file(dir, "many.safetensors", b, len);
    free(b);
    free(data);
    free(h);
    return p;
}

static ttsm_checkpoint *open_ok(const char *path, ttsm_io_mode mode)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = mode;
    ttsm_error err;
    ttsm_checkpoint *ck = NULL;
    tu_assert_ok(ttsm_checkpoint_open(path, &o, &ck, &err), &err);
    return ck;
}

/* ---- the name index --------------------------------------------------- */

static void find_locates_every_tensor(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    const size_t n = 5000;
    char *p = write_many(dir, n);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_MMAP);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "layer.%zu.w", i);
        const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
        if (!t)
            fail_msg("find(%s) gave NULL", name);
        assert_string_equal(t->name, name);
        /* File order is data order, which here is creation order. */
        assert_ptr_equal(t, ttsm_checkpoint_tensor(ck, i));
        assert_int_equal(t->shape[0], (int64_t)(i % 7 + 1));
        total += t->nbytes;
    }
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), total);
    assert_null(ttsm_checkpoint_find(ck, "layer.5000.w"));
    assert_null(ttsm_checkpoint_find(ck, "layer.1.w "));
    assert_null(ttsm_checkpoint_find(ck, "layer.1."));
    assert_null(ttsm_checkpoint_find(ck, ""));
    assert_null(ttsm_checkpoint_find(ck, NULL));
    assert_null(ttsm_checkpoint_find(NULL, "layer.1.w"));
    assert_null(ttsm_checkpoint_tensor(ck, n));
    ttsm_checkpoint_close(ck);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void find_on_an_empty_checkpoint(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = build("{}", NULL, 0, &len);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(ttsm__checkpoint_open_memory(b, len, "empty", NULL, &ck, &err), &err);
    assert_null(ttsm_checkpoint_find(ck, "x"));
    assert_null(ttsm_checkpoint_tensor(ck, 0));
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 0);
    ttsm_checkpoint_close(ck);
    free(b);
}

/* ---- I/O modes -------------------------------------------------------- */

static const char HEADER[] = "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[3,19]}}";
static const unsigned char DATA[19] = {1, 2, 3, 0, 0, 128, 63, 0, 0, 0, 64,
                                       0, 0, 64, 64, 0, 0, 128, 64};

static char *write_small(const char *dir)
{
    size_t len;
    unsigned char *b = build(HEADER, DATA, sizeof DATA, &len);
    char *p = tu_write_file(dir, "small.safetensors", b, len);
    free(b);
    return p;
}

static void mmap_writes_never_reach_the_file(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_small(dir);
    size_t before_len;
    unsigned char *before = tu_read_file(p, &before_len);

    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_MMAP);
    assert_int_equal(ttsm_checkpoint_io_mode(ck), TTSM_IO_MMAP);
    const ttsm_tensor_info *b = ttsm_checkpoint_find(ck, "b");
    const void *data;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, b, &data, &err), &err);
    assert_memory_equal(data, DATA + 3, 16);
    /* A consumer scribbles over the tensor: its private copy changes... */
    memset((void *)data, 0xAB, 16);
    const void *again;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, b, &again, &err), &err);
    assert_ptr_equal(again, data);
    assert_int_equal(((const unsigned char *)again)[0], 0xAB);
    ttsm_checkpoint_close(ck);

    /* ...the file does not, nor does a new mapping of it. */
    size_t after_len;
    unsigned char *after = tu_read_file(p, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    ck = open_ok(p, TTSM_IO_MMAP);
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_find(ck, "b"), &data, &err), &err);
    assert_memory_equal(data, DATA + 3, 16);
    ttsm_checkpoint_close(ck);
    free(before);
    free(after);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void read_mode_buffers_are_aligned_copies(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_small(dir);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_READ);
    assert_int_equal(ttsm_checkpoint_io_mode(ck), TTSM_IO_READ);
    ttsm_error err;
    static const char *const names[] = {"a", "b"};
    static const size_t at[] = {0, 3}, len[] = {3, 16};
    for (int i = 0; i < 2; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, names[i]);
        const void *d, *d2;
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &d, &err), &err);
        /* b starts at an odd file offset, yet its buffer is aligned. */
        assert_int_equal((uintptr_t)d % 64, 0);
        assert_memory_equal(d, DATA + at[i], len[i]);
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &d2, &err), &err);
        assert_ptr_equal(d, d2); /* read once, then cached */
    }
    assert_int_equal(ttsm_checkpoint_find(ck, "b")->file_offset % 2, 1);
    ttsm_checkpoint_close(ck);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void truncated_after_open_is_an_io_error(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_small(dir);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_READ);
    const ttsm_tensor_info *a = ttsm_checkpoint_find(ck, "a"), *b = ttsm_checkpoint_find(ck, "b");
    /* Cut the file in the middle of b's bytes. */
    assert_int_equal(truncate(p, (off_t)(b->file_offset + 5)), 0);
    ttsm_error err;
    const void *d;
    tu_assert_error(ttsm_checkpoint_tensor_data(ck, b, &d, &err), &err, TTSM_ERR_IO,
                    "small.safetensors", "truncated after opening");
    /* a still lies wholly before the cut. */
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, a, &d, &err), &err);
    assert_memory_equal(d, DATA, 3);
    /* The failed read left nothing cached: a second try fails the same way. */
    tu_assert_error(ttsm_checkpoint_tensor_data(ck, b, &d, &err), &err, TTSM_ERR_IO, "read failed");
    ttsm_checkpoint_close(ck);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

struct reader_arg {
    ttsm_checkpoint *ck;
    size_t n;
    int failures;
};

static void *reader_thread(void *p)
{
    struct reader_arg *a = p;
    for (size_t i = 0; i < a->n; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(a->ck, (i * 7919) % a->n);
        const void *d;
        ttsm_error err;
        if (ttsm_checkpoint_tensor_data(a->ck, t, &d, &err) != TTSM_OK ||
            ((const float *)d)[0] != (float)((i * 7919) % a->n))
            a->failures++;
    }
    return NULL;
}

static void read_mode_is_thread_safe(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_many(dir, 600);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_READ);
    pthread_t th[4];
    struct reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){ck, 600, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    ttsm_checkpoint_close(ck);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- metadata, files, totals ------------------------------------------ */

static void metadata_api(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_many(dir, 3);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_MMAP);
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 2);
    const ttsm_metadata_entry *m0 = ttsm_checkpoint_metadata(ck, 0), *m1 = ttsm_checkpoint_metadata(ck, 1);
    assert_string_equal(m0->key, "format");
    assert_string_equal(m0->type, "str");
    assert_string_equal(m0->json, "\"pt\"");
    assert_string_equal(m1->key, "name");
    assert_string_equal(m1->json, "\"many\"");
    assert_ptr_equal(ttsm_checkpoint_metadata_find(ck, "name"), m1);
    assert_null(ttsm_checkpoint_metadata_find(ck, "Name"));
    assert_null(ttsm_checkpoint_metadata_find(ck, NULL));
    assert_null(ttsm_checkpoint_metadata(ck, 2));
    assert_null(ttsm_checkpoint_metadata(NULL, 0));
    assert_int_equal(ttsm_checkpoint_metadata_count(NULL), 0);

    assert_int_equal(ttsm_checkpoint_file_count(ck), 1);
    assert_string_equal(ttsm_checkpoint_file_path(ck, 0), p);
    size_t len;
    unsigned char *bytes = tu_read_file(p, &len);
    assert_int_equal(ttsm_checkpoint_file_size(ck, 0), len);
    assert_null(ttsm_checkpoint_file_path(ck, 1));
    assert_int_equal(ttsm_checkpoint_file_size(ck, 1), 0);
    /* 1 + 2 + 3 elements of F32. */
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 24);
    assert_int_equal(ttsm_checkpoint_total_bytes(NULL), 0);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS);
    assert_int_equal(ttsm_checkpoint_format(NULL), TTSM_FORMAT_UNKNOWN);
    const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, 2);
    assert_int_equal(t->file_index, 0);
    assert_int_equal(t->file_offset + t->nbytes, len); /* the last tensor ends the file */
    assert_int_equal(t->storage_offset, 0);
    assert_true(t->contiguous);
    free(bytes);
    ttsm_checkpoint_close(ck);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void strides_are_row_major(void **state)
{
    (void)state;
    size_t len;
    unsigned char data[48] = {0};
    unsigned char *b = build("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,3,4],\"data_offsets\":[0,48]}}",
                             data, sizeof data, &len);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(ttsm__checkpoint_open_memory(b, len, "mem", NULL, &ck, &err), &err);
    const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, "t");
    assert_int_equal(t->rank, 3);
    assert_int_equal(t->strides[0], 12);
    assert_int_equal(t->strides[1], 4);
    assert_int_equal(t->strides[2], 1);
    assert_int_equal(t->n_elements, 24);
    assert_int_equal(t->nbytes, 48);
    ttsm_checkpoint_close(ck);
    free(b);
}

/* ---- arguments and options -------------------------------------------- */

static void bad_arguments_and_options(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = write_small(dir);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(ttsm_checkpoint_open(NULL, NULL, &ck, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "ttsm_checkpoint_open");
    tu_assert_error(ttsm_checkpoint_open("", NULL, &ck, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "path");
    tu_assert_error(ttsm_checkpoint_open(p, NULL, NULL, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "out");
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.struct_size = 4;
    tu_assert_error(ttsm_checkpoint_open(p, &o, &ck, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "struct_size 4");
    o = ttsm_checkpoint_options_default();
    o.io_mode = (ttsm_io_mode)7;
    tu_assert_error(ttsm_checkpoint_open(p, &o, &ck, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "io_mode 7");

    char *missing = tu_path(dir, "nope.safetensors");
    tu_assert_error(ttsm_checkpoint_open(missing, NULL, &ck, &err), &err, TTSM_ERR_NOT_FOUND,
                    "nope.safetensors: file not found");
    tu_assert_error(ttsm_checkpoint_open(dir, NULL, &ck, &err), &err, TTSM_ERR_IO,
                    "is a directory");
    free(missing);

    /* A tensor of another checkpoint is refused, not read. */
    ttsm_checkpoint *c1 = open_ok(p, TTSM_IO_MMAP), *c2 = open_ok(p, TTSM_IO_MMAP);
    const void *d;
    tu_assert_error(ttsm_checkpoint_tensor_data(c1, ttsm_checkpoint_tensor(c2, 0), &d, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "does not belong");
    tu_assert_error(ttsm_checkpoint_tensor_data(c1, NULL, &d, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "ttsm_checkpoint_tensor_data");
    /* err may be NULL everywhere. */
    assert_int_equal(ttsm_checkpoint_tensor_data(c1, NULL, &d, NULL), TTSM_ERR_INVALID_ARGUMENT);
    assert_int_equal(ttsm_checkpoint_open(NULL, NULL, &ck, NULL), TTSM_ERR_INVALID_ARGUMENT);
    ttsm_checkpoint_close(c1);
    ttsm_checkpoint_close(c2);
    ttsm_checkpoint_close(NULL);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void open_reads_only_headers(void **state)
{
    (void)state;
    /* A 1 GiB sparse data section opens at once in read mode: nothing past
     * the header is read until a tensor's data is asked for. */
    char *dir = strdup(tu_mkdtemp());
    const char *h = "{\"big\":{\"dtype\":\"U8\",\"shape\":[1073741824],"
                    "\"data_offsets\":[0,1073741824]}}";
    size_t len;
    unsigned char *b = build(h, NULL, 0, &len);
    char *p = tu_write_file(dir, "big.safetensors", b, len);
    assert_int_equal(truncate(p, (off_t)(len + (1ull << 30))), 0);
    ttsm_checkpoint *ck = open_ok(p, TTSM_IO_READ);
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 1ull << 30);
    ttsm_checkpoint_close(ck);
    ck = open_ok(p, TTSM_IO_MMAP);
    const void *d;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, 0), &d, &err), &err);
    assert_int_equal(((const unsigned char *)d)[(1u << 30) - 1], 0);
    ttsm_checkpoint_close(ck);
    free(b);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(find_locates_every_tensor),
        cmocka_unit_test(find_on_an_empty_checkpoint),
        cmocka_unit_test(mmap_writes_never_reach_the_file),
        cmocka_unit_test(read_mode_buffers_are_aligned_copies),
        cmocka_unit_test(truncated_after_open_is_an_io_error),
        cmocka_unit_test(read_mode_is_thread_safe),
        cmocka_unit_test(metadata_api),
        cmocka_unit_test(strides_are_row_major),
        cmocka_unit_test(bad_arguments_and_options),
        cmocka_unit_test(open_reads_only_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
