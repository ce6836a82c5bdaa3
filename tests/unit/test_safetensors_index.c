/* test_safetensors_index.c - HuggingFace sharded checkpoints: every index
 * fixture with its status and rule, the shard/map agreement rules, missing
 * shards, the third-party index files (without shards, then with stand-in
 * shards written from their weight_map), in-memory parsing and allocation
 * failure. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "formats/checkpoint.h"
#include "formats/table.h"
#include "formats/safetensors_index.h"
#include "testutil.h"

#define INDEX_DIR TTSM_SOURCE_DIR "/tests/fixtures/safetensors/index"
#define THIRD_PARTY TTSM_SOURCE_DIR "/tests/data/third_party/safetensors_index"

static ttsm_status open_index(const char *name, ttsm_checkpoint **ck, ttsm_error *err)
{
    char *path = tu_fmt("%s/%s", INDEX_DIR, name);
    ttsm_status st = ttsm_checkpoint_open(path, NULL, ck, err);
    free(path);
    return st;
}

/* ---- one fixture per rule --------------------------------------------- */

static const struct {
    const char *file;
    ttsm_status code;
    const char *subject; /* the file the message starts with */
    const char *rule;
    const char *detail;
} bad[] = {
    {"missing_shard", TTSM_ERR_NOT_FOUND, "missing_shard.safetensors.index.json: ",
     ": missing shard: ", "'shard-absent.safetensors' not found at "},
    {"not_index", TTSM_ERR_FORMAT, "not_index.safetensors.index.json: ", ": not a sharded index: ",
     "without \"weight_map\""},
    {"bad_json", TTSM_ERR_FORMAT, "bad_json.safetensors.index.json: ", ": invalid JSON: ",
     "line 1"},
    {"duplicate_key", TTSM_ERR_FORMAT, "duplicate_key.safetensors.index.json: ", ": duplicate key: ",
     "\"a.0\""},
    {"not_utf8", TTSM_ERR_FORMAT, "not_utf8.safetensors.index.json: ", ": index not UTF-8: ",
     "byte 0xfe at offset 18"},
    {"weight_map_not_object", TTSM_ERR_FORMAT, "weight_map_not_object.safetensors.index.json: ",
     ": bad weight_map: ", "a JSON array"},
    {"empty_weight_map", TTSM_ERR_FORMAT, "empty_weight_map.safetensors.index.json: ",
     ": empty weight_map: ", "no tensors"},
    {"metadata_not_object", TTSM_ERR_FORMAT, "metadata_not_object.safetensors.index.json: ",
     ": bad metadata: ", "a JSON string"},
    {"empty_tensor_name", TTSM_ERR_FORMAT, "empty_tensor_name.safetensors.index.json: ",
     ": bad tensor name: ", "empty tensor name"},
    {"shard_not_string", TTSM_ERR_FORMAT, "shard_not_string.safetensors.index.json: ",
     ": bad shard name: ", "entry 'a.0' is a JSON integer"},
    {"shard_empty", TTSM_ERR_FORMAT, "shard_empty.safetensors.index.json: ", ": bad shard name: ",
     "entry 'a.0' names a shard that is empty"},
    {"shard_nul", TTSM_ERR_FORMAT, "shard_nul.safetensors.index.json: ", ": bad shard name: ",
     "holds a NUL byte"},
    {"shard_too_long", TTSM_ERR_FORMAT, "shard_too_long.safetensors.index.json: ",
     ": bad shard name: ", "longer than 255 bytes"},
    {"shard_parent", TTSM_ERR_FORMAT, "shard_parent.safetensors.index.json: ",
     ": unsafe shard name: ", "'../shard-a.safetensors', which holds a path separator"},
    {"shard_dotdot", TTSM_ERR_FORMAT, "shard_dotdot.safetensors.index.json: ",
     ": unsafe shard name: ", "names '..'"},
    {"shard_absolute", TTSM_ERR_FORMAT, "shard_absolute.safetensors.index.json: ",
     ": unsafe shard name: ", "'/etc/passwd', which is an absolute path"},
    {"shard_subdir", TTSM_ERR_FORMAT, "shard_subdir.safetensors.index.json: ",
     ": unsafe shard name: ", "'sub/shard-a.safetensors'"},
    {"shard_backslash", TTSM_ERR_FORMAT, "shard_backslash.safetensors.index.json: ",
     ": unsafe shard name: ", "'..\\shard-a.safetensors'"},
    {"extra_tensor", TTSM_ERR_FORMAT, "extra_tensor.safetensors.index.json: ",
     ": tensor not in weight_map: ", "shard 'shard-extra.safetensors' holds tensor 'x.extra'"},
    {"missing_tensor", TTSM_ERR_FORMAT, "missing_tensor.safetensors.index.json: ",
     ": tensor missing from shard: ", "tensor 'a.2' in shard 'shard-a.safetensors'"},
    {"wrong_shard", TTSM_ERR_FORMAT, "wrong_shard.safetensors.index.json: ",
     ": tensor in wrong shard: ",
     "tensor 'a.0' is in shard 'shard-a.safetensors' but the weight_map places it in "
     "'shard-b.safetensors'"},
    {"duplicate_across_shards", TTSM_ERR_FORMAT, "duplicate_across_shards.safetensors.index.json: ",
     ": duplicate tensor across shards: ",
     "'a.0' is in shard 'shard-a.safetensors' and again in shard 'shard-dup.safetensors'"},
    /* A broken shard is reported as itself, with the index in the hint. */
    {"bad_shard", TTSM_ERR_FORMAT, "index/shard-bad.safetensors: ", ": size mismatch: ",
     "tensor 'c.0'"},
};
#define N_BAD (sizeof bad / sizeof bad[0])

static void every_bad_index_fails_by_its_rule(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.safetensors.index.json", bad[i].file);
        ttsm_error err;
        ttsm_checkpoint *ck = NULL;
        ttsm_status st = open_index(name, &ck, &err);
        if (st == TTSM_OK)
            ttsm_checkpoint_close(ck);
        tu_assert_error(st, &err, bad[i].code, bad[i].subject, bad[i].rule, bad[i].detail);
    }
}

static void a_broken_shard_names_its_index_in_the_hint(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_status st = open_index("bad_shard.safetensors.index.json", &ck, &err);
    assert_int_equal(st, TTSM_ERR_FORMAT);
    assert_non_null(strstr(err.hint, "shard 'shard-bad.safetensors' of "));
    assert_non_null(strstr(err.hint, "bad_shard.safetensors.index.json"));
}

/* The hint has a fixed size: an index deep in the tree (a checkout under
 * .../ComfyUI/custom_nodes/...) still has its own name in it. */
static void a_deep_index_keeps_its_name_in_the_hint(void **state)
{
    (void)state;
    char *deep = strdup(tu_mkdtemp()), *top = strdup(deep);
    for (int i = 0; i < 8; i++) {
        char *next = tu_fmt("%s/%s%d", deep, "a-folder-name-of-forty-bytes-in-a-tree-", i);
        free(deep);
        deep = next;
        assert_int_equal(mkdir(deep, 0755), 0);
    }
    assert_int_equal(tu_system("cp '%s/bad_shard.safetensors.index.json' '%s/shard-bad.safetensors' "
                               "'%s/'",
                               INDEX_DIR, INDEX_DIR, deep),
                     0);
    char *ix = tu_path(deep, "bad_shard.safetensors.index.json");
    assert_true(strlen(ix) > TTSM_ERROR_HINT_MAX);
    ttsm_error err;
    ttsm_checkpoint *ck;
    assert_int_equal(ttsm_checkpoint_open(ix, NULL, &ck, &err), TTSM_ERR_FORMAT);
    if (!strstr(err.hint, "shard 'shard-bad.safetensors' of ...") ||
        !strstr(err.hint, "/a-folder-name-of-forty-bytes-in-a-tree-7/"
                          "bad_shard.safetensors.index.json"))
        fail_msg("hint: %s", err.hint);
    tu_rmtree(top);
    free(ix);
    free(deep);
    free(top);
}

/* Every file in the fixture folder is an index case or a shard used here. */
static void every_index_fixture_is_checked(void **state)
{
    (void)state;
    static const char *const others[] = {
        "ok.safetensors.index.json", "ok_no_metadata.safetensors.index.json",
        "shard-a.safetensors",       "shard-b.safetensors",
        "shard-extra.safetensors",   "shard-bad.safetensors",
        "shard-dup.safetensors",
    };
    size_t n_others = sizeof others / sizeof others[0], seen = 0;
    DIR *d = opendir(INDEX_DIR);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int found = 0;
        for (size_t i = 0; i < n_others && !found; i++)
            found = strcmp(others[i], e->d_name) == 0;
        for (size_t i = 0; i < N_BAD && !found; i++) {
            size_t l = strlen(bad[i].file);
            found = strncmp(bad[i].file, e->d_name, l) == 0 &&
                    strcmp(e->d_name + l, ".safetensors.index.json") == 0;
        }
        if (!found)
            fail_msg("fixture index/%s is in no table of this test", e->d_name);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, N_BAD + n_others);
}

/* ---- a good index ----------------------------------------------------- */

static void good_index_joins_its_shards(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(open_index("ok.safetensors.index.json", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS_SHARDED);
    assert_string_equal(ttsm_format_name(ttsm_checkpoint_format(ck)), "safetensors-sharded");
    assert_int_equal(ttsm_checkpoint_version(ck), 0);
    /* The files are the shards, in name order; the index itself is not one. */
    assert_int_equal(ttsm_checkpoint_file_count(ck), 2);
    assert_string_equal(ttsm_checkpoint_file_path(ck, 0), INDEX_DIR "/shard-a.safetensors");
    assert_string_equal(ttsm_checkpoint_file_path(ck, 1), INDEX_DIR "/shard-b.safetensors");
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 3);
    assert_int_equal(ttsm_checkpoint_total_bytes(ck), 20);
    const ttsm_tensor_info *a0 = ttsm_checkpoint_find(ck, "a.0"), *b0 = ttsm_checkpoint_find(ck, "b.0");
    assert_non_null(a0);
    assert_non_null(b0);
    assert_int_equal(a0->file_index, 0);
    assert_int_equal(b0->file_index, 1);
    assert_int_equal(b0->dtype, TTSM_DTYPE_I64);
    assert_true(a0->storage_index != b0->storage_index);
    /* Data from the second shard really comes from that file. */
    const void *p;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_find(ck, "a.1"), &p, &err), &err);
    assert_memory_equal(p, "\x08\x09\x0a\x0b", 4);

    static const struct {
        const char *key, *type, *json;
    } meta[] = {
        {"total_size", "i64", "20"}, {"format", "str", "\"pt\""}, {"ratio", "f64", "0.5"},
        {"flag", "bool", "true"},    {"none", "null", "null"},    {"list", "array", "[1,\"two\"]"},
        {"obj", "object", "{\"k\":\"v\"}"},
    };
    /* Only the index's metadata: the shards' __metadata__ is not merged. */
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 7);
    for (size_t i = 0; i < 7; i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        assert_string_equal(m->key, meta[i].key);
        assert_string_equal(m->type, meta[i].type);
        assert_string_equal(m->json, meta[i].json);
    }
    ttsm_checkpoint_close(ck);

    tu_assert_ok(open_index("ok_no_metadata.safetensors.index.json", &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 0);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 3);
    ttsm_checkpoint_close(ck);
}

static void read_mode_works_across_shards(void **state)
{
    (void)state;
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = TTSM_IO_READ;
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(ttsm_checkpoint_open(INDEX_DIR "/ok.safetensors.index.json", &o, &ck, &err), &err);
    const void *p;
    const ttsm_tensor_info *b0 = ttsm_checkpoint_find(ck, "b.0");
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, b0, &p, &err), &err);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_memory_equal(p, "\0\0\0\0\0\0\0\0", 8);
    ttsm_checkpoint_close(ck);
}

/* ---- parsing from memory ---------------------------------------------- */

static void parse_lists_distinct_shards_in_order(void **state)
{
    (void)state;
    const char *j = "{\"weight_map\":{\"x\":\"s-2.safetensors\",\"y\":\"s-1.safetensors\","
                    "\"z\":\"s-2.safetensors\",\"w\":\"s-10.safetensors\"}}";
    ttsm__st_index ix;
    ttsm_error err;
    tu_assert_ok(ttsm__st_index_parse("mem", j, strlen(j), &ix, &err), &err);
    assert_int_equal(ix.n_shards, 3);
    assert_string_equal(ix.shards[0], "s-1.safetensors");
    assert_string_equal(ix.shards[1], "s-10.safetensors");
    assert_string_equal(ix.shards[2], "s-2.safetensors");
    assert_int_equal(ix.n_meta, 0);
    /* The map keeps file order and points each tensor at its shard. */
    assert_int_equal(ix.n_map, 4);
    assert_string_equal(ix.map[0].name, "x");
    assert_string_equal(ix.shards[ix.map[0].shard], "s-2.safetensors");
    assert_string_equal(ix.shards[ix.map[3].shard], "s-10.safetensors");
    assert_int_equal(ttsm__st_index_find(&ix, "y", 1), 1);
    assert_int_equal(ttsm__st_index_find(&ix, "v", 1), -1);
    ttsm__st_index_free(&ix);
    ttsm__st_index_free(NULL);

    const char *arr = "[1, 2]";
    tu_assert_error(ttsm__st_index_parse("mem", arr, strlen(arr), &ix, &err), &err,
                    TTSM_ERR_FORMAT, "mem: not a sharded index: the file is a JSON array");
    assert_int_equal(ix.n_shards, 0);
    assert_null(ix.map);
}

static void in_memory_index_never_opens_files(void **state)
{
    (void)state;
    const char *j = "{\"weight_map\":{\"x\":\"shard-a.safetensors\"}}";
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(ttsm__checkpoint_open_memory(j, strlen(j), "mem.index.json", NULL, &ck, &err),
                    &err, TTSM_ERR_NOT_FOUND, "mem.index.json: shards unavailable",
                    "'shard-a.safetensors'");
}

/* ---- file-system cases ------------------------------------------------ */

static void write_shard(const char *dir, const char *name, const char *header, size_t data_len)
{
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    size_t len = 8 + hp + data_len;
    unsigned char *b = calloc(1, len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', hp - h);
    free(tu_write_file(dir, name, b, len));
    free(b);
}

static void relative_index_path_finds_shards_beside_it(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    const char *j = "{\"weight_map\":{\"t\":\"s.safetensors\"}}";
    free(tu_write_file(dir, "m.safetensors.index.json", j, strlen(j)));
    write_shard(dir, "s.safetensors", "{\"t\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}",
                3);
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    assert_int_equal(chdir(dir), 0);
    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_status st = ttsm_checkpoint_open("m.safetensors.index.json", NULL, &ck, &err);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
    tu_assert_ok(st, &err);
    assert_string_equal(ttsm_checkpoint_file_path(ck, 0), "s.safetensors");
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 1);
    ttsm_checkpoint_close(ck);
    tu_rmtree(dir);
    free(dir);
}

static void shard_that_is_a_folder_is_an_io_error(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    const char *j = "{\"weight_map\":{\"t\":\"s.safetensors\"}}";
    char *ix = tu_write_file(dir, "m.safetensors.index.json", j, strlen(j));
    char *sub = tu_path(dir, "s.safetensors");
    assert_int_equal(mkdir(sub, 0700), 0);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(ttsm_checkpoint_open(ix, NULL, &ck, &err), &err, TTSM_ERR_IO, "s.safetensors",
                    "is a directory");
    free(ix);
    free(sub);
    tu_rmtree(dir);
    free(dir);
}

/* The cap is checked before anything is read: a sparse 100 MB + 1 file. */
static void index_over_the_cap_is_refused(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *p = tu_write_file(dir, "big.safetensors.index.json", "{\"weight_map\":{", 15);
    assert_int_equal(truncate(p, (off_t)TTSM__ST_MAX_INDEX + 1), 0);
    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_error(ttsm_checkpoint_open(p, NULL, &ck, &err), &err, TTSM_ERR_FORMAT,
                    "big.safetensors.index.json: index too large: 100000001 bytes");
    free(p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- third-party index files ----------------------------------------- */

static void third_party_index_without_shards_names_the_first(void **state)
{
    (void)state;
    static const struct {
        const char *file, *first;
    } cases[] = {
        {"devstral-small-2507.model.safetensors.index.json", "'model-00001-of-00010.safetensors'"},
        {"pygmalion-7b.model.safetensors.index.json", "'model-00001-of-00007.safetensors'"},
    };
    for (size_t i = 0; i < 2; i++) {
        char *path = tu_fmt("%s/%s", THIRD_PARTY, cases[i].file);
        ttsm_error err;
        ttsm_checkpoint *ck;
        tu_assert_error(ttsm_checkpoint_open(path, NULL, &ck, &err), &err, TTSM_ERR_NOT_FOUND,
                        cases[i].file, ": missing shard: ", cases[i].first, "not found at");
        free(path);
    }
}

/* Writes one small shard per file the weight_map names, each holding
 * exactly its tensors (U8 vectors of varying length), next to a copy of
 * the index; then the index must open completely. */
static void third_party_index_with_stand_in_shards(const char *file, size_t want_tensors,
                                                   size_t want_shards, const char *meta_key,
                                                   const char *meta_json)
{
    char *src = tu_fmt("%s/%s", THIRD_PARTY, file);
    size_t len;
    unsigned char *text = tu_read_file(src, &len);
    assert_non_null(text);
    free(src);
    char *dir = strdup(tu_mkdtemp());
    char *ix_path = tu_write_file(dir, file, text, len);
    json_t *root = json_loadb((const char *)text, len, 0, NULL);
    assert_non_null(root);
    json_t *wm = json_object_get(root, "weight_map");
    assert_non_null(wm);

    /* Group tensors by shard: shard name -> header object. */
    json_t *headers = json_object();
    json_t *sizes = json_object();
    const char *name;
    json_t *v;
    size_t i = 0;
    json_object_foreach(wm, name, v)
    {
        const char *shard = json_string_value(v);
        json_t *h = json_object_get(headers, shard);
        if (!h) {
            h = json_object();
            json_object_set_new(headers, shard, h);
            json_object_set_new(sizes, shard, json_integer(0));
        }
        json_int_t off = json_integer_value(json_object_get(sizes, shard));
        json_int_t n = (json_int_t)(i++ % 5) + 1;
        json_object_set_new(h, name,
                            json_pack("{s:s, s:[I], s:[I,I]}", "dtype", "U8", "shape", n,
                                      "data_offsets", off, off + n));
        json_object_set_new(sizes, shard, json_integer(off + n));
    }
    const char *shard;
    json_object_foreach(headers, shard, v)
    {
        char *h = json_dumps(v, JSON_COMPACT);
        write_shard(dir, shard, h, (size_t)json_integer_value(json_object_get(sizes, shard)));
        free(h);
    }

    ttsm_error err;
    ttsm_checkpoint *ck;
    tu_assert_ok(ttsm_checkpoint_open(ix_path, NULL, &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS_SHARDED);
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), want_tensors);
    assert_int_equal(ttsm_checkpoint_file_count(ck), want_shards);
    json_object_foreach(wm, name, v)
    {
        const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
        if (!t)
            fail_msg("%s: tensor %s missing", file, name);
        const char *p = ttsm_checkpoint_file_path(ck, t->file_index);
        const char *base = strrchr(p, '/') + 1;
        assert_string_equal(base, json_string_value(v));
    }
    const ttsm_metadata_entry *m = ttsm_checkpoint_metadata_find(ck, meta_key);
    assert_non_null(m);
    assert_string_equal(m->type, "i64");
    assert_string_equal(m->json, meta_json);
    ttsm_checkpoint_close(ck);

    json_decref(headers);
    json_decref(sizes);
    json_decref(root);
    free(ix_path);
    free(text);
    tu_rmtree(dir);
    free(dir);
}

static void third_party_indexes_open_with_stand_in_shards(void **state)
{
    (void)state;
    third_party_index_with_stand_in_shards("devstral-small-2507.model.safetensors.index.json", 363,
                                           10, "total_parameters", "23572403200");
    third_party_index_with_stand_in_shards("pygmalion-7b.model.safetensors.index.json", 323, 7,
                                           "total_size", "13476835328");
}

/* ---- allocation failure ---------------------------------------------- */

static void allocation_failures_are_reported_not_leaked(void **state)
{
    (void)state;
    for (long k = 1;; k++) {
        ttsm_error err;
        ttsm_checkpoint *ck = NULL;
        ttsm__alloc_fail_after(k);
        ttsm_status st = open_index("ok.safetensors.index.json", &ck, &err);
        long used = ttsm__alloc_count();
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK) {
            ttsm_checkpoint_close(ck);
            if (used < k)
                break;
            continue;
        }
        if (st != TTSM_ERR_OUT_OF_MEMORY)
            fail_msg("allocation %ld failing gave %s: %s", k, ttsm_status_name(st), err.message);
    }
}


/* jansson's nesting limit, its spelling of values in the metadata, and the
 * same answers through windows so small that every token crosses one. */
static void json_limits_and_text_are_jansson_s(void **state)
{
    (void)state;
    for (int extra = 0; extra < 2; extra++) {
        /* The top object is depth 1, "x" depth 2: 2047 arrays inside it
         * reach jansson's 2048, one more goes past. */
        size_t depth = 2047 + (size_t)extra;
        char *j = malloc(2 * depth + 128);
        size_t n = (size_t)sprintf(j, "{\"x\": ");
        memset(j + n, '[', depth);
        n += depth;
        memset(j + n, ']', depth);
        n += depth;
        n += (size_t)sprintf(j + n, ", \"weight_map\": {\"a\": \"s.safetensors\"}}");
        ttsm__st_index ix;
        ttsm_error err;
        ttsm_status st = ttsm__st_index_parse("mem", j, n, &ix, &err);
        if (extra) {
            tu_assert_error(st, &err, TTSM_ERR_FORMAT, "mem: invalid JSON: ",
                            "maximum parsing depth reached");
        } else {
            tu_assert_ok(st, &err);
            ttsm__st_index_free(&ix);
        }
        free(j);
    }
    const char *j = "{\"metadata\": {\"r\": 1.5e3, \"z\": -0, \"t\": 0.1, \"s\": \"a\\u00e9\\/\\u001b\", "
                    "\"n\": [1, \"two\", {\"x\": null, \"y\": false}], \"e\": {}},\n"
                    " \"other\": {\"ignored\": [1e300]},\n"
                    " \"weight_map\": {\"b\": \"s-2.safetensors\", \"a\": \"s-1.safetensors\"}}";
    static const struct {
        const char *key, *type, *json;
    } want[] = {
        {"r", "f64", "1500.0"},
        {"z", "i64", "0"},
        {"t", "f64", "0.10000000000000001"},
        {"s", "str", "\"a\xc3\xa9/\\u001B\""},
        {"n", "array", "[1,\"two\",{\"x\":null,\"y\":false}]"},
        {"e", "object", "{}"},
    };
    static const size_t windows[] = {0, 16, 19, 40};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        ttsm__st_index ix;
        ttsm_error err;
        tu_assert_ok(ttsm__st_index_parse_window("mem", j, strlen(j), windows[w], &ix, &err), &err);
        assert_int_equal(ix.n_meta, 6);
        for (size_t i = 0; i < 6; i++) {
            assert_string_equal(ix.meta[i].key, want[i].key);
            assert_string_equal(ix.meta[i].type, want[i].type);
            assert_string_equal(ix.meta[i].json, want[i].json);
        }
        assert_int_equal(ix.n_shards, 2);
        assert_string_equal(ix.shards[ix.map[0].shard], "s-2.safetensors");
        assert_string_equal(ix.shards[ix.map[1].shard], "s-1.safetensors");
        ttsm__st_index_free(&ix);
    }
    /* A repeated key is found where it is, even after the map began. */
    const char *dup = "{\"weight_map\": {\"a\": \"s.safetensors\", \"a\": \"t.safetensors\"}}";
    ttsm__st_index ix;
    ttsm_error err;
    tu_assert_error(ttsm__st_index_parse_window("mem", dup, strlen(dup), 16, &ix, &err), &err,
                    TTSM_ERR_FORMAT, "mem: duplicate key: ", "'\"a\"'", "line 1, column");
}

/* ---- large maps, shards in any order --------------------------------- */

/* A shard header listing tensors t.<ids[i]> in that order (t.zzz for -1),
 * 1 byte each. */
static void write_order_shard(const char *dir, const char *file, const int *ids, size_t n)
{
    ttsm__sb h = {0};
    ttsm__sb_adds(&h, "{");
    for (size_t i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, ids[i] < 0 ? "t.zzz" : "t.%03d", ids[i]);
        ttsm__sb_addf(&h, "%s\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                      i ? "," : "", name, i, i + 1);
    }
    ttsm__sb_adds(&h, "}");
    write_shard(dir, file, ttsm__sb_str(&h), n);
    ttsm__sb_free(&h);
}

/* 300 tensors in name order in the map: t.000-099 in shard b in map order
 * (every in-order guess hits), t.100-299 in shard a, listed there in
 * reverse (every guess misses). `wrong` 1: the map puts t.050 in shard a
 * instead; 2: shard b holds t.zzz, which the map does not list, where the
 * map has t.099. */
static char *write_ordered(int wrong, size_t pad)
{
    char *dir = strdup(tu_mkdtemp());
    ttsm__sb j = {0};
    ttsm__sb_adds(&j, "{\"weight_map\":{");
    for (int i = 0; i < 300; i++)
        ttsm__sb_addf(&j, "%s\"t.%03d\": \"%s.safetensors\"", i ? ", " : "", i,
                      i < 100 && !(wrong == 1 && i == 50) ? "b" : "a");
    /* After the map: text its size estimate counts as entries. */
    ttsm__sb_adds(&j, "}, \"metadata\": {\"pad\": \"");
    for (size_t i = 0; i < pad; i++)
        ttsm__sb_adds(&j, "x");
    ttsm__sb_adds(&j, "\"}}");
    free(tu_write_file(dir, "m.safetensors.index.json", ttsm__sb_str(&j), j.len));
    ttsm__sb_free(&j);
    int a[200], b[100];
    for (int i = 0; i < 200; i++)
        a[i] = 299 - i;
    for (int i = 0; i < 100; i++)
        b[i] = wrong == 2 && i == 99 ? -1 : i;
    write_order_shard(dir, "a.safetensors", a, 200);
    write_order_shard(dir, "b.safetensors", b, 100);
    return dir;
}

static void large_maps_join_shards_in_any_order(void **state)
{
    (void)state;
    for (size_t pad = 0; pad <= 100000; pad += 100000) {
        char *dir = write_ordered(0, pad);
        char *path = tu_fmt("%s/m.safetensors.index.json", dir);
        ttsm_error err;
        ttsm_checkpoint *ck;
        tu_assert_ok(ttsm_checkpoint_open(path, NULL, &ck, &err), &err);
        assert_int_equal(ttsm_checkpoint_tensor_count(ck), 300);
        for (int i = 0; i < 300; i++) {
            char name[16];
            snprintf(name, sizeof name, "t.%03d", i);
            const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
            assert_non_null(t);
            const char *file = ttsm_checkpoint_file_path(ck, t->file_index);
            assert_non_null(strstr(file, i < 100 ? "/b.safetensors" : "/a.safetensors"));
            /* Its byte offset in its shard: its place in that shard's header. */
            const ttsm_tensor_info *first = ttsm_checkpoint_find(ck, i < 100 ? "t.000" : "t.299");
            assert_int_equal(t->file_offset,
                             first->file_offset + (uint64_t)(i < 100 ? i : 299 - i));
        }
        ttsm_checkpoint_close(ck);
        free(path);
        tu_rmtree(dir);
        free(dir);
    }
    /* Where the in-order guess would say yes to the wrong tensor. */
    for (int wrong = 1; wrong <= 2; wrong++) {
        char *dir = write_ordered(wrong, 0);
        char *path = tu_fmt("%s/m.safetensors.index.json", dir);
        ttsm_error err;
        ttsm_checkpoint *ck;
        if (wrong == 1)
            tu_assert_error(ttsm_checkpoint_open(path, NULL, &ck, &err), &err, TTSM_ERR_FORMAT,
                            "tensor in wrong shard",
                            "tensor 't.050' is in shard 'b.safetensors' but the weight_map places "
                            "it in 'a.safetensors'");
        else
            tu_assert_error(ttsm_checkpoint_open(path, NULL, &ck, &err), &err, TTSM_ERR_FORMAT,
                            "tensor not in weight_map",
                            "shard 'b.safetensors' holds tensor 't.zzz', which the weight_map "
                            "does not list");
        free(path);
        tu_rmtree(dir);
        free(dir);
    }
}

/* Past the first 64 entries the map is sized from the text and each next
 * key is looked at early: a repeat there is still found and named. */
static void a_repeat_deep_in_a_large_map_is_named(void **state)
{
    (void)state;
    for (int form = 0; form < 3; form++) {
        ttsm__sb j = {0};
        ttsm__sb_adds(&j, "{\"weight_map\":{");
        for (int i = 0; i < 200; i++) {
            int id = i == 150 ? 7 : i;
            /* form 1: the repeat is written with an escape (the early look
             * passes it by); form 2: the entry before it is. */
            char k[32];
            if ((form == 1 && i == 150) || (form == 2 && i == 149))
                snprintf(k, sizeof k, "t\\u002e%03d", id);
            else
                snprintf(k, sizeof k, "t.%03d", id);
            ttsm__sb_addf(&j, "%s\"%s\":\"s.safetensors\"", i ? ",\n " : "", k);
        }
        ttsm__sb_adds(&j, "}}");
        for (size_t window = 0; window <= 64; window += 64) {
            ttsm__st_index ix;
            ttsm_error err;
            tu_assert_error(ttsm__st_index_parse_window("mem", ttsm__sb_str(&j), j.len, window, &ix,
                                                        &err),
                            &err,
                            TTSM_ERR_FORMAT, "mem: duplicate key: ", "'\"t.007\"'");
        }
        ttsm__sb_free(&j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_bad_index_fails_by_its_rule),
        cmocka_unit_test(a_broken_shard_names_its_index_in_the_hint),
        cmocka_unit_test(a_deep_index_keeps_its_name_in_the_hint),
        cmocka_unit_test(every_index_fixture_is_checked),
        cmocka_unit_test(good_index_joins_its_shards),
        cmocka_unit_test(read_mode_works_across_shards),
        cmocka_unit_test(parse_lists_distinct_shards_in_order),
        cmocka_unit_test(in_memory_index_never_opens_files),
        cmocka_unit_test(relative_index_path_finds_shards_beside_it),
        cmocka_unit_test(shard_that_is_a_folder_is_an_io_error),
        cmocka_unit_test(index_over_the_cap_is_refused),
        cmocka_unit_test(third_party_index_without_shards_names_the_first),
        cmocka_unit_test(third_party_indexes_open_with_stand_in_shards),
        cmocka_unit_test(allocation_failures_are_reported_not_leaked),
        cmocka_unit_test(json_limits_and_text_are_jansson_s),
        cmocka_unit_test(large_maps_join_shards_in_any_order),
        cmocka_unit_test(a_repeat_deep_in_a_large_map_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
