/* test_torch_pickle.c - the restricted unpickler and the flattener: every
 * supported opcode, the global allow-list and its refusals, persistent ids,
 * tensor records, limits (stack, marks, memo, nesting, integer size), byte
 * offsets in messages, flattening into names and metadata JSON, allocation
 * failures, and a payload that would run under Python's pickle but not here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "formats/table.h"
#include "testutil.h"
#include "formats/torch_pickle.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct storages {
    char keys[16][32];
    uint64_t nbytes[16];
    uint32_t elem[16];
    size_t n;
    int calls;
} storages;

static ttsm_status record_storage(void *ctx, const char *key, size_t len, uint64_t nbytes,
                                  uint32_t elem_size, uint64_t off, uint32_t *slot,
                                  ttsm_error *err)
{
    (void)off;
    (void)err;
    storages *s = ctx;
    s->calls++;
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->keys[i]) == len && memcmp(s->keys[i], key, len) == 0) {
            *slot = (uint32_t)i;
            return TTSM_OK;
        }
    assert_true(s->n < 16 && len < 32);
    memcpy(s->keys[s->n], key, len);
    s->keys[s->n][len] = '\0';
    s->nbytes[s->n] = nbytes;
    s->elem[s->n] = elem_size;
    *slot = (uint32_t)s->n++;
    return TTSM_OK;
}

typedef struct fixture {
    ttsm__pickle_arena *arena;
    storages st;
    ttsm_error err;
    ttsm__pv *root;
    size_t consumed;
    int truncated;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->arena = ttsm__pickle_arena_new();
    *state = f;
    return f->arena ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ttsm__pickle_arena_free(f->arena);
    free(f);
    return 0;
}

static ttsm_status load(fixture *f, const void *p, size_t n)
{
    ttsm__pickle_src src = {p, n, "test.pt", "archive/data.pkl", 0, record_storage, &f->st};
    f->root = NULL;
    return ttsm__pickle_load(f->arena, &src, &f->root, &f->consumed, &f->truncated, &f->err);
}

#define LOAD(f, lit) load((f), (lit), sizeof(lit) - 1)

/* A _rebuild_tensor_v2 record of a 1-D float tensor over storage "0". */
#define STORAGE0(cls, n) "((X\x07\0\0\0storagectorch\n" cls "\nX\x01\0\0\0" "0X\x03\0\0\0cpuK" n "tQ"
#define HOOKS "ccollections\nOrderedDict\n)R"
#define REBUILD_V2(cls, n, size) \
    "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0(cls, n) "K\x00K" size "\x85K\x01\x85\x89" HOOKS "tR"

/* Flattens f->root into a fresh checkpoint with one zeroed memory storage
 * per slot. */
static ttsm_checkpoint *flatten(fixture *f, ttsm_status *st)
{
    ttsm_checkpoint *ck;
    assert_int_equal(ttsm__ckpt_new("test.pt", NULL, &ck, &f->err), TTSM_OK);
    uint32_t slots[16];
    for (size_t i = 0; i < f->st.n; i++) {
        void *mem = calloc(1, f->st.nbytes[i] ? f->st.nbytes[i] : 1);
        assert_int_equal(ttsm__ckpt_add_storage(ck, UINT32_MAX, 0, f->st.nbytes[i], mem,
                                                &slots[i], &f->err),
                         TTSM_OK);
    }
    *st = ttsm__torch_flatten(ck, f->root, f->arena, slots, f->st.n, "test.pt", &f->err);
    return ck;
}

static const char *meta_json(ttsm_checkpoint *ck, const char *key, const char *type)
{
    const ttsm_metadata_entry *m = ttsm_checkpoint_metadata_find(ck, key);
    if (!m)
        fail_msg("no metadata '%s'", key);
    assert_string_equal(m->type, type);
    return m->json;
}

/* ---- plain values ------------------------------------------------------- */

static void ints(void **state)
{
    fixture *f = *state;
    tu_assert_ok(LOAD(f, "\x80\x02(J\xfe\xff\xff\xffK\xffM\xff\xff\x8a\x00\x8a\x01\xff"
                         "\x8a\x02\xff\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"
                         "\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00"
                         "\x8b\x02\x00\x00\x00\x34\x12t."),
                 &f->err);
    ttsm__pv *r = f->root;
    assert_int_equal(r->kind, TTSM__PV_TUPLE);
    assert_int_equal(r->u.seq.n, 9);
    int64_t want[] = {-2, 255, 65535, 0, -1, 255, INT64_MIN, 0, 0x1234};
    for (int i = 0; i < 9; i++) {
        if (i == 7) {
            /* 2^64 - 1: does not fit, kept as a big integer */
            assert_int_equal(r->u.seq.items[i]->kind, TTSM__PV_BIGINT);
            continue;
        }
        assert_int_equal(r->u.seq.items[i]->kind, TTSM__PV_INT);
        assert_true(r->u.seq.items[i]->u.i == want[i]);
    }
    assert_int_equal(f->consumed, 52);
}

static void floats_strings_bytes(void **state)
{
    fixture *f = *state;
    tu_assert_ok(LOAD(f, "\x80\x04\x95\x2a\x00\x00\x00\x00\x00\x00\x00("
                         "G\x3f\xf8\x00\x00\x00\x00\x00\x00"
                         "\x8c\x02hiX\x02\x00\x00\x00\xc3\xa9"
                         "\x8d\x01\x00\x00\x00\x00\x00\x00\x00z"
                         "C\x02\x00\x01" "B\x01\x00\x00\x00\xff"
                         "\x8e\x00\x00\x00\x00\x00\x00\x00\x00U\x01" "at."),
                 &f->err);
    ttsm__pv *r = f->root;
    assert_int_equal(r->u.seq.n, 8);
    assert_true(r->u.seq.items[0]->u.f == 1.5);
    assert_int_equal(r->u.seq.items[1]->kind, TTSM__PV_STR);
    assert_memory_equal(r->u.seq.items[2]->u.s.p, "\xc3\xa9", 2);
    assert_int_equal(r->u.seq.items[3]->u.s.n, 1);
    assert_int_equal(r->u.seq.items[4]->kind, TTSM__PV_BYTES);
    assert_int_equal(r->u.seq.items[5]->u.s.n, 1);
    assert_int_equal(r->u.seq.items[6]->u.s.n, 0);
    assert_int_equal(r->u.seq.items[7]->kind, TTSM__PV_STR);
}

static void bad_utf8(void **state)
{
    fixture *f = *state;
    tu_assert_error(LOAD(f, "\x80\x02X\x02\x00\x00\x00\xc0\xaf."), &f->err, TTSM_ERR_FORMAT,
                    "not valid UTF-8", "offset 2");
    /* Python writes lone surrogates with surrogatepass: accepted. */
    tu_assert_ok(LOAD(f, "\x80\x02X\x03\x00\x00\x00\xed\xa0\x80."), &f->err);
}

static void containers_and_memo(void **state)
{
    fixture *f = *state;
    /* {"a": [1, 2, (3,)], "b": memo("a" list)} with MEMOIZE and LONG_BINPUT */
    tu_assert_ok(LOAD(f, "\x80\x04}\x94(\x8c\x01" "a]r\x05\x00\x00\x00(K\x01K\x02" "e"
                         "K\x03\x85" "a\x8c\x01" "bj\x05\x00\x00\x00u."),
                 &f->err);
    ttsm__pv *r = f->root;
    assert_int_equal(r->kind, TTSM__PV_DICT);
    assert_int_equal(r->u.seq.n, 4);
    ttsm__pv *l = r->u.seq.items[1];
    assert_int_equal(l->kind, TTSM__PV_LIST);
    assert_int_equal(l->u.seq.n, 3);
    assert_ptr_equal(r->u.seq.items[3], l);
    /* POP and POP_MARK, TUPLE2/3, EMPTY_TUPLE */
    tu_assert_ok(LOAD(f, "\x80\x02K\x01K\x02" "0(K\x09K\x08" "1K\x03K\x04K\x05\x87)\x86."), &f->err);
    assert_int_equal(f->root->u.seq.n, 2);
    assert_int_equal(f->root->u.seq.items[0]->u.seq.n, 3);
}

static void trailing_bytes_and_truncation(void **state)
{
    fixture *f = *state;
    tu_assert_ok(LOAD(f, "\x80\x02N.garbage"), &f->err);
    assert_int_equal(f->consumed, 4);
    tu_assert_error(LOAD(f, "\x80\x02}(X\x05\x00\x00\x00" "ab"), &f->err, TTSM_ERR_FORMAT,
                    "truncated pickle", "offset 4");
    assert_int_equal(f->truncated, 1);
    tu_assert_error(LOAD(f, "\x80\x02N"), &f->err, TTSM_ERR_FORMAT, "truncated pickle");
    assert_int_equal(f->truncated, 1);
    tu_assert_error(LOAD(f, "\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N."), &f->err,
                    TTSM_ERR_FORMAT, "frame");
    tu_assert_error(LOAD(f, "\x80\x02K\x01K\x01\xff."), &f->err, TTSM_ERR_FORMAT,
                    "byte 0xff is not a pickle opcode", "offset 6");
    assert_int_equal(f->truncated, 0);
}

static void protocols(void **state)
{
    fixture *f = *state;
    tu_assert_error(LOAD(f, "\x80\x06N."), &f->err, TTSM_ERR_FORMAT, "protocol 6");
    tu_assert_error(LOAD(f, "\x80\x01N."), &f->err, TTSM_ERR_FORMAT, "protocol 1");
    tu_assert_error(LOAD(f, "I1\n."), &f->err, TTSM_ERR_FORMAT, "INT (0x49) is not used");
    tu_assert_error(LOAD(f, "\x80\x05\x97."), &f->err, TTSM_ERR_FORMAT, "NEXT_BUFFER");
    tu_assert_error(LOAD(f, "\x80\x04\x8f."), &f->err, TTSM_ERR_FORMAT, "EMPTY_SET");
}

/* ---- globals ------------------------------------------------------------ */

static void refusals(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *pkl;
        size_t n;
        const char *needle;
    } cases[] = {
#define C(lit, needle) {lit, sizeof(lit) - 1, needle}
        C("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00lsR.", "refusing os.system"),
        C("\x80\x02" "cbuiltins\neval\n.", "refusing builtins.eval"),
        C("\x80\x02" "cbuiltins\nexec\n.", "refusing builtins.exec"),
        C("\x80\x02" "c__builtin__\n__import__\n.", "refusing __builtin__.__import__"),
        C("\x80\x02" "cbuiltins\n__import__\n.", "refusing builtins.__import__"),
        C("\x80\x02" "csubprocess\nPopen\n.", "refusing subprocess.Popen"),
        C("\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93.", "refusing subprocess.Popen"),
        C("\x80\x04\x8c\x02os\x8c\x06system\x93.", "refusing os.system"),
        C("\x80\x02" "ctorch\nload\n.", "refusing torch.load"),
        C("\x80\x02" "ctorch._utils\n_rebuild_qtensor\n.", "refusing torch._utils._rebuild_qtensor"),
        C("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\n.", "refusing numpy.core.multiarray"),
        C("\x80\x02" "ccollections\nOrderedDictX\n.", "refusing collections.OrderedDictX"),
        C("\x80\x02" "ccollections\nOrdered\x01ict\n.", "refusing collections.Ordered?ict"),
        C("\x80\x02" "ctorch\nFloatStorage\n)R.", "refusing torch.FloatStorage"),
        C("\x80\x02" "ctorch\nTensor\n)R.", "refusing torch.Tensor"),
        C("\x80\x02" "(X\x02\x00\x00\x00lsios\nsystem\n.", "refusing os.system"),
        C("\x80\x02" "(ctorch\nSize\n)o.", "refusing torch.Size"),
        C("\x80\x02" "ctorch\nSize\n)\x81.", "refusing torch.Size"),
        C("\x80\x02\x83\x01\x02.", "refusing extension code 513"),
        C("\x80\x02\x84\x01\x00\x00\x00.", "refusing extension code 1"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ttsm_status st = load(f, cases[i].pkl, cases[i].n);
        tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, cases[i].needle);
        if (strncmp(cases[i].needle, "refusing", 8) == 0 && !strstr(cases[i].needle, "extension"))
            assert_non_null(strstr(f->err.message, ": checkpoints are read as data"));
    }
    /* The hint names what to do. */
    load(f, "\x80\x02" "c__torch__.Model\nforward\n.", 27);
    assert_non_null(strstr(f->err.hint, "TorchScript"));
    /* Over-long module names are cut, not copied whole. */
    char big[600] = "\x80\x02" "c";
    memset(big + 3, 'm', 300);
    memcpy(big + 303, "\nx\n.", 4);
    tu_assert_error(load(f, big, 307), &f->err, TTSM_ERR_FORMAT, "longer than 256");
    tu_assert_error(LOAD(f, "\x80\x04K\x01\x8c\x01x\x93."), &f->err, TTSM_ERR_FORMAT,
                    "STACK_GLOBAL needs two str");
}

static void allowed_globals(void **state)
{
    fixture *f = *state;
    const char *ok[] = {"collections\nOrderedDict", "torch._utils\n_rebuild_tensor_v2",
                        "torch._utils\n_rebuild_tensor_v3", "torch._utils\n_rebuild_parameter",
                        "torch._utils\n_rebuild_parameter_with_state",
                        "torch._tensor\n_rebuild_from_type_v2", "torch\nSize", "torch\nfloat32",
                        "torch\nbfloat16", "torch\nFloatStorage", "torch\nBFloat16Storage",
                        "torch\nUntypedStorage", "torch.storage\nUntypedStorage", "_codecs\nencode",
                        "torch.nn.parameter\nParameter", "torch\nfloat8_e4m3fn"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "\x80\x02" "c%s\n.", ok[i]);
        tu_assert_ok(load(f, buf, (size_t)n), &f->err);
        assert_int_equal(f->root->kind, TTSM__PV_GLOBAL);
    }
    ttsm_dtype dt;
    char name[96];
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch\nbfloat16\n."), &f->err);
    assert_true(ttsm__pickle_global_dtype(f->root->u.global, &dt));
    assert_int_equal(dt, TTSM_DTYPE_BF16);
    assert_string_equal(ttsm__pickle_global_name(f->root->u.global, name, sizeof name),
                        "torch.bfloat16");
}

/* ---- tensors ------------------------------------------------------------ */

static void tensor_v2(void **state)
{
    fixture *f = *state;
    tu_assert_ok(LOAD(f, "\x80\x02}X\x01\x00\x00\x00w" REBUILD_V2("HalfStorage", "\x06", "\x06")
                         "s."),
                 &f->err);
    assert_int_equal(f->st.n, 1);
    assert_string_equal(f->st.keys[0], "0");
    assert_int_equal(f->st.nbytes[0], 12);
    assert_int_equal(f->st.elem[0], 2);
    ttsm__pv *t = f->root->u.seq.items[1];
    assert_int_equal(t->kind, TTSM__PV_TENSOR);
    assert_int_equal(t->u.tensor.dtype, TTSM_DTYPE_F16);
    assert_int_equal(t->u.tensor.rank, 1);
    assert_int_equal(t->u.tensor.shape[0], 6);
}

static void tensor_offsets_and_views(void **state)
{
    fixture *f = *state;
    /* storage of 8 doubles; a 2x2 view at element offset 2 with strides (1, 4) */
    tu_assert_ok(LOAD(f, "\x80\x02}X\x01\x00\x00\x00v"
                         "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0("DoubleStorage", "\x08")
                         "K\x02K\x02K\x02\x86K\x01K\x04\x86\x88" HOOKS "tRs."),
                 &f->err);
    ttsm_status st;
    ttsm_checkpoint *ck = flatten(f, &st);
    tu_assert_ok(st, &f->err);
    const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, "v");
    assert_non_null(t);
    assert_int_equal(t->storage_offset, 16);
    assert_int_equal(t->strides[0], 1);
    assert_int_equal(t->strides[1], 4);
    assert_false(t->contiguous);
    assert_int_equal(t->nbytes, (1 + 1 + 4) * 8);
    ttsm_checkpoint_close(ck);
}

static void tensor_v3_and_untyped(void **state)
{
    fixture *f = *state;
    /* UntypedStorage of 8 bytes viewed as 4 x uint16 through _rebuild_tensor_v3 */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v3\n" STORAGE0("UntypedStorage", "\x08")
                         "K\x00K\x04\x85K\x01\x85\x89" HOOKS "ctorch\nuint16\ntR."),
                 &f->err);
    assert_int_equal(f->st.nbytes[0], 8);
    assert_int_equal(f->st.elem[0], 1);
    assert_int_equal(f->root->u.tensor.dtype, TTSM_DTYPE_U16);
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v3\n" STORAGE0("UntypedStorage", "\x08")
                            "K\x00K\x04\x85K\x01\x85\x89" HOOKS "ctorch\nfloat8_e4m3fnuz\ntR."),
                    &f->err, TTSM_ERR_FORMAT, "no element type for torch.float8_e4m3fnuz");
}

static void tensor_record_errors(void **state)
{
    fixture *f = *state;
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0("FloatStorage", "\x04")
                            "K\x00K\x04\x85K\x01K\x01\x86\x89" HOOKS "tR."),
                    &f->err, TTSM_ERR_FORMAT, "size has 1 dimensions, stride 2");
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0("FloatStorage", "\x04")
                            "K\x00J\xff\xff\xff\xff\x85K\x01\x85\x89" HOOKS "tR."),
                    &f->err, TTSM_ERR_FORMAT, "size must be a non-negative int");
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0("FloatStorage", "\x04")
                            "K\x00K\x04\x85K\x01\x85K\x00" HOOKS "tR."),
                    &f->err, TTSM_ERR_FORMAT, "requires_grad must be a bool");
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\nK\x01K\x00\x86R."),
                    &f->err, TTSM_ERR_FORMAT, "takes 6 or 7 arguments, got 2");
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00K\x00K\x00"
                            "K\x00K\x00tR."),
                    &f->err, TTSM_ERR_FORMAT, "first argument must be a storage");
    /* rank 33 */
    char buf[512];
    size_t n = 0;
    static const char head[] = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n" STORAGE0("FloatStorage", "\x04") "K\x00(";
    size_t hl = sizeof head - 1;
    memcpy(buf, head, hl);
    n = hl;
    for (int i = 0; i < 33; i++)
        buf[n++] = 'K', buf[n++] = 1;
    static const char tail[] = "tK\x01\x85\x89" HOOKS "tR.";
    memcpy(buf + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    tu_assert_error(load(f, buf, n), &f->err, TTSM_ERR_FORMAT, "33 dimensions");
}

static void persistent_ids(void **state)
{
    fixture *f = *state;
    tu_assert_error(LOAD(f, "\x80\x02(X\x06\x00\x00\x00modulectorch\nFloatStorage\n"
                            "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."),
                    &f->err, TTSM_ERR_FORMAT, "only 'storage' is read");
    tu_assert_error(LOAD(f, "\x80\x02(X\x07\x00\x00\x00storagectorch\nfloat32\n"
                            "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."),
                    &f->err, TTSM_ERR_FORMAT, "not a torch storage class");
    tu_assert_error(LOAD(f, "\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                            "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01K\x00tQ."),
                    &f->err, TTSM_ERR_FORMAT, "storage views");
    tu_assert_error(LOAD(f, "\x80\x02K\x01Q."), &f->err, TTSM_ERR_FORMAT, "5-tuple");
    /* Legacy files pass None as the view: accepted. */
    tu_assert_ok(LOAD(f, "\x80\x02(X\x07\x00\x00\x00storagectorch\nLongStorage\n"
                         "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x03NtQ."),
                 &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_STORAGE);
    assert_int_equal(f->root->u.storage.nbytes, 24);
    /* numel * element size must not overflow */
    tu_assert_error(LOAD(f, "\x80\x02(X\x07\x00\x00\x00storagectorch\nLongStorage\n"
                            "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpu"
                            "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7ftQ."),
                    &f->err, TTSM_ERR_FORMAT, "overflows");
    /* With no storage callback, persistent ids are refused. */
    ttsm__pickle_src src = {(const uint8_t *)"\x80\x02(X\x07\x00\x00\x00storagectorch\nLongStorage\n"
                                             "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x03tQ.",
                            69, "t", "s", 0, NULL, NULL};
    tu_assert_error(ttsm__pickle_load(f->arena, &src, &f->root, NULL, NULL, &f->err), &f->err,
                    TTSM_ERR_FORMAT, "may not reference storages");
}

static void parameters_and_wrappers(void **state)
{
    fixture *f = *state;
    /* _rebuild_parameter(tensor, True, OrderedDict()) */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_parameter\n(" REBUILD_V2("FloatStorage", "\x02", "\x02")
                         "\x88" HOOKS "tR."),
                 &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_TENSOR);
    assert_true(f->root->flags & TTSM__PV_PARAM);
    /* _rebuild_parameter_with_state(tensor, False, hooks, {}) */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_parameter_with_state\n(" REBUILD_V2("FloatStorage", "\x02", "\x02")
                         "\x89" HOOKS "}tR."),
                 &f->err);
    /* Parameter by NEWOBJ */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch.nn.parameter\nParameter\n" REBUILD_V2("FloatStorage", "\x02", "\x02")
                         "\x88\x86\x81."),
                 &f->err);
    assert_true(f->root->flags & TTSM__PV_PARAM);
    /* _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, args, {}) */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\n"
                         "ctorch\nTensor\n" STORAGE0("FloatStorage", "\x02")
                         "K\x00K\x02\x85K\x01\x85\x89" HOOKS "t}tR."),
                 &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_TENSOR);
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._tensor\n_rebuild_from_type_v2\n(ccollections\nOrderedDict\n"
                            "ctorch\nTensor\n)}tR."),
                    &f->err, TTSM_ERR_FORMAT, "not a tensor rebuild function");
    tu_assert_error(LOAD(f, "\x80\x02" "ctorch._utils\n_rebuild_parameter\n(K\x01\x88" HOOKS "tR."),
                    &f->err, TTSM_ERR_FORMAT, "wraps int, not a tensor");
    /* torch.Size((2, 3)) is the tuple */
    tu_assert_ok(LOAD(f, "\x80\x02" "ctorch\nSize\nK\x02K\x03\x86\x85R."), &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_TUPLE);
    /* bytes through _codecs.encode at protocol 2 */
    tu_assert_ok(LOAD(f, "\x80\x02" "c_codecs\nencode\nX\x04\x00\x00\x00\x00\xc3\xbe\x41"
                         "X\x06\x00\x00\x00latin1\x86R."),
                 &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_BYTES);
    assert_memory_equal(f->root->u.s.p, "\x00\xfe\x41", 3);
    tu_assert_error(LOAD(f, "\x80\x02" "c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80"
                            "X\x06\x00\x00\x00latin1\x86R."),
                    &f->err, TTSM_ERR_FORMAT, "latin1");
    tu_assert_error(LOAD(f, "\x80\x02" "c_codecs\nencode\nX\x01\x00\x00\x00x"
                            "X\x05\x00\x00\x00utf-8\x86R."),
                    &f->err, TTSM_ERR_FORMAT, "encoding other than latin1");
}

static void build_rules(void **state)
{
    fixture *f = *state;
    /* An OrderedDict with _metadata state (every nn.Module.state_dict()) */
    tu_assert_ok(LOAD(f, "\x80\x02" HOOKS "}X\x09\x00\x00\x00_metadata}sb."), &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_DICT);
    assert_int_equal(f->root->u.seq.n, 0);
    tu_assert_error(LOAD(f, "\x80\x02]}b."), &f->err, TTSM_ERR_FORMAT, "refusing BUILD",
                    "BUILD on a list");
    tu_assert_error(LOAD(f, "\x80\x02}]b."), &f->err, TTSM_ERR_FORMAT, "refusing BUILD");
    tu_assert_error(LOAD(f, "\x80\x02" REBUILD_V2("FloatStorage", "\x02", "\x02") "}b."), &f->err,
                    TTSM_ERR_FORMAT, "BUILD on a tensor");
}

/* ---- abuse and limits --------------------------------------------------- */

static void stack_and_memo_abuse(void **state)
{
    fixture *f = *state;
    tu_assert_error(LOAD(f, "\x80\x02."), &f->err, TTSM_ERR_FORMAT, "stack underflow", "STOP");
    tu_assert_error(LOAD(f, "\x80\x02s."), &f->err, TTSM_ERR_FORMAT, "stack underflow");
    tu_assert_error(LOAD(f, "\x80\x02N(a."), &f->err, TTSM_ERR_FORMAT, "stack underflow");
    tu_assert_error(LOAD(f, "\x80\x02t."), &f->err, TTSM_ERR_FORMAT, "no MARK");
    tu_assert_error(LOAD(f, "\x80\x02K\x01(\x87."), &f->err, TTSM_ERR_FORMAT, "needs 3 values");
    tu_assert_error(LOAD(f, "\x80\x02(q\x00."), &f->err, TTSM_ERR_FORMAT, "stack underflow");
    tu_assert_error(LOAD(f, "\x80\x02Nh\x01."), &f->err, TTSM_ERR_FORMAT,
                    "memo index 1 was never stored");
    tu_assert_error(LOAD(f, "\x80\x02j\xff\xff\xff\xff."), &f->err, TTSM_ERR_FORMAT,
                    "memo index 4294967295");
    /* A huge memo index is just a key: no table of that size is made. */
    tu_assert_ok(LOAD(f, "\x80\x02Nr\xfe\xff\xff\xff" "0j\xfe\xff\xff\xff."), &f->err);
    assert_int_equal(f->root->kind, TTSM__PV_NONE);
    tu_assert_error(LOAD(f, "\x80\x02K\x01K\x02" "a."), &f->err, TTSM_ERR_FORMAT,
                    "APPEND to a int");
    tu_assert_error(LOAD(f, "\x80\x02](K\x01K\x02K\x03u."), &f->err, TTSM_ERR_FORMAT,
                    "SETITEMS on a list");
    tu_assert_error(LOAD(f, "\x80\x02}(K\x01K\x02K\x03u."), &f->err, TTSM_ERR_FORMAT,
                    "odd number");
    tu_assert_error(LOAD(f, "\x80\x02\x8b\xff\xff\xff\xff."), &f->err, TTSM_ERR_FORMAT,
                    "negative LONG4");
}

static void limits(void **state)
{
    fixture *f = *state;
    size_t n = TTSM__PICKLE_MAX_STACK + 16;
    char *p = malloc(n + 4);
    p[0] = (char)0x80;
    p[1] = 2;
    memset(p + 2, 'N', n);
    p[n + 2] = '.';
    tu_assert_error(load(f, p, n + 3), &f->err, TTSM_ERR_FORMAT, "pickle stack too deep");
    memset(p + 2, '(', TTSM__PICKLE_MAX_MARKS + 1);
    tu_assert_error(load(f, p, TTSM__PICKLE_MAX_MARKS + 4), &f->err, TTSM_ERR_FORMAT,
                    "more than 1024 open MARKs");
    free(p);
    /* LONG4 of 1025 bytes */
    char big[1100] = "\x80\x02\x8b\x01\x04\x00\x00";
    tu_assert_error(load(f, big, 1040), &f->err, TTSM_ERR_FORMAT, "1025 bytes, the limit is 1024");
    /* memo entries */
    size_t entries = TTSM__PICKLE_MAX_MEMO + 1;
    size_t len = 3 + entries * 5 + 1;
    unsigned char *m = malloc(len);
    m[0] = 0x80;
    m[1] = 2;
    m[2] = 'N';
    for (size_t i = 0; i < entries; i++) {
        unsigned char *q = m + 3 + i * 5;
        q[0] = 'r';
        q[1] = (unsigned char)i;
        q[2] = (unsigned char)(i >> 8);
        q[3] = (unsigned char)(i >> 16);
        q[4] = (unsigned char)(i >> 24);
    }
    m[len - 1] = '.';
    tu_assert_error(load(f, m, len), &f->err, TTSM_ERR_FORMAT, "memo entries");
    free(m);
}

/* ---- flattening --------------------------------------------------------- */

static void flatten_names_and_metadata(void **state)
{
    fixture *f = *state;
    /* {"model": {"enc": {"w": T}}, "layers": [T, {"b": T}], 7: T, "cfg": [1, 2.5, "x", None],
     *  "sr": "40k", "f0": 1, "pi": 0.1, "neg0": -0.0, "nan": nan, "big": 2**70, "raw": b"\x01",
     *  "dt": torch.float16, "flag": True} */
    tu_assert_ok(LOAD(f, "\x80\x02}q\x00(X\x05\x00\x00\x00model}X\x03\x00\x00\x00" "enc}X\x01\x00\x00\x00w"
                         REBUILD_V2("FloatStorage", "\x06", "\x02") "q\x01ss"
                         "X\x06\x00\x00\x00layers](h\x01}X\x01\x00\x00\x00" "bh\x01se"
                         "K\x07h\x01"
                         "X\x03\x00\x00\x00" "cfg](K\x01G\x40\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xNe"
                         "X\x02\x00\x00\x00srX\x03\x00\x00\x00" "40k"
                         "X\x02\x00\x00\x00" "f0K\x01"
                         "X\x02\x00\x00\x00piG\x3f\xb9\x99\x99\x99\x99\x99\x9a"
                         "X\x04\x00\x00\x00neg0G\x80\x00\x00\x00\x00\x00\x00\x00"
                         "X\x03\x00\x00\x00nanG\x7f\xf8\x00\x00\x00\x00\x00\x00"
                         "X\x03\x00\x00\x00" "big\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40"
                         "X\x03\x00\x00\x00rawC\x01\x01"
                         "X\x02\x00\x00\x00" "dtctorch\nfloat16\n"
                         "X\x04\x00\x00\x00" "flag\x88"
                         "X\x04\x00\x00\x00textX\x04\x00\x00\x00\"\\\n\x01"
                         "u."),
                 &f->err);
    ttsm_status st;
    ttsm_checkpoint *ck = flatten(f, &st);
    tu_assert_ok(st, &f->err);
    const char *names[] = {"model.enc.w", "layers.0", "layers.1.b", "7"};
    assert_int_equal(ttsm_checkpoint_tensor_count(ck), 4);
    for (int i = 0; i < 4; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, (size_t)i);
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->storage_index, 0); /* one storage, shared */
    }
    assert_string_equal(meta_json(ck, "cfg", "list"), "[1,2.5,\"x\",null]");
    assert_string_equal(meta_json(ck, "sr", "str"), "\"40k\"");
    assert_string_equal(meta_json(ck, "f0", "int"), "1");
    assert_string_equal(meta_json(ck, "pi", "float"), "0.1");
    assert_string_equal(meta_json(ck, "neg0", "float"), "-0.0");
    assert_string_equal(meta_json(ck, "nan", "float"), "\"NaN\"");
    assert_string_equal(meta_json(ck, "big", "int"), "\"1180591620717411303424\"");
    assert_string_equal(meta_json(ck, "raw", "bytes"), "\"01\"");
    assert_string_equal(meta_json(ck, "dt", "dtype"), "\"torch.float16\"");
    assert_string_equal(meta_json(ck, "flag", "bool"), "true");
    assert_string_equal(meta_json(ck, "text", "str"), "\"\\\"\\\\\\n\\u0001\"");
    assert_int_equal(ttsm_checkpoint_metadata_count(ck), 11);
    ttsm_checkpoint_close(ck);
}

static void flatten_roots_and_keys(void **state)
{
    fixture *f = *state;
    ttsm_status st;
    ttsm_checkpoint *ck;
    /* a bare tensor */
    tu_assert_ok(LOAD(f, "\x80\x02" REBUILD_V2("FloatStorage", "\x02", "\x02") "."), &f->err);
    ck = flatten(f, &st);
    tu_assert_ok(st, &f->err);
    assert_non_null(ttsm_checkpoint_find(ck, "tensor"));
    ttsm_checkpoint_close(ck);
    /* a bare scalar */
    tu_assert_ok(LOAD(f, "\x80\x02K\x05."), &f->err);
    ck = flatten(f, &st);
    tu_assert_ok(st, &f->err);
    assert_string_equal(meta_json(ck, "value", "int"), "5");
    ttsm_checkpoint_close(ck);
    /* keys: negative bigint, None, True, float */
    tu_assert_ok(LOAD(f, "\x80\x02}(\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xfeK\x01NK\x02\x88K\x03"
                         "G\x3f\xf8\x00\x00\x00\x00\x00\x00K\x04u."),
                 &f->err);
    ck = flatten(f, &st);
    tu_assert_ok(st, &f->err);
    meta_json(ck, "-18446744073709551617", "int");
    meta_json(ck, "None", "int");
    meta_json(ck, "True", "int");
    meta_json(ck, "1.5", "int");
    ttsm_checkpoint_close(ck);
    /* a tuple key */
    tu_assert_ok(LOAD(f, "\x80\x02}K\x01\x85K\x01s."), &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "key that is not a str");
    ttsm_checkpoint_close(ck);
    /* a NUL inside a key */
    tu_assert_ok(LOAD(f, "\x80\x02}X\x03\x00\x00\x00" "a\0bK\x01s."), &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "NUL");
    ttsm_checkpoint_close(ck);
    /* a NUL inside a key of a metadata dict */
    tu_assert_ok(LOAD(f, "\x80\x02}X\x01\x00\x00\x00m}X\x02\x00\x00\x00" "a\0K\x01ss."), &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "inside metadata 'm' holds a NUL");
    ttsm_checkpoint_close(ck);
    /* the same name twice: {"a.b": T, "a": {"b": T}} */
    tu_assert_ok(LOAD(f, "\x80\x02}(X\x03\x00\x00\x00" "a.b" REBUILD_V2("FloatStorage", "\x02", "\x02")
                         "q\x01X\x01\x00\x00\x00" "a}X\x01\x00\x00\x00" "bh\x01su."),
                 &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "duplicate tensor name", "a.b");
    ttsm_checkpoint_close(ck);
    /* a tensor outside its storage: 5 floats over 2 */
    tu_assert_ok(LOAD(f, "\x80\x02" REBUILD_V2("FloatStorage", "\x02", "\x05") "."), &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "tensor outside its storage");
    ttsm_checkpoint_close(ck);
}

static void flatten_recursion(void **state)
{
    fixture *f = *state;
    ttsm_status st;
    ttsm_checkpoint *ck;
    tu_assert_ok(LOAD(f, "\x80\x02}X\x01\x00\x00\x00x]q\x00h\x00" "as."), &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "contains itself");
    ttsm_checkpoint_close(ck);
    /* a dict that holds itself next to a tensor */
    tu_assert_ok(LOAD(f, "\x80\x02}X\x01\x00\x00\x00x}q\x00(X\x01\x00\x00\x00sh\x00X\x01\x00\x00\x00t"
                         REBUILD_V2("FloatStorage", "\x02", "\x02") "us."),
                 &f->err);
    ck = flatten(f, &st);
    tu_assert_error(st, &f->err, TTSM_ERR_FORMAT, "contains itself");
    ttsm_checkpoint_close(ck);
}

/* ---- allocation failures ----------------------------------------------- */

static void alloc_failures(void **state)
{
    (void)state;
    static const char pkl[] = "\x80\x02}q\x00(X\x01\x00\x00\x00w" REBUILD_V2("FloatStorage", "\x02", "\x02")
                              "X\x03\x00\x00\x00" "cfg](K\x01G\x40\x04\x00\x00\x00\x00\x00\x00" "e"
                              "X\x01\x00\x00\x00" "b\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40u.";
    int succeeded = 0;
    for (long n = 1; n < 400 && !succeeded; n++) {
        storages sto = {0};
        ttsm_error err;
        ttsm__alloc_fail_after(n);
        ttsm__pickle_arena *a = ttsm__pickle_arena_new();
        ttsm_checkpoint *ck = NULL;
        ttsm_status st = TTSM_ERR_OUT_OF_MEMORY;
        if (a) {
            ttsm__pickle_src src = {(const uint8_t *)pkl, sizeof pkl - 1, "t", "s", 0,
                                    record_storage, &sto};
            ttsm__pv *root;
            st = ttsm__pickle_load(a, &src, &root, NULL, NULL, &err);
            if (st == TTSM_OK)
                st = ttsm__ckpt_new("t", NULL, &ck, &err);
            uint32_t slot = 0;
            if (st == TTSM_OK)
                st = ttsm__ckpt_add_storage(ck, UINT32_MAX, 0, 8, NULL, &slot, &err);
            if (st == TTSM_OK)
                st = ttsm__torch_flatten(ck, root, a, &slot, 1, "t", &err);
        }
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK)
            succeeded = 1;
        else if (st != TTSM_ERR_OUT_OF_MEMORY)
            fail_msg("allocation %ld failing gave %s: %s", n, ttsm_status_name(st), err.message);
        ttsm_checkpoint_close(ck);
        ttsm__pickle_arena_free(a);
    }
    assert_true(succeeded);
}

/* ---- nothing runs -------------------------------------------------------- */

static void payload_does_not_run(void **state)
{
    fixture *f = *state;
    char marker[64], pkl[256];
    snprintf(marker, sizeof marker, "/tmp/ttsm-pwned-%d-%ld", (int)getpid(), random());
    unlink(marker);
    static const char *const globals[] = {"os\nsystem", "posix\nsystem", "subprocess\ngetoutput",
                                          "builtins\nexec"};
    for (size_t i = 0; i < 4; i++) {
        char cmd[128];
        int cl = snprintf(cmd, sizeof cmd, i == 3 ? "import os; os.system('touch %s')"
                                                  : "touch %s", marker);
        /* the length has NUL bytes: the tail is built by hand */
        int n = snprintf(pkl, sizeof pkl, "\x80\x02" "c%s\nX", globals[i]);
        pkl[n++] = (char)cl;
        pkl[n++] = 0;
        pkl[n++] = 0;
        pkl[n++] = 0;
        memcpy(pkl + n, cmd, (size_t)cl);
        n += cl;
        memcpy(pkl + n, "\x85R.", 3);
        n += 3;
        tu_assert_error(load(f, pkl, (size_t)n), &f->err, TTSM_ERR_FORMAT,
                        ": checkpoints are read as data");
        assert_int_equal(access(marker, F_OK), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ints, setup, teardown),
        cmocka_unit_test_setup_teardown(floats_strings_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(containers_and_memo, setup, teardown),
        cmocka_unit_test_setup_teardown(trailing_bytes_and_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(protocols, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(allowed_globals, setup, teardown),
        cmocka_unit_test_setup_teardown(tensor_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(tensor_offsets_and_views, setup, teardown),
        cmocka_unit_test_setup_teardown(tensor_v3_and_untyped, setup, teardown),
        cmocka_unit_test_setup_teardown(tensor_record_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(persistent_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(parameters_and_wrappers, setup, teardown),
        cmocka_unit_test_setup_teardown(build_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_and_memo_abuse, setup, teardown),
        cmocka_unit_test_setup_teardown(limits, setup, teardown),
        cmocka_unit_test_setup_teardown(flatten_names_and_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(flatten_roots_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(flatten_recursion, setup, teardown),
        cmocka_unit_test(alloc_failures),
        cmocka_unit_test_setup_teardown(payload_does_not_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
