/* test_torch_zip.c - the zip reader and the PyTorch file reader: the genuine
 * third-party files, the committed fixtures against what torch.load saw
 * (tests/fixtures/torch/expected.json, so this runs without torch), ZIP64,
 * deflated members and their caps, the legacy format in both I/O modes,
 * every malicious fixture, hand-built broken zips, and allocation failures. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "formats/checkpoint.h"
#include "formats/table.h"
#include "testutil.h"
#include "formats/torch.h"
#include "formats/zip.h"

#define FIX TTSM_SOURCE_DIR "/tests/fixtures/torch"
#define TP TTSM_SOURCE_DIR "/tests/data/third_party/pytorch"

static ttsm_checkpoint *open_ok(const char *path, ttsm_io_mode mode)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = mode;
    ttsm_checkpoint *ck = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_open(path, &o, &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_PYTORCH_ZIP);
    return ck;
}

static const void *data_of(ttsm_checkpoint *ck, const char *name, const ttsm_tensor_info **ti)
{
    const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
    if (!t)
        fail_msg("no tensor '%s'", name);
    const void *p;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &p, &err), &err);
    if (ti)
        *ti = t;
    return p;
}

/* Element i of a float tensor. Legacy files and re-zipped archives do not
 * align storages, so mmap-mode data pointers may be unaligned. */
static float f32(const void *p, size_t i)
{
    float v;
    memcpy(&v, (const unsigned char *)p + 4 * i, 4);
    return v;
}

/* ---- third-party files --------------------------------------------------- */

static void third_party(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        const ttsm_tensor_info *t;
        ttsm_checkpoint *ck = open_ok(TP "/burn_bfloat16.pt", (ttsm_io_mode)mode);
        const uint16_t *bf = data_of(ck, "tensor", &t);
        assert_int_equal(t->dtype, TTSM_DTYPE_BF16);
        assert_int_equal(ttsm_checkpoint_version(ck), 3);
        /* 1.5, -2.5, 3.5 in bfloat16 */
        assert_int_equal(bf[0], 0x3fc0);
        assert_int_equal(bf[1], 0xc020);
        assert_int_equal(bf[2], 0x4060);
        assert_int_equal(t->file_offset % 64, 0);
        ttsm_checkpoint_close(ck);

        ck = open_ok(TP "/burn_scalar.pt", (ttsm_io_mode)mode);
        const void *f = data_of(ck, "tensor", &t);
        assert_int_equal(t->rank, 0);
        assert_true(f32(f, 0) == 42.0f);
        ttsm_checkpoint_close(ck);

        ck = open_ok(TP "/burn_empty.pt", (ttsm_io_mode)mode);
        data_of(ck, "tensor", &t);
        assert_int_equal(t->rank, 1);
        assert_int_equal(t->shape[0], 0);
        assert_int_equal(t->nbytes, 0);
        ttsm_checkpoint_close(ck);

        ck = open_ok(TP "/burn_simple_legacy.pt", (ttsm_io_mode)mode);
        assert_int_equal(ttsm_checkpoint_version(ck), 1001);
        assert_int_equal(ttsm_checkpoint_tensor_count(ck), 3);
        const void *w = data_of(ck, "weight", &t);
        assert_int_equal(t->shape[0], 2);
        assert_int_equal(t->shape[1], 3);
        assert_true(f32(w, 0) > -3 && f32(w, 0) < 3);
        const void *b = data_of(ck, "bias", NULL);
        assert_true(f32(b, 0) == 1.0f && f32(b, 1) == 1.0f);
        const void *rm = data_of(ck, "running_mean", NULL);
        assert_true(f32(rm, 0) == 0.0f && f32(rm, 1) == 0.0f);
        ttsm_checkpoint_close(ck);

        ck = open_ok(TP "/torchtune_tiny_fair_checkpoint.pt", (ttsm_io_mode)mode);
        assert_int_equal(ttsm_checkpoint_tensor_count(ck), 21);
        data_of(ck, "tok_embeddings.weight", &t);
        assert_int_equal(t->shape[0], 500);
        assert_int_equal(t->shape[1], 32);
        assert_int_equal(ttsm_checkpoint_total_bytes(ck), 358016);
        ttsm_checkpoint_close(ck);
    }
}

/* ---- the fixtures against expected.json ---------------------------------- */

static size_t elem_size(ttsm_dtype d)
{
    uint32_t bb = 0;
    ttsm_dtype_block(d, NULL, &bb);
    return bb;
}

static void hex_of_view(const ttsm_tensor_info *t, const unsigned char *p, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t es = elem_size(t->dtype), o = 0;
    int64_t idx[32] = {0};
    for (uint64_t n = 0; n < t->n_elements; n++) {
        uint64_t off = 0;
        for (uint32_t d = 0; d < t->rank; d++)
            off += (uint64_t)idx[d] * (uint64_t)t->strides[d];
        for (size_t b = 0; b < es; b++) {
            out[o++] = hx[p[off * es + b] >> 4];
            out[o++] = hx[p[off * es + b] & 15];
        }
        for (uint32_t d = t->rank; d-- > 0;) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    out[o] = '\0';
}

static void check_fixture(const char *file, json_t *want, ttsm_io_mode mode)
{
    char *path = tu_fmt(FIX "/%s", file);
    ttsm_checkpoint *ck = open_ok(path, mode);
    json_t *tensors = json_object_get(want, "tensors"), *meta = json_object_get(want, "metadata");
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), json_object_size(tensors));
    const char *name;
    json_t *w;
    json_object_foreach(tensors, name, w) {
        const ttsm_tensor_info *t;
        const unsigned char *p = data_of(ck, name, &t);
        if (strcmp(ttsm_dtype_name(t->dtype), json_string_value(json_object_get(w, "dtype"))))
            fail_msg("%s: %s: dtype %s", file, name, ttsm_dtype_name(t->dtype));
        json_t *shape = json_object_get(w, "shape"), *strides = json_object_get(w, "strides");
        assert_int_equal(t->rank, json_array_size(shape));
        for (uint32_t d = 0; d < t->rank; d++) {
            assert_int_equal(t->shape[d], json_integer_value(json_array_get(shape, d)));
            assert_int_equal(t->strides[d], json_integer_value(json_array_get(strides, d)));
        }
        assert_int_equal(t->storage_offset,
                         json_integer_value(json_object_get(w, "storage_offset")) *
                             (json_int_t)elem_size(t->dtype));
        char *hex = malloc(t->n_elements * elem_size(t->dtype) * 2 + 1);
        hex_of_view(t, p, hex);
        if (strcmp(hex, json_string_value(json_object_get(w, "hex"))) != 0)
            fail_msg("%s: %s: bytes differ: %s", file, name, hex);
        free(hex);
    }
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), json_object_size(meta));
    json_object_foreach(meta, name, w) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata_find(ck, name);
        if (!m)
            fail_msg("%s: no metadata '%s'", file, name);
        assert_string_equal(m->type, json_string_value(json_object_get(w, "type")));
        json_error_t je;
        json_t *got = json_loads(m->json, JSON_DECODE_ANY, &je);
        if (!got)
            fail_msg("%s: %s: bad JSON %s: %s", file, name, m->json, je.text);
        if (!json_equal(got, json_object_get(w, "value"))) {
            /* JSON numbers: 0.0 and 0 differ in jansson's eyes but not in value */
            json_t *v = json_object_get(w, "value");
            if (!(json_is_number(got) && json_is_number(v) &&
                  json_number_value(got) == json_number_value(v)))
                fail_msg("%s: metadata %s = %s", file, name, m->json);
        }
        json_decref(got);
    }
    ttsm_checkpoint_close(ck);
    free(path);
}

static void fixtures_match_torch(void **state)
{
    (void)state;
    json_error_t je;
    json_t *all = json_load_file(FIX "/expected.json", 0, &je);
    if (!all)
        fail_msg("expected.json: %s", je.text);
    assert_true(json_object_size(all) >= 14);
    const char *file;
    json_t *want;
    json_object_foreach(all, file, want) {
        check_fixture(file, want, TTSM_IO_MMAP);
        check_fixture(file, want, TTSM_IO_READ);
    }
    json_decref(all);
}

static void shared_storage_and_views(void **state)
{
    (void)state;
    ttsm_checkpoint *ck = open_ok(FIX "/shared.pt", TTSM_IO_MMAP);
    const ttsm_tensor_info *a = ttsm_checkpoint_find(ck, "embed.weight"),
                           *b = ttsm_checkpoint_find(ck, "lm_head.weight"),
                           *r = ttsm_checkpoint_find(ck, "row2");
    assert_int_equal(a->storage_index, b->storage_index);
    assert_int_equal(a->storage_index, r->storage_index);
    assert_int_equal(a->file_offset, b->file_offset);
    assert_int_equal(r->file_offset, a->file_offset + 2 * 4 * 4);
    /* one 5x4 float storage, counted once */
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 80);
    ttsm_checkpoint_close(ck);
    ck = open_ok(FIX "/views.pt", TTSM_IO_MMAP);
    const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, "stepped");
    assert_false(t->contiguous);
    assert_int_equal(t->strides[1], 2);
    ttsm_checkpoint_close(ck);
}

static void zip64_and_deflated(void **state)
{
    (void)state;
    ttsm_checkpoint *a = open_ok(FIX "/zip64.pt", TTSM_IO_READ),
                    *b = open_ok(FIX "/nested.pt", TTSM_IO_MMAP),
                    *c = open_ok(FIX "/deflated.pt", TTSM_IO_READ);
    assert_int_equal(ttsm_checkpoint_tensor_count(a), ttsm_checkpoint_tensor_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(b); i++) {
        const ttsm_tensor_info *tb = ttsm_checkpoint_tensor(b, i);
        const ttsm_tensor_info *ta;
        const void *pa = data_of(a, tb->name, &ta), *pb = data_of(b, tb->name, NULL);
        const ttsm_tensor_info *tc;
        const void *pc = data_of(c, tb->name, &tc);
        assert_int_equal(ta->nbytes, tb->nbytes);
        assert_memory_equal(pa, pb, tb->nbytes);
        assert_memory_equal(pc, pb, tb->nbytes);
        assert_true(tc->file_offset == UINT64_MAX);
        assert_true(ta->file_offset != UINT64_MAX);
    }
    ttsm_checkpoint_close(a);
    ttsm_checkpoint_close(b);
    ttsm_checkpoint_close(c);

    ttsm__file f = {0};
    f.path = FIX "/zip64.pt";
    size_t len;
    f.mem = tu_read_file(FIX "/zip64.pt", &len);
    f.size = len;
    f.fd = -1;
    ttsm__zip z;
    ttsm_error err;
    tu_assert_ok(ttsm__zip_open(&f, &z, &err), &err);
    assert_int_equal(z.zip64, 1);
    assert_non_null(ttsm__zip_find(&z, "nested/data.pkl", 15));
    assert_null(ttsm__zip_find(&z, "nested/data.pk", 14));
    ttsm__zip_close(&z);
    free((void *)f.mem);

    /* The inflate cap */
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.max_inflate_bytes = 8;
    ttsm_checkpoint *ck;
    tu_assert_error(ttsm_checkpoint_open(FIX "/deflated.pt", &o, &ck, &err), &err,
                    TTSM_ERR_FORMAT, "over the cap of 8 bytes (max_inflate_bytes)");
}

/* Deflated storages are inflated when first read, so a broken stream (a
 * bomb, a CRC mismatch, corrupt data) is refused there: the first error
 * reading every tensor, or TTSM_OK. */
static ttsm_status first_data_error(ttsm_checkpoint *ck, ttsm_error *err)
{
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(ck); i++) {
        const void *p;
        ttsm_status st = ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, i), &p, err);
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

/* Opening never inflates a deflated storage: its bytes are made on first
 * access, once, in both I/O modes; a broken stream opens, then fails each
 * read the same way and leaves nothing behind. The cap on what deflated
 * storages may inflate to together is proportionate to the file by
 * default, and checked at open from the declared sizes. */
static void deflated_storages_inflate_lazily(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
        assert_true(o.max_inflate_bytes == 0); /* proportionate */
        o.io_mode = (ttsm_io_mode)mode;
        ttsm_checkpoint *ck;
        ttsm_error err;
        tu_assert_ok(ttsm_checkpoint_open(FIX "/deflated.pt", &o, &ck, &err), &err);
        size_t lazy = 0;
        for (size_t i = 0; i < ck->n_storages; i++)
            if (ck->storages[i].lazy) {
                lazy++;
                assert_null(ck->storages[i].mem); /* not inflated at open */
            }
        assert_true(lazy > 0);
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, 0);
        const void *p1, *p2;
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &p1, &err), &err);
        assert_non_null(ck->storages[t->storage_index].mem);
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &p2, &err), &err);
        assert_ptr_equal(p1, p2); /* made once */
        assert_true(t->file_offset == UINT64_MAX);
        ttsm_checkpoint_close(ck);

        static const struct {
            const char *file, *needle;
        } broken[] = {{"zip_crc.pt", "CRC mismatch"},
                      {"zip_bad_deflate.pt", "corrupt deflate data"},
                      {"zip_bomb_overflow.pt", "inflates past its declared 8 bytes"}};
        for (size_t b = 0; b < sizeof broken / sizeof broken[0]; b++) {
            char path[600];
            snprintf(path, sizeof path, FIX "/malicious/%s", broken[b].file);
            tu_assert_ok(ttsm_checkpoint_open(path, &o, &ck, &err), &err);
            for (int again = 0; again < 2; again++) {
                tu_assert_error(first_data_error(ck, &err), &err, TTSM_ERR_FORMAT,
                                broken[b].file, broken[b].needle);
                for (size_t i = 0; i < ck->n_storages; i++)
                    assert_null(ck->storages[i].mem);
            }
            ttsm_checkpoint_close(ck);
        }
    }
    /* the default cap: 16 x the file, at least 64 MiB */
    ttsm_checkpoint *ck;
    ttsm_error err;
    tu_assert_ok(ttsm__ckpt_new("x", NULL, &ck, &err), &err);
    assert_true(ttsm__ckpt_inflate_cap(ck, 1000) == (64ull << 20));
    assert_true(ttsm__ckpt_inflate_cap(ck, 1ull << 30) == (16ull << 30));
    assert_true(ttsm__ckpt_inflate_cap(ck, UINT64_MAX / 2) == UINT64_MAX);
    ck->max_inflate_bytes = 5;
    assert_true(ttsm__ckpt_inflate_cap(ck, 1ull << 30) == 5);
    ttsm_checkpoint_close(ck);
}

/* ---- malicious files ------------------------------------------------------- */


static void malicious(void **state)
{
    (void)state;
    FILE *m = fopen(FIX "/malicious/expected.tsv", "r");
    assert_non_null(m);
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, m)) {
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        char *path = tu_fmt(FIX "/malicious/%s", line);
        for (int mode = 0; mode < 2; mode++) {
            ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
            o.io_mode = (ttsm_io_mode)mode;
            ttsm_checkpoint *ck = NULL;
            ttsm_error err;
            ttsm_status st = ttsm_checkpoint_open(path, &o, &ck, &err);
            tu_assert_error(st == TTSM_OK ? first_data_error(ck, &err) : st, &err,
                            TTSM_ERR_FORMAT, tab + 1, line);
            ttsm_checkpoint_close(ck);
        }
        /* and from memory, as the fuzzers see it */
        size_t len;
        unsigned char *buf = tu_read_file(path, &len);
        ttsm_checkpoint *ck = NULL;
        ttsm_error err;
        ttsm_status st = ttsm__checkpoint_open_memory(buf, len, line, NULL, &ck, &err);
        tu_assert_error(st == TTSM_OK ? first_data_error(ck, &err) : st, &err, TTSM_ERR_FORMAT,
                        tab + 1);
        ttsm_checkpoint_close(ck);
        free(buf);
        free(path);
        count++;
    }
    fclose(m);
    assert_true(count > 40);
    /* The payloads name these files; none may exist. */
    static const char *const tags[] = {"os_system", "posix_system", "eval", "exec", "popen",
                                       "popen_sg", "os_system_sg", "dict", "inst", "bare"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "/tmp/ttsm-pwned-fixture-%s", tags[i]);
        assert_int_equal(access(p, F_OK), -1);
    }
}

/* ---- hand-built zips ------------------------------------------------------- */

typedef struct zb {
    unsigned char buf[4096];
    size_t n;
    size_t cd, eocd;
} zb;

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* A stored two-member torch archive: archive/data.pkl = {} and
 * archive/version = "3"; offsets of the pieces are recorded. */
static void build(zb *z, const char *name2)
{
    static const char *names[2] = {"archive/data.pkl", NULL};
    const char *data[2] = {"\x80\x02}.", "3\n"};
    size_t dl[2] = {4, 2};
    uint32_t crc[2] = {0x6ac5dac0u, 0};
    size_t off[2];
    names[1] = name2;
    memset(z, 0, sizeof *z);
    /* CRC-32 of the bytes, bitwise (no zlib in the test) */
    for (int i = 0; i < 2; i++) {
        uint32_t c = 0xffffffffu;
        for (size_t k = 0; k < dl[i]; k++) {
            c ^= (unsigned char)data[i][k];
            for (int b = 0; b < 8; b++)
                c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
        }
        crc[i] = ~c;
    }
    for (int i = 0; i < 2; i++) {
        unsigned char *h = z->buf + z->n;
        off[i] = z->n;
        memcpy(h, "PK\3\4", 4);
        put16(h + 4, 20);
        put32(h + 14, crc[i]);
        put32(h + 18, (uint32_t)dl[i]);
        put32(h + 22, (uint32_t)dl[i]);
        put16(h + 26, (unsigned)strlen(names[i]));
        memcpy(h + 30, names[i], strlen(names[i]));
        memcpy(h + 30 + strlen(names[i]), data[i], dl[i]);
        z->n += 30 + strlen(names[i]) + dl[i];
    }
    z->cd = z->n;
    for (int i = 0; i < 2; i++) {
        unsigned char *h = z->buf + z->n;
        memcpy(h, "PK\1\2", 4);
        put16(h + 4, 20);
        put16(h + 6, 20);
        put32(h + 16, crc[i]);
        put32(h + 20, (uint32_t)dl[i]);
        put32(h + 24, (uint32_t)dl[i]);
        put16(h + 28, (unsigned)strlen(names[i]));
        put32(h + 42, (uint32_t)off[i]);
        memcpy(h + 46, names[i], strlen(names[i]));
        z->n += 46 + strlen(names[i]);
    }
    z->eocd = z->n;
    unsigned char *e = z->buf + z->n;
    memcpy(e, "PK\5\6", 4);
    put16(e + 8, 2);
    put16(e + 10, 2);
    put32(e + 12, (uint32_t)(z->eocd - z->cd));
    put32(e + 16, (uint32_t)z->cd);
    z->n += 22;
}

static ttsm_status open_zb(const zb *z, ttsm_error *err)
{
    ttsm_checkpoint *ck = NULL;
    ttsm_status st = ttsm__checkpoint_open_memory(z->buf, z->n, "hand.pt", NULL, &ck, err);
    ttsm_checkpoint_close(ck);
    return st;
}

static void hand_built(void **state)
{
    (void)state;
    zb z;
    ttsm_error err;
    build(&z, "archive/version");
    tu_assert_ok(open_zb(&z, &err), &err); /* an empty state dict */

    /* a comment holding a fake end record */
    build(&z, "archive/version");
    put16(z.buf + z.eocd + 20, 30);
    memcpy(z.buf + z.n, "PK\5\6xxxxxxxxxxxxxxxxxxxxxxxxxx", 30);
    z.n += 30;
    tu_assert_ok(open_zb(&z, &err), &err);
    z.n -= 1; /* the comment length no longer reaches the end */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "no end of central directory");

    build(&z, "archive/version");
    put16(z.buf + z.eocd + 4, 1);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "multi-disk");
    build(&z, "archive/version");
    put32(z.buf + z.eocd + 16, 4000);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "bad central directory");
    build(&z, "archive/version");
    put16(z.buf + z.eocd + 8, 3);
    put16(z.buf + z.eocd + 10, 3);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "cannot fit in 123");
    build(&z, "archive/version");
    put16(z.buf + z.eocd + 8, 1);
    put16(z.buf + z.eocd + 10, 1);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "directory bytes");
    build(&z, "archive/version");
    put16(z.buf + z.eocd + 10, 0xffff);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "no ZIP64 locator");
    build(&z, "archive/version");
    put16(z.buf + z.cd + 10, 12);
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "compression method 12");
    build(&z, "archive/version");
    put32(z.buf + z.cd + 20, 3); /* stored: compressed != uncompressed */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "stored entry");
    build(&z, "archive/version");
    z.buf[14] ^= 1; /* local CRC differs, no data descriptor */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "zip headers disagree");
    build(&z, "archive/version");
    put16(z.buf + z.cd + 30, 20); /* extra bytes that are not well-formed fields */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "malformed extra fields");
    build(&z, "archive/version");
    put32(z.buf + z.cd + 42, 9); /* header offset into the middle of data */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "no local header signature");
    build(&z, "archive/version");
    z.buf[z.cd + 46 + 16 + 46 + 3] = 'X'; /* version record name changes centrally only */
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "names another file");

    static const struct {
        const char *name, *needle;
    } names[] = {{"archive/./version", "'.' component"}, {"archive//version", "empty component"},
                 {"C:archive/versio", "colon"}, {"archive/vers\x01on", "control byte"},
                 {"archive\\version", "backslash"}, {"../archive/vers", "'..'"},
                 {"/archive/versio", "absolute"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        build(&z, names[i].name);
        tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "bad zip entry name",
                        names[i].needle);
    }
    build(&z, "archive/.data/version"); /* torch's other spelling */
    tu_assert_ok(open_zb(&z, &err), &err);
    build(&z, "archive/versio");
    tu_assert_error(open_zb(&z, &err), &err, TTSM_ERR_FORMAT, "no 'archive/version' record");

    /* only an end record: an empty zip, not a torch archive */
    unsigned char empty[22] = "PK\5\6";
    ttsm_checkpoint *ck = NULL;
    tu_assert_error(ttsm__checkpoint_open_memory(empty, 22, "e.pt", NULL, &ck, &err), &err,
                    TTSM_ERR_FORMAT, "no <root>/data.pkl among its 0 entries");
    tu_assert_error(ttsm__checkpoint_open_memory(empty, 21, "e.pt", NULL, &ck, &err), &err,
                    TTSM_ERR_FORMAT, "shorter than a zip end record");

    /* a stored member with a wrong CRC is caught when it is extracted */
    build(&z, "archive/version");
    ttsm__file f = {0};
    f.path = "hand.pt";
    f.fd = -1;
    f.mem = z.buf;
    f.size = z.n;
    ttsm__zip zz;
    tu_assert_ok(ttsm__zip_open(&f, &zz, &err), &err);
    ttsm__zip_entry e = zz.entries[1];
    e.crc32 ^= 1;
    void *out;
    tu_assert_error(ttsm__zip_extract(&f, &e, 100, &out, &err), &err, TTSM_ERR_FORMAT,
                    "CRC mismatch");
    tu_assert_error(ttsm__zip_extract(&f, &zz.entries[1], 1, &out, &err), &err, TTSM_ERR_FORMAT,
                    "over the cap of 1 bytes");
    tu_assert_ok(ttsm__zip_extract(&f, &zz.entries[1], 2, &out, &err), &err);
    assert_memory_equal(out, "3\n", 2);
    ttsm__free(out);
    ttsm__zip_close(&zz);
}

/* ---- legacy files --------------------------------------------------------- */

/* A legacy stream whose object pickle is bigger than the first read-mode
 * prefix (1 MiB): {"t": float tensor [3], "s": "xxx..."} */
static void legacy_large_pickle(void **state)
{
    (void)state;
    size_t slen = 3u << 20;
    size_t cap = slen + 4096;
    unsigned char *b = malloc(cap);
    size_t n = 0;
#define PUT(lit) (memcpy(b + n, lit, sizeof(lit) - 1), n += sizeof(lit) - 1)
    PUT("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    PUT("\x80\x02M\xe9\x03.");
    PUT("\x80\x02}(X\x0d\0\0\0little_endian\x88X\x10\0\0\0protocol_versionM\xe9\x03u.");
    PUT("\x80\x02}(X\x01\0\0\0tctorch._utils\n_rebuild_tensor_v2\n((X\x07\0\0\0storage"
        "ctorch\nFloatStorage\nX\x02\0\0\0k1X\x03\0\0\0cpuK\x03NtQK\x00K\x03\x85K\x01\x85\x89"
        "ccollections\nOrderedDict\n)RtRX\x01\0\0\0sX");
    b[n++] = (unsigned char)slen;
    b[n++] = (unsigned char)(slen >> 8);
    b[n++] = (unsigned char)(slen >> 16);
    b[n++] = 0;
    memset(b + n, 'x', slen);
    n += slen;
    PUT("u.");
    PUT("\x80\x02]X\x02\0\0\0k1a.");
    PUT("\x03\0\0\0\0\0\0\0");
    PUT("\0\0\x80?\0\0\0@\0\0@@");
#undef PUT
    char *dir = strdup(tu_mkdtemp());
    char *path = tu_write_file(dir, "big_legacy.pt", b, n);
    for (int mode = 0; mode < 2; mode++) {
        ttsm_checkpoint *ck = open_ok(path, (ttsm_io_mode)mode);
        const void *t = data_of(ck, "t", NULL);
        assert_true(f32(t, 0) == 1.0f && f32(t, 1) == 2.0f && f32(t, 2) == 3.0f);
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata_find(ck, "s");
        assert_non_null(m);
        assert_int_equal(strlen(m->json), slen + 2);
        ttsm_checkpoint_close(ck);
    }
    /* the data of the listed storage is cut short */
    FILE *fp = fopen(path, "wb");
    fwrite(b, 1, n - 4, fp);
    fclose(fp);
    ttsm_checkpoint *ck;
    ttsm_error err;
    tu_assert_error(ttsm_checkpoint_open(path, NULL, &ck, &err), &err, TTSM_ERR_FORMAT,
                    "data out of bounds");
    free(path);
    tu_rmtree(dir);
    free(dir);
    free(b);
}

/* Bytes after a legacy file's last storage are ignored, as torch.load
 * ignores them (docs/formats/pytorch.md): the same tensors, the same bytes. */
static void legacy_trailing_bytes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = tu_read_file(FIX "/legacy.pt", &len);
    assert_non_null(buf);
    static const char tail[] = "bytes after the last storage that no record describes";
    unsigned char *longer = malloc(len + sizeof tail);
    memcpy(longer, buf, len);
    memcpy(longer + len, tail, sizeof tail);
    ttsm_checkpoint *a, *b;
    ttsm_error err;
    tu_assert_ok(ttsm__checkpoint_open_memory(buf, len, "legacy.pt", NULL, &a, &err), &err);
    tu_assert_ok(ttsm__checkpoint_open_memory(longer, len + sizeof tail, "trailing.pt", NULL, &b,
                                              &err),
                 &err);
    assert_int_equal(ttsm_checkpoint_version(b), 1001);
    assert_int_equal(ttsm_checkpoint_tensor_count(a), ttsm_checkpoint_tensor_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(a); i++) {
        const ttsm_tensor_info *ta = ttsm_checkpoint_tensor(a, i);
        const ttsm_tensor_info *tb = ttsm_checkpoint_find(b, ta->name);
        assert_non_null(tb);
        const void *pa, *pb;
        tu_assert_ok(ttsm_checkpoint_tensor_data(a, ta, &pa, &err), &err);
        tu_assert_ok(ttsm_checkpoint_tensor_data(b, tb, &pb, &err), &err);
        assert_int_equal(ta->nbytes, tb->nbytes);
        assert_memory_equal(pa, pb, ta->nbytes);
    }
    ttsm_checkpoint_close(a);
    ttsm_checkpoint_close(b);
    free(longer);
    free(buf);
}

static void legacy_errors(void **state)
{
    (void)state;
    ttsm_checkpoint *ck;
    ttsm_error err;
    static const unsigned char not_torch[] = "\x80\x02}.";
    tu_assert_error(ttsm__checkpoint_open_memory(not_torch, 4, "p.pkl", NULL, &ck, &err), &err,
                    TTSM_ERR_FORMAT, "without the torch.save magic number");
    static const unsigned char big_endian[] =
        "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03."
        "\x80\x02}X\x0d\0\0\0little_endian\x89s.\x80\x02}.\x80\x02].";
    tu_assert_error(ttsm__checkpoint_open_memory(big_endian, sizeof big_endian - 1, "p.pt", NULL,
                                                 &ck, &err),
                    &err, TTSM_ERR_FORMAT, "big-endian");
    static const unsigned char truncated[] =
        "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03."
        "\x80\x02}X\x0d\0\0\0little_endian\x88s.\x80\x02}(";
    tu_assert_error(ttsm__checkpoint_open_memory(truncated, sizeof truncated - 1, "p.pt", NULL,
                                                 &ck, &err),
                    &err, TTSM_ERR_FORMAT, "truncated pickle", "legacy object pickle");
    assert_non_null(strstr(err.hint, "torch.save(torch.load(f, weights_only=True), out)"));
    static const unsigned char unlisted[] =
        "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03."
        "\x80\x02}X\x0d\0\0\0little_endian\x88s.\x80\x02}.\x80\x02]X\x01\0\0\0" "9a.";
    tu_assert_error(ttsm__checkpoint_open_memory(unlisted, sizeof unlisted - 1, "p.pt", NULL,
                                                 &ck, &err),
                    &err, TTSM_ERR_FORMAT, "bad legacy storage list");
}

/* ---- allocation failures ------------------------------------------------- */

static void alloc_failures(void **state)
{
    (void)state;
    static const char *const files[] = {FIX "/nested.pt", FIX "/deflated.pt", FIX "/legacy.pt",
                                        FIX "/metadata.pt", FIX "/zip64.pt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        for (int mode = 0; mode < 2; mode++) {
            int ok = 0;
            for (long n = 1; n < 2000 && !ok; n++) {
                ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
                o.io_mode = (ttsm_io_mode)mode;
                ttsm_checkpoint *ck = NULL;
                ttsm_error err;
                ttsm__alloc_fail_after(n);
                ttsm_status st = ttsm_checkpoint_open(files[i], &o, &ck, &err);
                ttsm__alloc_fail_after(0);
                if (st == TTSM_OK) {
                    ok = 1;
                    ttsm_checkpoint_close(ck);
                } else if (st != TTSM_ERR_OUT_OF_MEMORY) {
                    fail_msg("%s: allocation %ld failing gave %s: %s", files[i], n,
                             ttsm_status_name(st), err.message);
                }
            }
            assert_true(ok);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(third_party),
        cmocka_unit_test(fixtures_match_torch),
        cmocka_unit_test(shared_storage_and_views),
        cmocka_unit_test(zip64_and_deflated),
        cmocka_unit_test(deflated_storages_inflate_lazily),
        cmocka_unit_test(malicious),
        cmocka_unit_test(hand_built),
        cmocka_unit_test(legacy_large_pickle),
        cmocka_unit_test(legacy_trailing_bytes),
        cmocka_unit_test(legacy_errors),
        cmocka_unit_test(alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
