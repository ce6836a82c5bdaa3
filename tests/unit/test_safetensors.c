/* test_safetensors.c - the single-file safetensors reader: every hand-made
 * fixture (one per rule, tests/fixtures/safetensors/) with its status and
 * rule text, the edge cases the reference implementation accepts, the
 * third-party files, dtypes, metadata, and allocation failure. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "formats/checkpoint.h"
#include "formats/table.h"
#include "base/text.h"
#include "formats/safetensors.h"
#include "testutil.h"

#define FIXTURES TTSM_SOURCE_DIR "/tests/fixtures/safetensors"
#define THIRD_PARTY TTSM_SOURCE_DIR "/tests/data/third_party/safetensors"

/* ---- helpers ----------------------------------------------------------- */

/* A safetensors image: u64 LE length, the header padded with spaces to a
 * multiple of 8 (as the reference writer does), then `data`. */
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

static ttsm_status open_mem(const void *data, size_t len, ttsm_checkpoint **ck, ttsm_error *err)
{
    return ttsm__checkpoint_open_memory(data, len, "mem.safetensors", NULL, ck, err);
}

static ttsm_status open_fixture(const char *name, ttsm_checkpoint **ck, ttsm_error *err)
{
    char *path = tu_fmt("%s/%s", FIXTURES, name);
    ttsm_status st = ttsm_checkpoint_open(path, NULL, ck, err);
    free(path);
    return st;
}

/* ---- one fixture per rule --------------------------------------------- */

static const struct {
    const char *file;
    ttsm_status code;
    const char *rule;   /* the "what" part of the message */
    const char *detail; /* something the detail must name */
} bad[] = {
    {"bad_header_too_large", TTSM_ERR_FORMAT, ": header too large: ", "100000001"},
    {"bad_header_length_exceeds_file", TTSM_ERR_FORMAT, ": header length exceeds file: ",
     "header length 1000 (offset 0)"},
    {"bad_header_too_small", TTSM_ERR_FORMAT, ": header too small: ", "header length 1"},
    {"bad_utf8_invalid_byte", TTSM_ERR_FORMAT, ": header not UTF-8: ", "byte 0xff at offset 11"},
    {"bad_utf8_overlong", TTSM_ERR_FORMAT, ": header not UTF-8: ", "byte 0xc0 at offset 11"},
    {"bad_utf8_surrogate", TTSM_ERR_FORMAT, ": header not UTF-8: ", "byte 0xed at offset 11"},
    {"bad_json_syntax", TTSM_ERR_FORMAT, ": invalid JSON header: ", "at offset"},
    {"bad_json_nul_padding", TTSM_ERR_FORMAT, ": invalid JSON header: ", "end of file expected"},
    {"bad_json_nul_in_key", TTSM_ERR_FORMAT, ": invalid JSON header: ", "NUL byte in object key"},
    {"bad_duplicate_tensor", TTSM_ERR_FORMAT, ": duplicate key: ", "\"w\""},
    {"bad_duplicate_metadata_key", TTSM_ERR_FORMAT, ": duplicate key: ", "\"k\""},
    {"bad_entry_not_object", TTSM_ERR_FORMAT, ": bad tensor entry: ", "'w' is a JSON array"},
    {"bad_missing_dtype", TTSM_ERR_FORMAT, ": missing field: ", "tensor 'w' has no 'dtype'"},
    {"bad_missing_shape", TTSM_ERR_FORMAT, ": missing field: ", "tensor 'w' has no 'shape'"},
    {"bad_missing_data_offsets", TTSM_ERR_FORMAT, ": missing field: ",
     "tensor 'w' has no 'data_offsets'"},
    {"bad_unexpected_field", TTSM_ERR_FORMAT, ": unexpected field: ", "field 'offset'"},
    {"bad_dtype_not_string", TTSM_ERR_FORMAT, ": bad dtype: ", "tensor 'w'"},
    {"bad_dtype_unknown", TTSM_ERR_FORMAT, ": unknown dtype: ", "tensor 'w' has dtype 'F128'"},
    {"bad_dtype_gguf_name", TTSM_ERR_FORMAT, ": unknown dtype: ", "dtype 'Q4_K'"},
    {"bad_dtype_lowercase", TTSM_ERR_FORMAT, ": unknown dtype: ", "dtype 'f32'"},
    {"bad_shape_not_array", TTSM_ERR_FORMAT, ": bad shape: ", "tensor 'w'"},
    {"bad_dim_negative", TTSM_ERR_FORMAT, ": bad dimension: ", "dimension 0 is -2"},
    {"bad_dim_real", TTSM_ERR_FORMAT, ": bad dimension: ", "is a JSON real"},
    {"bad_rank_too_large", TTSM_ERR_FORMAT, ": rank too large: ", "34 dimensions"},
    {"bad_offsets_three", TTSM_ERR_FORMAT, ": bad data_offsets: ", "tensor 'w'"},
    {"bad_offsets_negative", TTSM_ERR_FORMAT, ": bad data_offsets: ", "non-negative"},
    {"bad_offsets_reversed", TTSM_ERR_FORMAT, ": reversed data_offsets: ", "[16, 0]"},
    {"bad_element_count_overflow", TTSM_ERR_FORMAT, ": element count overflows: ", "tensor 'w'"},
    {"bad_byte_size_overflow", TTSM_ERR_FORMAT, ": byte size overflows: ", "of F64"},
    {"bad_f4_odd_count", TTSM_ERR_FORMAT, ": misaligned sub-byte tensor: ",
     "3 elements of F4 (4 bits each) are 12 bits"},
    {"bad_f6_misaligned", TTSM_ERR_FORMAT, ": misaligned sub-byte tensor: ",
     "6 elements of F6_E2M3"},
    {"bad_size_mismatch", TTSM_ERR_FORMAT, ": size mismatch: ", "take 16 bytes"},
    {"bad_overlapping_tensors", TTSM_ERR_FORMAT, ": overlapping tensors: ",
     "tensor 'b' [8, 16] overlaps tensor 'a'"},
    {"bad_gap_between_tensors", TTSM_ERR_FORMAT, ": gap in data section: ",
     "[4, 8) (file offset 124) before tensor 'b'"},
    {"bad_gap_at_start", TTSM_ERR_FORMAT, ": gap in data section: ", "[0, 4)"},
    {"bad_data_beyond_eof", TTSM_ERR_FORMAT, ": data beyond end of file: ",
     "tensor 'w' ends at data offset 16"},
    {"bad_trailing_bytes", TTSM_ERR_FORMAT, ": trailing bytes: ", "data section has 20"},
    {"bad_metadata_not_object", TTSM_ERR_FORMAT, ": bad __metadata__: ", "a JSON string"},
    {"bad_metadata_value_not_string", TTSM_ERR_FORMAT, ": bad __metadata__: ", "key 'step'"},
    {"bad_metadata_nested", TTSM_ERR_FORMAT, ": bad __metadata__: ", "key 'cfg'"},
    {"bad_empty_tensor_name", TTSM_ERR_FORMAT, ": bad tensor name: ", "empty"},
};
#define N_BAD (sizeof bad / sizeof bad[0])

static const char *const ok_files[] = {
    "ok_space_padding",  "ok_unpadded_header", "ok_leading_whitespace", "ok_empty_header",
    "ok_scalar",         "ok_zero_size_tensors", "ok_unsorted_keys",    "ok_metadata_null",
    "ok_metadata_strings", "ok_subbyte_flat",  "ok_all_dtypes",
};
#define N_OK (sizeof ok_files / sizeof ok_files[0])

static void every_bad_fixture_fails_by_its_rule(void **state)
{
    (void)state;
    assert_true(N_BAD >= 30);
    for (size_t i = 0; i < N_BAD; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.safetensors", bad[i].file);
        ttsm_error err;
        ttsm_checkpoint *ck = NULL;
        ttsm_status st = open_fixture(name, &ck, &err);
        if (st == TTSM_OK)
            ttsm_checkpoint_close(ck);
        /* The message starts with the file, then the rule. */
        tu_assert_error(st, &err, bad[i].code, name, bad[i].rule, bad[i].detail);
        assert_true(ttsm_status_is(st, TTSM_ERR_LOAD));
    }
}

static void every_ok_fixture_opens(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OK; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.safetensors", ok_files[i]);
        ttsm_error err;
        ttsm_checkpoint *ck;
        ttsm_status st = open_fixture(name, &ck, &err);
        if (st != TTSM_OK)
            fail_msg("%s: %s", name, err.message);
        assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS);
        assert_int_equal(ttsm_checkpoint_version(ck), 0);
        ttsm_checkpoint_close(ck);
    }
}

/* No fixture goes untested: each file in the folder is in a table here. */
static void every_fixture_file_is_checked(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES);
    assert_non_null(d);
    struct dirent *e;
    size_t seen = 0;
    while ((e = readdir(d))) {
        const char *dot = strstr(e->d_name, ".safetensors");
        if (!dot || dot[12] != '\0')
            continue;
        size_t len = (size_t)(dot - e->d_name);
        int found = 0;
        for (size_t i = 0; i < N_BAD && !found; i++)
            found = strlen(bad[i].file) == len && memcmp(bad[i].file, e->d_name, len) == 0;
        for (size_t i = 0; i < N_OK && !found; i++)
            found = strlen(ok_files[i]) == len && memcmp(ok_files[i], e->d_name, len) == 0;
        if (!found)
            fail_msg("fixture %s is in no table of this test", e->d_name);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, N_BAD + N_OK);
}

/* ---- what the accepted edge cases contain ----------------------------- */

static void zero_size_tensors_sit_in_file_order(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_zero_size_tensors.safetensors", &ck, &err), &err);
    static const char *const order[] = {"empty_first", "w", "empty_mid", "v", "empty_last"};
    static const uint64_t nbytes[] = {0, 16, 0, 4, 0};
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 5);
    const ttsm_tensor_info *w = ttsm_checkpoint_find(ck, "w");
    assert_non_null(w);
    uint64_t data_start = w->file_offset;
    static const uint64_t rel[] = {0, 0, 16, 16, 20};
    for (size_t i = 0; i < 5; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        assert_string_equal(t->name, order[i]);
        assert_int_equal(t->nbytes, nbytes[i]);
        assert_int_equal(t->file_offset, data_start + rel[i]);
        const void *p;
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &p, &err), &err);
        assert_non_null(p);
    }
    const ttsm_tensor_info *mid = ttsm_checkpoint_find(ck, "empty_mid");
    assert_int_equal(mid->rank, 3);
    assert_int_equal(mid->shape[1], 0);
    assert_int_equal(mid->n_elements, 0);
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 20);
    ttsm_checkpoint_close(ck);
}

static void unsorted_keys_follow_data_offsets(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_unsorted_keys.safetensors", &ck, &err), &err);
    assert_string_equal(ttsm_checkpoint_tensor(ck, 0)->name, "a.first");
    assert_string_equal(ttsm_checkpoint_tensor(ck, 1)->name, "m.middle");
    assert_string_equal(ttsm_checkpoint_tensor(ck, 2)->name, "z.last");
    for (size_t i = 1; i < 3; i++)
        assert_true(ttsm_checkpoint_tensor(ck, i)->file_offset >
                    ttsm_checkpoint_tensor(ck, i - 1)->file_offset);
    ttsm_checkpoint_close(ck);
}

/* Strides are the dense row-major ones whichever pass read the header (a
 * vector's come from one shared copy, its shape has no room for them). */
static void strides_are_row_major_in_both_passes(void **state)
{
    (void)state;
    static const char *headers[] = {
        /* in file order: the first pass */
        "{\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[1,4]},"
        "\"m\":{\"dtype\":\"U8\",\"shape\":[2,3],\"data_offsets\":[4,10]},"
        "\"c\":{\"dtype\":\"U8\",\"shape\":[2,1,3],\"data_offsets\":[10,16]}}",
        /* out of order: the second */
        "{\"c\":{\"dtype\":\"U8\",\"shape\":[2,1,3],\"data_offsets\":[10,16]},"
        "\"m\":{\"dtype\":\"U8\",\"shape\":[2,3],\"data_offsets\":[4,10]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[1,4]},"
        "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}",
    };
    unsigned char data[16] = {0};
    for (size_t h = 0; h < 2; h++) {
        size_t len;
        unsigned char *b = build(headers[h], data, sizeof data, &len);
        ttsm_error err;
        ttsm_checkpoint *ck;
        tu_assert_ok(open_mem(b, len, &ck, &err), &err);
        const ttsm_tensor_info *v = ttsm_checkpoint_find(ck, "v"),
                               *m = ttsm_checkpoint_find(ck, "m"),
                               *c = ttsm_checkpoint_find(ck, "c"),
                               *sc = ttsm_checkpoint_find(ck, "s");
        assert_int_equal(sc->rank, 0);
        assert_int_equal(v->rank, 1);
        assert_int_equal(v->strides[0], 1);
        assert_int_equal(v->shape[0], 3);
        assert_int_equal(m->strides[0], 3);
        assert_int_equal(m->strides[1], 1);
        assert_int_equal(m->shape[0], 2);
        assert_int_equal(m->shape[1], 3);
        assert_int_equal(c->strides[0], 3);
        assert_int_equal(c->strides[1], 3);
        assert_int_equal(c->strides[2], 1);
        assert_true(v->contiguous && m->contiguous && c->contiguous);
        ttsm_checkpoint_close(ck);
        free(b);
    }
}

static void empty_header_and_whitespace_are_accepted(void **state)
{
    (void)state;
    static const char *const files[] = {"ok_empty_header.safetensors",
                                        "ok_leading_whitespace.safetensors"};
    for (int i = 0; i < 2; i++) {
        ttsm_error err;
        ttsm_checkpoint *ck;
        tu_assert_ok(open_fixture(files[i], &ck, &err), &err);
        assert_int_equal(ttsm_checkpoint_tensor_count(ck), 0);
        assert_int_equal(ttsm_checkpoint_metadata_count(ck), 0);
        assert_int_equal(ttsm_checkpoint_total_bytes(ck), 0);
        ttsm_checkpoint_close(ck);
    }
}

static void scalar_has_rank_zero(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_scalar.safetensors", &ck, &err), &err);
    const ttsm_tensor_info *s = ttsm_checkpoint_find(ck, "s");
    assert_non_null(s);
    assert_int_equal(s->rank, 0);
    assert_int_equal(s->n_elements, 1);
    assert_int_equal(s->nbytes, 8);
    const void *p;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, s, &p, &err), &err);
    int64_t v;
    memcpy(&v, p, 8);
    assert_int_equal(v, -7);
    ttsm_checkpoint_close(ck);
}

static void metadata_strings_are_json_strings(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_metadata_strings.safetensors", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 3);
    const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, 0);
    assert_string_equal(m->key, "format");
    assert_string_equal(m->type, "str");
    assert_string_equal(m->json, "\"pt\"");
    m = ttsm_checkpoint_metadata_find(ck, "note");
    assert_non_null(m);
    /* UTF-8 kept, quotes, backslash, newline and NUL escaped. */
    assert_string_equal(m->json, "\"caf\xc3\xa9 \\\"q\\\" \\\\ \\n\\u0000end\"");
    m = ttsm_checkpoint_metadata_find(ck, "");
    assert_non_null(m);
    assert_string_equal(m->json, "\"empty key\"");
    assert_null(ttsm_checkpoint_metadata_find(ck, "absent"));
    ttsm_checkpoint_close(ck);

    tu_assert_ok(open_fixture("ok_metadata_null.safetensors", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 0);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 1);
    ttsm_checkpoint_close(ck);
}

static void every_safetensors_dtype_has_its_size(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ttsm_dtype dtype;
        uint64_t elems, bytes;
    } want[] = {
        {"BOOL", TTSM_DTYPE_BOOL, 1, 1},       {"U8", TTSM_DTYPE_U8, 1, 1},
        {"I8", TTSM_DTYPE_I8, 1, 1},           {"I16", TTSM_DTYPE_I16, 1, 2},
        {"U16", TTSM_DTYPE_U16, 1, 2},         {"F16", TTSM_DTYPE_F16, 1, 2},
        {"BF16", TTSM_DTYPE_BF16, 1, 2},       {"I32", TTSM_DTYPE_I32, 1, 4},
        {"U32", TTSM_DTYPE_U32, 1, 4},         {"F32", TTSM_DTYPE_F32, 1, 4},
        {"F64", TTSM_DTYPE_F64, 1, 8},         {"I64", TTSM_DTYPE_I64, 1, 8},
        {"U64", TTSM_DTYPE_U64, 1, 8},         {"F8_E5M2", TTSM_DTYPE_F8_E5M2, 1, 1},
        {"F8_E4M3", TTSM_DTYPE_F8_E4M3, 1, 1}, {"F8_E8M0", TTSM_DTYPE_F8_E8M0, 1, 1},
        {"C64", TTSM_DTYPE_C64, 1, 8},         {"F4", TTSM_DTYPE_F4, 2, 1},
        {"F6_E2M3", TTSM_DTYPE_F6_E2M3, 4, 3}, {"F6_E3M2", TTSM_DTYPE_F6_E3M2, 4, 3},
    };
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_all_dtypes.safetensors", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 20);
    uint64_t total = 0;
    for (size_t i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "t_%s", want[i].name);
        const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
        if (!t)
            fail_msg("no tensor %s", name);
        assert_int_equal(t->dtype, want[i].dtype);
        assert_string_equal(ttsm_dtype_name(t->dtype), want[i].name);
        assert_int_equal(t->n_elements, want[i].elems);
        assert_int_equal(t->nbytes, want[i].bytes);
        total += want[i].bytes;
    }
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), total);
    ttsm_checkpoint_close(ck);
}

/* F4/F6 pack the flattened elements: [2,1] of F4 is one byte, as the
 * reference accepts, though the innermost dimension is odd. */
static void subbyte_types_pack_the_whole_tensor(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_fixture("ok_subbyte_flat.safetensors", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_find(ck, "f4")->nbytes, 1);
    assert_int_equal(ttsm_checkpoint_find(ck, "f6a")->nbytes, 3);
    assert_int_equal(ttsm_checkpoint_find(ck, "f6b")->nbytes, 6);
    ttsm_checkpoint_close(ck);
}

/* ---- rules that detection never lets a file reach --------------------- */

static ttsm_status read_direct(const void *data, size_t len, ttsm_error *err)
{
    ttsm_checkpoint *ck;
    uint32_t fi;
    ttsm_status st = ttsm__ckpt_new("direct", NULL, &ck, err);
    if (st == TTSM_OK)
        st = ttsm__ckpt_add_memory(ck, "direct", data, len, 0, &fi, err);
    if (st == TTSM_OK)
        st = ttsm__read_safetensors(ck, fi, err);
    ttsm_checkpoint_close(ck);
    return st;
}

static void unreachable_rules_hold_when_called_directly(void **state)
{
    (void)state;
    ttsm_error err;
    tu_assert_error(read_direct("\x02\0\0\0", 4, &err), &err, TTSM_ERR_FORMAT,
                    "direct: file too small: 4 bytes");
    size_t len;
    unsigned char *b = build("[1]", NULL, 0, &len);
    tu_assert_error(read_direct(b, len, &err), &err, TTSM_ERR_FORMAT,
                    "header not an object: the header is a JSON array");
    free(b);
    b = build("\"x\"", NULL, 0, &len);
    tu_assert_error(read_direct(b, len, &err), &err, TTSM_ERR_FORMAT, "invalid JSON header");
    free(b);
}

/* The cap is the reference's 100,000,000: a length at the cap passes the
 * cap and fails only because the file is short; one more is too large. */
static void header_cap_is_exactly_100mb(void **state)
{
    (void)state;
    unsigned char b[16] = {0};
    memcpy(b + 8, "{}      ", 8);
    uint64_t n = 100000000;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    ttsm_error err;
    tu_assert_error(read_direct(b, sizeof b, &err), &err, TTSM_ERR_FORMAT,
                    "header length exceeds file");
    n++;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    tu_assert_error(read_direct(b, sizeof b, &err), &err, TTSM_ERR_FORMAT, "header too large");
    /* A length past SIZE_MAX/2 must not wrap anything. */
    memset(b, 0xff, 8);
    tu_assert_error(read_direct(b, sizeof b, &err), &err, TTSM_ERR_FORMAT, "header too large");
}

/* Detection must not take a header length of 0x280 (bytes 80 02 ...) for
 * a pickle. */
static void header_length_that_looks_like_pickle(void **state)
{
    (void)state;
    char header[641];
    int k = snprintf(header, sizeof header,
                     "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
    memset(header + k, ' ', 640 - (size_t)k);
    header[640] = '\0';
    size_t len;
    unsigned char *b = build(header, "\x07", 1, &len);
    assert_int_equal(b[0], 0x80);
    assert_int_equal(b[1], 0x02);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_mem(b, len, &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 1);
    ttsm_checkpoint_close(ck);
    free(b);
}

static void messages_quote_hostile_names_safely(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = build("{\"a\\nb\\u001b[2J\":{\"dtype\":\"X\\u0007\",\"shape\":[1],"
                             "\"data_offsets\":[0,1]}}",
                             "\0", 1, &len);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(open_mem(b, len, &ck, &err), &err, TTSM_ERR_FORMAT,
                    "tensor 'a?b?[2J' has dtype 'X?'");
    free(b);
}

static void utf8_checker_is_strict(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n, bad;
    } cases[] = {
        {"plain", 5, 5},
        {"caf\xc3\xa9", 5, 5},
        {"\xe2\x82\xac", 3, 3},          /* euro sign */
        {"\xf0\x9f\x98\x80", 4, 4},      /* emoji */
        {"\xf4\x8f\xbf\xbf", 4, 4},      /* U+10FFFF */
        {"a\x80", 2, 1},                 /* lone continuation */
        {"\xc1\xbf", 2, 0},              /* overlong 2-byte */
        {"\xe0\x9f\xbf", 3, 0},          /* overlong 3-byte */
        {"\xf0\x8f\xbf\xbf", 4, 0},      /* overlong 4-byte */
        {"\xed\xbf\xbf", 3, 0},          /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},      /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"ab\xe2\x82", 4, 2},            /* truncated */
        {"\xe2\x28\xa1", 3, 0},          /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ttsm__utf8_check((const unsigned char *)cases[i].s, cases[i].n) != cases[i].bad)
            fail_msg("case %zu: got %zu, want %zu", i,
                     ttsm__utf8_check((const unsigned char *)cases[i].s, cases[i].n),
                     cases[i].bad);
}

/* ---- third-party files ------------------------------------------------- */

static void third_party_files_open_or_fail_for_their_reason(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        size_t tensors, meta;
        uint64_t bytes;
    } good[] = {
        {"hf-safetensors_samples_overall.safetensors", 9, 1, 168},
        {"iree_empty.safetensors", 0, 0, 0},
        {"iree_multiple.safetensors", 3, 0, 72},
        {"burn_mnist.safetensors", 20, 0, 1509296 - 8 - 1520},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *path = tu_fmt("%s/%s", THIRD_PARTY, good[i].file);
        ttsm_error err;
        ttsm_checkpoint *ck;
        ttsm_status st = ttsm_checkpoint_open(path, NULL, &ck, &err);
        free(path);
        if (st != TTSM_OK)
            fail_msg("%s: %s", good[i].file, err.message);
        assert_int_equal(ttsm_checkpoint_tensor_count(ck), good[i].tensors);
        assert_int_equal(ttsm_checkpoint_metadata_count(ck), good[i].meta);
        assert_int_equal(ttsm_checkpoint_total_bytes(ck), good[i].bytes);
        ttsm_checkpoint_close(ck);
    }
    /* burn: two I64 scalars first (the writer orders by alignment). */
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(ttsm_checkpoint_open(THIRD_PARTY "/burn_mnist.safetensors", NULL, &ck, &err),
                 &err);
    const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, 0);
    assert_string_equal(t->name, "norm1.num_batches_tracked");
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->dtype, TTSM_DTYPE_I64);
    assert_int_equal(t->file_offset, 8 + 1520);
    ttsm_checkpoint_close(ck);

    tu_assert_ok(ttsm_checkpoint_open(THIRD_PARTY "/hf-safetensors_samples_overall.safetensors",
                                      NULL, &ck, &err),
                 &err);
    assert_string_equal(ttsm_checkpoint_metadata_find(ck, "test")->json, "\"a\"");
    t = ttsm_checkpoint_find(ck, "I");
    assert_int_equal(t->dtype, TTSM_DTYPE_U32);
    const void *p;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, t, &p, &err), &err);
    uint32_t first;
    memcpy(&first, p, 4);
    assert_int_equal(first, 4294967293u); /* -3 as u32 */
    ttsm_checkpoint_close(ck);

    /* Declares a 1000-byte header in an 88-byte file. */
    tu_assert_error(ttsm_checkpoint_open(THIRD_PARTY "/safetensors-cpp_abuse_attempt_1.safetensors",
                                         NULL, &ck, &err),
                    &err, TTSM_ERR_FORMAT, "abuse_attempt_1.safetensors: header length exceeds file",
                    "header length 1000", "the file has 80");
}


/* ---- the single-pass reader's two paths and its window ----------------- */

/* One checkpoint over `data`, read with a JSON window of `window` bytes (0:
 * the default; from memory the default reads without a window at all). */
static ttsm_status read_window(const void *data, size_t len, size_t window, ttsm_checkpoint **out,
                               ttsm_error *err)
{
    ttsm_checkpoint *ck;
    uint32_t fi;
    ttsm_status st = ttsm__ckpt_new("win.safetensors", NULL, &ck, err);
    if (st != TTSM_OK)
        return st;
    ck->json_window = window;
    if ((st = ttsm__ckpt_add_memory(ck, "win.safetensors", data, len, 0, &fi, err)) == TTSM_OK &&
        (st = ttsm__read_safetensors(ck, fi, err)) == TTSM_OK) {
        *out = ck;
        return TTSM_OK;
    }
    ttsm_checkpoint_close(ck);
    return st;
}

static void assert_same_tensors(const ttsm_checkpoint *a, const ttsm_checkpoint *b)
{
    assert_int_equal(ttsm_checkpoint_tensor_count(a), ttsm_checkpoint_tensor_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(a); i++) {
        const ttsm_tensor_info *x = ttsm_checkpoint_tensor(a, i), *y = ttsm_checkpoint_tensor(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->rank, y->rank);
        for (uint32_t k = 0; k < x->rank; k++) {
            assert_int_equal(x->shape[k], y->shape[k]);
            assert_int_equal(x->strides[k], y->strides[k]);
        }
        assert_int_equal(x->nbytes, y->nbytes);
        /* Headers of other lengths move the data: compare within it. */
        assert_int_equal(x->file_offset - ttsm_checkpoint_tensor(a, 0)->file_offset,
                         y->file_offset - ttsm_checkpoint_tensor(b, 0)->file_offset);
        assert_ptr_equal(ttsm_checkpoint_find(a, x->name), x);
    }
    assert_int_equal(ttsm_checkpoint_metadata_count(a), ttsm_checkpoint_metadata_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(a); i++) {
        assert_string_equal(ttsm_checkpoint_metadata(a, i)->key, ttsm_checkpoint_metadata(b, i)->key);
        assert_string_equal(ttsm_checkpoint_metadata(a, i)->json, ttsm_checkpoint_metadata(b, i)->json);
    }
}

/* Every fixture gives the same answer, to the byte of its message, whether
 * the header is read at once or through windows so small that every token
 * crosses a refill. */
static void tiny_windows_change_nothing(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES);
    assert_non_null(d);
    struct dirent *e;
    size_t seen = 0;
    while ((e = readdir(d))) {
        const char *dot = strstr(e->d_name, ".safetensors");
        if (!dot || dot[12] != '\0')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, e->d_name);
        size_t len;
        unsigned char *b = tu_read_file(path, &len);
        assert_non_null(b);
        ttsm_error e0;
        ttsm_checkpoint *c0 = NULL;
        ttsm_status s0 = read_window(b, len, 0, &c0, &e0);
        static const size_t windows[] = {16, 17, 23, 31, 64, 4096};
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            ttsm_error e1;
            ttsm_checkpoint *c1 = NULL;
            ttsm_status s1 = read_window(b, len, windows[w], &c1, &e1);
            if (s1 != s0 || (s0 != TTSM_OK && strcmp(e0.message, e1.message) != 0))
                fail_msg("%s, window %zu: '%s' against '%s'", e->d_name, windows[w],
                         s1 ? e1.message : "ok", s0 ? e0.message : "ok");
            if (s0 == TTSM_OK)
                assert_same_tensors(c0, c1);
            ttsm_checkpoint_close(c1);
        }
        ttsm_checkpoint_close(c0);
        free(b);
        seen++;
    }
    closedir(d);
    assert_true(seen >= 50);
}

/* A header of many tensors, in file order or not, with or without spaces:
 * `shuffle` moves the last entry first, so the first pass gets only as far
 * as the second entry; `late` swaps the last two, so it stops at the very
 * end. Either way the second pass gives the same table. */
static unsigned char *many(size_t n, int spaces, int order, size_t *out_len)
{
    ttsm__sb h = {0};
    ttsm__sb_adds(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (order == 1) { /* the last first */
        memmove(idx + 1, idx, (n - 1) * sizeof *idx);
        idx[0] = n - 1;
    } else if (order == 2) { /* the last two swapped */
        idx[n - 2] = n - 1;
        idx[n - 1] = n - 2;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        ttsm__sb_addf(&h, spaces ? ", \"model.layers.%zu.weight\": {\"dtype\": \"BF16\", "
                                   "\"shape\": [%zu, 3], \"data_offsets\": [%zu, %zu]}"
                                 : ",\"model.layers.%zu.weight\":{\"dtype\":\"BF16\","
                                   "\"shape\":[%zu,3],\"data_offsets\":[%zu,%zu]}",
                      i, i + 1, 3 * i * (i + 1), 3 * (i + 1) * (i + 2));
    }
    ttsm__sb_adds(&h, "}");
    assert_false(h.failed);
    free(idx);
    size_t data = 3 * n * (n + 1);
    unsigned char *b = build(h.p, NULL, 0, out_len);
    b = realloc(b, *out_len + data);
    memset(b + *out_len, 0x5a, data);
    *out_len += data;
    ttsm__sb_free(&h);
    return b;
}

static void both_passes_and_files_agree(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    size_t len;
    unsigned char *ref = many(3000, 0, 0, &len); /* a 260 KB header: several windows */
    ttsm_error err;
    ttsm_checkpoint *a = NULL, *b = NULL;
    tu_assert_ok(read_window(ref, len, 0, &a, &err), &err);
    assert_int_equal(ttsm_checkpoint_tensor_count(a), 3000);
    assert_string_equal(ttsm_checkpoint_tensor(a, 2999)->name, "model.layers.2999.weight");
    for (int spaces = 0; spaces < 2; spaces++)
        for (int order = 0; order < 3; order++) {
            size_t l2;
            unsigned char *v = many(3000, spaces, order, &l2);
            /* From a real file: pread through the default window. */
            char *p = tu_write_file(dir, "many.safetensors", v, l2);
            tu_assert_ok(ttsm_checkpoint_open(p, NULL, &b, &err), &err);
            assert_same_tensors(a, b);
            ttsm_checkpoint_close(b);
            tu_assert_ok(read_window(v, l2, 100, &b, &err), &err);
            assert_same_tensors(a, b);
            ttsm_checkpoint_close(b);
            free(p);
            free(v);
        }
    ttsm_checkpoint_close(a);
    /* A repeated name late in a header the first pass reads straight into
     * the table: reported as the JSON duplicate it is, at its offset. */
    static const char last[] = "\"model.layers.2999.weight\"";
    char *at = NULL; /* the buffer holds data past the header: no strstr */
    for (size_t i = 8; !at && i + sizeof last - 1 <= len; i++)
        if (memcmp(ref + i, last, sizeof last - 1) == 0)
            at = (char *)ref + i;
    assert_non_null(at);
    memcpy(at + 14, "2998", 4);
    tu_assert_error(read_window(ref, len, 0, &a, &err), &err, TTSM_ERR_FORMAT,
                    "win.safetensors: duplicate key: ", "\"model.layers.2998.weight\"", "at offset");
    free(ref);
    tu_rmtree(dir);
    free(dir);
}

/* What jansson accepts and refuses at the edges, the scanner does too (the
 * differential fuzz harness, tests/fuzz/fuzz_st_diff.c, checks the rest). */
static void json_edges_are_jansson_s(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        size_t len;
        int ok;
        const char *want;
    } cases[] = {
#define C(h, ok, want) {h, sizeof h - 1, ok, want}
        /* jansson drops one NUL right after a number or a literal */
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]\0,\"data_offsets\":[0,1]}}", 0,
          "invalid JSON header"), /* not after a bracket */
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1\0],\"data_offsets\":[0,1]}}", 1, NULL),
        C("{\"__metadata__\":null\0,\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
          1, NULL),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1\0\0],\"data_offsets\":[0,1]}}", 0,
          "invalid JSON header"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,1]}}", 0, "size mismatch"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 0, "invalid JSON header"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e400],\"data_offsets\":[0,1]}}", 0,
          "real number overflow"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e-400],\"data_offsets\":[0,1]}}", 0, "is a JSON real"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,1]}}", 0,
          "too big integer"),
        C("{\"w\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, NULL),
        C("{\"w\\ud83d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0, "invalid Unicode"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],}}", 0, "invalid JSON header"),
        C("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":{\"a\":1,\"a\":2}}}", 0,
          "duplicate key"),
        C("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0,
          "duplicate key"),
        C("\xef\xbb\xbf{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0,
          "byte order mark (BOM"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t hl = cases[i].len;
        unsigned char b[512];
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
        memcpy(b + 8, cases[i].header, hl);
        b[8 + hl] = 0x07; /* one data byte */
        ttsm_error err;
        ttsm_checkpoint *ck = NULL;
        ttsm_status st = read_window(b, 8 + hl + 1, 0, &ck, &err);
        if (cases[i].ok) {
            if (st != TTSM_OK)
                fail_msg("case %zu: %s", i, err.message);
            ttsm_checkpoint_close(ck);
        } else {
            if (st == TTSM_OK)
                fail_msg("case %zu accepted", i);
            if (!strstr(err.message, cases[i].want))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].want);
        }
    }
}

/* Detection: a BOM before the header says so; so does an index with one. A
 * damaged first header byte is explained through the header length. */
static void bom_and_damaged_length_are_explained(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = build("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "\x07", 1,
                             &len);
    unsigned char *bom = malloc(len + 3);
    uint64_t hl = (uint64_t)(len - 9) + 3;
    for (int k = 0; k < 8; k++)
        bom[k] = (unsigned char)(hl >> (8 * k));
    memcpy(bom + 8, "\xef\xbb\xbf", 3);
    memcpy(bom + 11, b + 8, len - 8);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(open_mem(bom, len + 3, &ck, &err), &err, TTSM_ERR_FORMAT,
                    "mem.safetensors: invalid JSON header: ", "byte order mark (BOM: EF BB BF)",
                    "at offset 8");
    free(bom);
    b[8] = 'x'; /* what damaging byte 8 does */
    tu_assert_error(open_mem(b, len, &ck, &err), &err, TTSM_ERR_FORMAT,
                    "mem.safetensors: unknown format: first bytes 38 00 00 00 00 00 00 00 read as a "
                    "safetensors header length of 56 bytes (which fits the file)",
                    "offset 8 is 0x78", "download the file again");
    b[0] = 0xff; /* a length the file cannot hold */
    tu_assert_error(open_mem(b, len, &ck, &err), &err, TTSM_ERR_FORMAT, "unknown format",
                    "header length of 255 bytes (more than the 57 bytes the file has after them)");
    free(b);
    const char *ix = "\xef\xbb\xbf{\"weight_map\":{\"a\":\"s.safetensors\"}}";
    tu_assert_error(ttsm__checkpoint_open_memory(ix, strlen(ix), "mem.index.json", NULL, &ck, &err),
                    &err, TTSM_ERR_FORMAT, "mem.index.json: invalid JSON: ", "byte order mark",
                    "line 1, column 1");
}

/* ---- allocation failure ---------------------------------------------- */

static void torture(const char *fixture)
{
    char *path = tu_fmt("%s/%s", FIXTURES, fixture);
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    assert_non_null(b);
    free(path);
    for (long k = 1;; k++) {
        ttsm_error err;
        ttsm_checkpoint *ck = NULL;
        ttsm__alloc_fail_after(k);
        ttsm_status st = open_mem(b, len, &ck, &err);
        long used = ttsm__alloc_count();
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK) {
            ttsm_checkpoint_close(ck);
            if (used < k)
                break; /* no allocation failed: every point was tried */
            continue;
        }
        if (st != TTSM_ERR_OUT_OF_MEMORY)
            fail_msg("%s: allocation %ld failing gave %s: %s", fixture, k, ttsm_status_name(st),
                     err.message);
    }
    free(b);
}

static void allocation_failures_are_reported_not_leaked(void **state)
{
    (void)state;
    torture("ok_all_dtypes.safetensors");
    torture("ok_metadata_strings.safetensors");
    torture("ok_zero_size_tensors.safetensors");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_bad_fixture_fails_by_its_rule),
        cmocka_unit_test(every_ok_fixture_opens),
        cmocka_unit_test(every_fixture_file_is_checked),
        cmocka_unit_test(zero_size_tensors_sit_in_file_order),
        cmocka_unit_test(unsorted_keys_follow_data_offsets),
        cmocka_unit_test(strides_are_row_major_in_both_passes),
        cmocka_unit_test(empty_header_and_whitespace_are_accepted),
        cmocka_unit_test(scalar_has_rank_zero),
        cmocka_unit_test(metadata_strings_are_json_strings),
        cmocka_unit_test(every_safetensors_dtype_has_its_size),
        cmocka_unit_test(subbyte_types_pack_the_whole_tensor),
        cmocka_unit_test(unreachable_rules_hold_when_called_directly),
        cmocka_unit_test(header_cap_is_exactly_100mb),
        cmocka_unit_test(header_length_that_looks_like_pickle),
        cmocka_unit_test(messages_quote_hostile_names_safely),
        cmocka_unit_test(utf8_checker_is_strict),
        cmocka_unit_test(third_party_files_open_or_fail_for_their_reason),
        cmocka_unit_test(allocation_failures_are_reported_not_leaked),
        cmocka_unit_test(tiny_windows_change_nothing),
        cmocka_unit_test(both_passes_and_files_agree),
        cmocka_unit_test(json_edges_are_jansson_s),
        cmocka_unit_test(bom_and_damaged_length_are_explained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
