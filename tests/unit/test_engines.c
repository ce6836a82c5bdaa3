/* test_engines.c - the manifest engines on the generated test store
 * (tests/fixtures/gen_store.py) through the public API: borrowed and shared
 * files are opened once per manager, fallbacks record their attempts and
 * land on cached entries, sharded checkpoints load from the hub layout,
 * an engine added by the manager's engines_dir option loads with no code,
 * and every allocation failure of a manifest load is a clean error. */
#include <pthread.h>
#include <unistd.h>

#include "base/alloc.h"
#include "testutil.h"

static char *dir, *store, *comfy, *hub, *nowhere;

static int setup(void **state)
{
    (void)state;
    dir = strdup(tu_mkdtemp());
    store = tu_path(dir, "store");
    comfy = tu_path(store, "comfy");
    hub = tu_path(store, "hub");
    nowhere = tu_path(dir, "nowhere");
    return tu_system("/usr/bin/python3 '%s/tests/fixtures/gen_store.py' '%s'", TTSM_SOURCE_DIR,
                     store) == 0
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(dir);
    free(dir);
    free(store);
    free(comfy);
    free(hub);
    free(nowhere);
    return 0;
}

/* A manager reading only `root` (ComfyUI layout) or only `cache` (hub). */
static ttsm_manager *mk(const char *root, const char *cache, const char *engines_dir)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = root ? root : nowhere;
    o.hf_cache = cache ? cache : nowhere;
    o.engines_dir = engines_dir;
    ttsm_manager *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &m, &err), &err);
    return m;
}

static ttsm_load_config cfg(const char *engine, const char *model, const char *language)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = engine;
    c.model_name = model;
    c.language = language;
    c.device = "cpu";
    return c;
}

static ttsm_model *load_ok(ttsm_manager *mgr, ttsm_load_config c)
{
    ttsm_model *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    return m;
}

static uint64_t opens(ttsm_manager *mgr)
{
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    return s.checkpoint_opens;
}

static size_t comp(const ttsm_model *m, const char *name)
{
    for (size_t i = 0; i < ttsm_model_component_count(m); i++)
        if (strcmp(ttsm_model_component_name(m, i), name) == 0)
            return i;
    fail_msg("%s has no component %s", ttsm_model_name(m), name);
    return 0;
}

static void assert_shared(const ttsm_model *a, const ttsm_model *b, const char *name,
                          const char *tensor)
{
    size_t ca = comp(a, name), cb = comp(b, name);
    assert_string_equal(ttsm_model_component_path(a, ca), ttsm_model_component_path(b, cb));
    const ttsm_model_tensor *ta = ttsm_model_find_tensor(a, ca, tensor);
    const ttsm_model_tensor *tb = ttsm_model_find_tensor(b, cb, tensor);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_ptr_equal(ta->data, tb->data); /* one host copy on cpu */
}

/* French, Japanese and Korean borrow English's s3gen, ve (and French its
 * tokenizer): each borrowed file is opened once, whichever model comes first. */
static void test_borrowed_files_open_once(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk(comfy, NULL, NULL);
    ttsm_model *en = load_ok(mgr, cfg("chatterbox", NULL, "en"));
    assert_string_equal(ttsm_model_name(en), "English");
    assert_int_equal(opens(mgr), 4); /* t3_cfg, s3gen, ve, conds (tokenizer is JSON) */
    ttsm_model *fr = load_ok(mgr, cfg("chatterbox", NULL, "French"));
    assert_string_equal(ttsm_model_name(fr), "French");
    assert_int_equal(opens(mgr), 6); /* only French's t3_cfg and conds */
    assert_ptr_not_equal(en, fr);
    assert_shared(en, fr, "s3gen", "flow.input_embedding.weight");
    assert_shared(en, fr, "ve", "lstm.weight_ih_l0");
    assert_string_equal(ttsm_model_component_path(en, comp(en, "tokenizer")),
                        ttsm_model_component_path(fr, comp(fr, "tokenizer")));
    assert_string_not_equal(ttsm_model_component_path(en, comp(en, "t3_cfg")),
                            ttsm_model_component_path(fr, comp(fr, "t3_cfg")));
    ttsm_model *ja = load_ok(mgr, cfg("chatterbox", NULL, "ja"));
    ttsm_model *ko = load_ok(mgr, cfg("chatterbox", "Korean", NULL));
    assert_int_equal(opens(mgr), 10);
    assert_shared(en, ko, "s3gen", "mel2wav.conv_pre.weight");
    assert_shared(fr, ja, "ve", "proj.weight");
    assert_non_null(strstr(ttsm_model_component_path(ja, comp(ja, "tokenizer")), "tokenizer_jp.json"));
    ttsm_model_release(en);
    ttsm_model_release(fr);
    ttsm_model_release(ja);
    ttsm_model_release(ko);
    ttsm_manager_destroy(mgr);

    /* Borrower first, from the hub: the English repo's files serve both. */
    mgr = mk(NULL, hub, NULL);
    fr = load_ok(mgr, cfg("chatterbox", NULL, "fr"));
    assert_int_equal(opens(mgr), 4); /* French t3_cfg, conds; English s3gen, ve */
    assert_non_null(strstr(ttsm_model_component_path(fr, comp(fr, "s3gen")),
                           "/models--ResembleAI--chatterbox/snapshots/"));
    en = load_ok(mgr, cfg("ChatterBox", "English", NULL));
    assert_int_equal(opens(mgr), 6);
    assert_shared(en, fr, "s3gen", "speaker_encoder.xvector.block1.tdnnd1.linear1.weight");
    ttsm_model_release(en);
    ttsm_model_release(fr);
    ttsm_manager_destroy(mgr);
}

/* The 23-language model's v1 and v2 are two entries sharing s3gen, ve and
 * conds; F5 models share the Vocos vocoder; IndexTTS-2's auxiliaries are
 * shared models in their own folders. */
static void test_shared_components(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk(comfy, NULL, NULL);
    ttsm_param v1 = {"model_version", "v1"};
    ttsm_load_config c1 = cfg("chatterbox_official_23lang", NULL, "de");
    c1.params = &v1;
    c1.n_params = 1;
    ttsm_model *a = load_ok(mgr, c1);
    assert_int_equal(opens(mgr), 4);
    ttsm_model *b = load_ok(mgr, cfg("chatterbox_official_23lang", NULL, "fr"));
    assert_string_not_equal(ttsm_model_key(a), ttsm_model_key(b));
    assert_int_equal(opens(mgr), 5); /* only t3_mtl23ls_v2 */
    assert_shared(a, b, "s3gen", "flow.encoder.embed.out.0.weight");
    assert_shared(a, b, "conds", "t3.speaker_emb");
    ttsm_model *c = load_ok(mgr, cfg("chatterbox_official_23lang", NULL, "ja"));
    assert_ptr_equal(b, c); /* language is not part of its identity */

    ttsm_model *f1 = load_ok(mgr, cfg("f5tts", NULL, "de"));
    ttsm_model *f2 = load_ok(mgr, cfg("f5tts", NULL, "Spanish"));
    assert_string_equal(ttsm_model_name(f1), "F5-DE");
    assert_string_equal(ttsm_model_name(f2), "F5-ES");
    assert_int_equal(opens(mgr), 5 + 3); /* two models, one vocoder */
    assert_shared(f1, f2, "vocoder", "head.out.weight");

    ttsm_model *ix = load_ok(mgr, cfg("index_tts", NULL, NULL));
    assert_int_equal(ttsm_model_component_count(ix), 25); /* eleven Qwen files, three w2v-BERT */
    const ttsm_model_tensor *t = ttsm_model_find_tensor(ix, comp(ix, "feat1"), "tensor");
    assert_non_null(t); /* a file holding one bare tensor */
    assert_int_equal(t->rank, 2);
    assert_non_null(ttsm_model_find_tensor(ix, comp(ix, "s2mel"), "net.cfm.estimator.input_pos"));
    assert_non_null(strstr(ttsm_model_component_path(ix, comp(ix, "semantic_codec")),
                           "/TTS/IndexTTS/MaskGCT/semantic_codec/model.safetensors"));
    ttsm_model_release(a);
    ttsm_model_release(b);
    ttsm_model_release(c);
    ttsm_model_release(f1);
    ttsm_model_release(f2);
    ttsm_model_release(ix);
    ttsm_manager_destroy(mgr);
}

static void remove_file(const char *rel)
{
    char *p = tu_path(comfy, rel);
    if (unlink(p) != 0)
        fail_msg("unlink %s", p);
    free(p);
}

static void restore_file(const char *rel, unsigned char *data, size_t len)
{
    char *p = tu_path(comfy, rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    free(p);
    free(data);
}

static unsigned char *keep(const char *rel, size_t *len)
{
    char *p = tu_path(comfy, rel);
    unsigned char *d = tu_read_file(p, len);
    assert_non_null(d);
    free(p);
    return d;
}

/* Fallback chains through the API: every attempt is in err->attempts, a
 * fallback that lands on a cached entry is a hit, ttsm_model_name says
 * what was loaded. */
static void test_fallback_chains(void **state)
{
    (void)state;
    const char *h2 = "TTS/chatterbox/German (havok2)/t3_cfg.safetensors";
    const char *de = "TTS/chatterbox/German/t3_cfg.safetensors";
    const char *fr = "TTS/chatterbox/French/t3_cfg.safetensors";
    const char *en = "TTS/chatterbox/English/t3_cfg.safetensors";
    size_t l_h2, l_de, l_fr, l_en;
    unsigned char *d_h2 = keep(h2, &l_h2), *d_de = keep(de, &l_de), *d_fr = keep(fr, &l_fr),
                  *d_en = keep(en, &l_en);
    ttsm_manager *mgr = mk(comfy, NULL, NULL);
    remove_file(h2);
    ttsm_model *m = load_ok(mgr, cfg("chatterbox", "German (havok2)", NULL));
    assert_string_equal(ttsm_model_name(m), "German");
    ttsm_model *g = load_ok(mgr, cfg("chatterbox", "German", NULL));
    assert_ptr_equal(m, g); /* the fallback is German's own entry */
    ttsm_model_release(g);
    ttsm_model_release(m);

    remove_file(fr);
    ttsm_model *e = load_ok(mgr, cfg("chatterbox", NULL, "English"));
    ttsm_manager_stats s0, s1;
    ttsm_manager_get_stats(mgr, &s0);
    m = load_ok(mgr, cfg("chatterbox", NULL, "fr"));
    ttsm_manager_get_stats(mgr, &s1);
    assert_ptr_equal(m, e);
    assert_int_equal(s1.hits, s0.hits + 1);
    assert_int_equal(s1.loads, s0.loads); /* French failed, English was cached */
    ttsm_model_release(m);
    ttsm_model_release(e);
    ttsm_manager_destroy(mgr);

    /* Nothing loads: the requested model's error with every attempt. */
    mgr = mk(comfy, NULL, NULL);
    remove_file(de);
    remove_file(en);
    ttsm_load_config c = cfg("chatterbox", "German (havok2)", NULL);
    ttsm_error err;
    ttsm_status st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND,
                    "chatterbox/German (havok2): file not found: t3_cfg.safetensors|t3_cfg.pt");
    assert_int_equal(err.n_attempts, 3);
    assert_int_equal(err.n_attempts_dropped, 0);
    assert_int_equal(strncmp(err.attempts[0].message, "German (havok2): ", 17), 0);
    assert_int_equal(strncmp(err.attempts[1].message, "German: chatterbox/German: file not found", 41), 0);
    assert_int_equal(strncmp(err.attempts[2].message, "English: chatterbox/English: file not found", 43), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(err.attempts[i].code, TTSM_ERR_NOT_FOUND);
    c = cfg("chatterbox", NULL, "fr");
    st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND, "chatterbox/French: file not found");
    assert_int_equal(err.n_attempts, 2);
    assert_non_null(strstr(err.attempts[1].message, "English: "));
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    ttsm_manager_destroy(mgr);
    restore_file(h2, d_h2, l_h2);
    restore_file(de, d_de, l_de);
    restore_file(fr, d_fr, l_fr);
    restore_file(en, d_en, l_en);
}

/* What one load did (ttsm_load_with_report): a fallback that succeeds says
 * what was asked, what was loaded and why; a direct load and a hit say
 * they are not fallbacks; a failure lists every step. */
static void test_load_reports(void **state)
{
    (void)state;
    const char *fr = "TTS/chatterbox/French/t3_cfg.safetensors";
    size_t l_fr;
    unsigned char *d_fr = keep(fr, &l_fr);
    ttsm_manager *mgr = mk(comfy, NULL, NULL);
    ttsm_load_report r;
    ttsm_error err;
    ttsm_model *m, *e;

    ttsm_load_config c = cfg("chatterbox", NULL, "fr");
    ttsm_load_report_init(&r);
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &r, &err), &err);
    assert_string_equal(r.asked, "French");
    assert_string_equal(r.loaded, "French");
    assert_int_equal(r.fell_back, 0);
    assert_int_equal(r.hit, 0);
    assert_int_equal(r.n_steps, 1);
    assert_int_equal(r.steps[0].code, TTSM_OK);
    assert_string_equal(r.steps[0].device, "cpu");
    ttsm_model_release(m);

    /* The same config again: a hit (through the memo), still no fallback. */
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &r, &err), &err);
    assert_int_equal(r.hit, 1);
    assert_int_equal(r.fell_back, 0);
    assert_string_equal(r.loaded, "French");
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    /* French is gone: English is loaded, and the report says so. */
    mgr = mk(comfy, NULL, NULL);
    remove_file(fr);
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &r, &err), &err);
    assert_string_equal(ttsm_model_name(m), "English");
    assert_int_equal(r.fell_back, 1);
    assert_string_equal(r.asked, "French");
    assert_string_equal(r.loaded, "English");
    assert_string_equal(r.loaded_device, "cpu");
    assert_non_null(strstr(r.why, "chatterbox/French: file not found: t3_cfg.safetensors"));
    assert_int_equal(r.n_steps, 2);
    assert_int_equal(r.steps[0].code, TTSM_ERR_NOT_FOUND);
    assert_string_equal(r.steps[0].model, "French");
    assert_int_equal(r.steps[1].code, TTSM_OK);
    assert_string_equal(r.steps[1].model, "English");
    assert_string_equal(r.steps[1].message, "");
    /* English asked directly is the same entry, and no fallback. */
    ttsm_load_config en = cfg("chatterbox", "English", NULL);
    tu_assert_ok(ttsm_load_with_report(mgr, &en, &e, &r, &err), &err);
    assert_ptr_equal(e, m);
    assert_int_equal(r.fell_back, 0);
    assert_int_equal(r.hit, 1);
    assert_string_equal(r.why, "");
    ttsm_model_release(e);
    ttsm_model_release(m);
    /* A report that was never initialised is refused, not overrun. */
    ttsm_load_report bad;
    memset(&bad, 0, sizeof bad);
    tu_assert_error(ttsm_load_with_report(mgr, &c, &m, &bad, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "ttsm_load_report_init");
    /* Nothing loads: every step failed, nothing was loaded. */
    ttsm_manager_destroy(mgr);
    mgr = mk(nowhere, NULL, NULL);
    ttsm_load_report_init(&r);
    tu_assert_error(ttsm_load_with_report(mgr, &c, &m, &r, &err), &err, TTSM_ERR_NOT_FOUND,
                    "chatterbox/French");
    assert_int_equal(r.n_steps, 2);
    assert_int_equal(r.steps[1].code, TTSM_ERR_NOT_FOUND);
    assert_string_equal(r.asked, "French");
    assert_string_equal(r.loaded, "");
    ttsm_manager_destroy(mgr);
    restore_file(fr, d_fr, l_fr);
}

/* The commit refs/main of a hub repo folder names (models--org--name). */
static void main_commit(const char *repo_dir, char out[41])
{
    char *p = tu_path(hub, repo_dir), *q = tu_path(p, "refs/main");
    size_t len;
    unsigned char *d = tu_read_file(q, &len);
    assert_non_null(d);
    assert_true(len >= 40);
    memcpy(out, d, 40);
    out[40] = '\0';
    free(d);
    free(q);
    free(p);
}

typedef struct spelling_load {
    ttsm_manager *mgr;
    ttsm_load_config cfg;
    ttsm_model *got;
} spelling_load;

static void *load_thread(void *p)
{
    spelling_load *t = p;
    ttsm_error err;
    if (ttsm_load(t->mgr, &t->cfg, &t->got, &err) != TTSM_OK)
        t->got = NULL;
    return NULL;
}

/* One set of bytes, one entry (docs/cache-key.md): no repo id, the model's
 * own repo id and that repo pinned to the commit main points at are three
 * keys and one entry, charged once; the entry answers to each key. */
static void test_one_set_of_bytes_one_entry(void **state)
{
    (void)state;
    char commit[41], pinned[128];
    main_commit("models--ResembleAI--chatterbox", commit);
    snprintf(pinned, sizeof pinned, "ResembleAI/chatterbox@%s", commit);
    ttsm_manager *mgr = mk(NULL, hub, NULL);
    ttsm_load_config a = cfg("chatterbox", NULL, NULL), b = a, c = a;
    b.repo_id = "ResembleAI/chatterbox";
    c.repo_id = pinned;
    char ka[TTSM_KEY_HEX_SIZE], kb[TTSM_KEY_HEX_SIZE], kc[TTSM_KEY_HEX_SIZE];
    ttsm_error err;
    tu_assert_ok(ttsm_cache_key(&a, ka, &err), &err);
    tu_assert_ok(ttsm_cache_key(&b, kb, &err), &err);
    tu_assert_ok(ttsm_cache_key(&c, kc, &err), &err);
    assert_string_not_equal(ka, kb);
    assert_string_not_equal(kb, kc);
    ttsm_load_report r;
    ttsm_load_report_init(&r);
    ttsm_model *ma, *mb, *mc, *again;
    tu_assert_ok(ttsm_load_with_report(mgr, &a, &ma, &r, &err), &err);
    assert_int_equal(r.shared, 0);
    tu_assert_ok(ttsm_load_with_report(mgr, &b, &mb, &r, &err), &err);
    assert_int_equal(r.shared, 1);
    assert_int_equal(r.fell_back, 0);
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &mc, &r, &err), &err);
    assert_int_equal(r.shared, 1);
    assert_ptr_equal(ma, mb);
    assert_ptr_equal(ma, mc);
    /* The pinned spelling again: a plain hit now, through its alias. */
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &again, &r, &err), &err);
    assert_int_equal(r.hit, 1);
    assert_ptr_equal(again, ma);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.loads, 1);
    assert_int_equal(s.devices[0].in_use, ttsm_model_bytes(ma));
    assert_int_equal(s.devices[0].entries, 1);
    ttsm_model_release(again);
    ttsm_model_release(ma);
    ttsm_model_release(mb);
    ttsm_model_release(mc);
    /* The entry answers to every key: pin by one, unload by another. */
    tu_assert_ok(ttsm_pin(mgr, kc, &err), &err);
    tu_assert_ok(ttsm_unpin(mgr, kb, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, kb, &err), &err);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.devices[0].in_use, 0);
    /* Its aliases left with it: each key is a miss again. */
    tu_assert_error(ttsm_pin(mgr, kc, &err), &err, TTSM_ERR_NOT_FOUND, "not loaded");
    /* Another model's files are another entry: French in the same hub. */
    ttsm_load_config fr = cfg("chatterbox", NULL, "fr");
    tu_assert_ok(ttsm_load(mgr, &b, &mb, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &fr, &ma, &err), &err);
    assert_ptr_not_equal(ma, mb);
    ttsm_model_release(ma);
    ttsm_model_release(mb);
    /* Many threads at once on the second spelling: the one that loads
     * finds the entry, its waiters follow the alias, all share it. */
    ttsm_manager_destroy(mgr);
    mgr = mk(NULL, hub, NULL);
    tu_assert_ok(ttsm_load(mgr, &a, &ma, &err), &err);
    spelling_load t[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        t[i] = (spelling_load){mgr, i % 2 ? b : c, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, load_thread, &t[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        assert_ptr_equal(t[i].got, ma);
        ttsm_model_release(t[i].got);
    }
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.devices[0].in_use, ttsm_model_bytes(ma));
    ttsm_model_release(ma);
    ttsm_manager_destroy(mgr);
}

/* Label what was loaded: French asked with English's repo loads English,
 * labelled English, and the report says why. */
static void test_repo_id_labels_what_it_holds(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk(NULL, hub, NULL);
    ttsm_load_config c = cfg("chatterbox", NULL, "fr");
    c.repo_id = "ResembleAI/chatterbox";
    ttsm_load_report r;
    ttsm_load_report_init(&r);
    ttsm_model *m, *en;
    ttsm_error err;
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &r, &err), &err);
    assert_string_equal(ttsm_model_name(m), "English");
    assert_int_equal(r.fell_back, 1);
    assert_string_equal(r.asked, "French");
    assert_string_equal(r.loaded, "English");
    assert_non_null(strstr(r.why, "the repo ResembleAI/chatterbox holds the files of English"));
    char *canon = NULL;
    tu_assert_ok(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err);
    assert_non_null(strstr(canon, "model:7:English\n"));
    assert_non_null(strstr(canon, "language:2:en\n"));
    ttsm_free(canon);
    /* Twice: no memo shortcut hides the relabel. */
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &en, &r, &err), &err);
    assert_int_equal(r.fell_back, 1);
    ttsm_model_release(en);
    /* Plain English is the same files: the same entry. */
    ttsm_load_config e = cfg("chatterbox", NULL, NULL);
    tu_assert_ok(ttsm_load(mgr, &e, &en, &err), &err);
    assert_ptr_equal(en, m);
    ttsm_model_release(en);
    /* The language's own repo keeps the language's model. */
    c.repo_id = "Thomcles/Chatterbox-TTS-French";
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &en, &r, &err), &err);
    assert_string_equal(ttsm_model_name(en), "French");
    assert_int_equal(r.fell_back, 0);
    ttsm_model_release(en);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

/* An RVC voice: its model file ({model}.pth, half-precision weights inside
 * a dict with config values), its optional FAISS index, the shared RMVPE. */
static void test_rvc_voice(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk(comfy, NULL, NULL);
    ttsm_load_config c = cfg("rvc", "Sayano", NULL);
    ttsm_model *m = load_ok(mgr, c);
    assert_int_equal(ttsm_model_component_count(m), 3); /* voice, index, rmvpe */
    assert_non_null(ttsm_model_find_tensor(m, comp(m, "voice"), "weight.emb_g.weight"));
    assert_int_equal(ttsm_model_find_tensor(m, comp(m, "voice"), "weight.emb_g.weight")->dtype,
                     TTSM_DTYPE_F16);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

/* Sharded checkpoints in the hub: the index is a symlink into blobs/ and
 * its shards sit next to it in the snapshot, not next to the blob. */
static void test_hub_sharded(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk(NULL, hub, NULL);
    ttsm_model *m = load_ok(mgr, cfg("vibevoice", "VibeVoice-Large", NULL));
    size_t c = comp(m, "model");
    assert_int_equal(ttsm_model_tensor_count(m, c), 35);
    const char *p = ttsm_model_component_path(m, c);
    assert_non_null(strstr(p, "/models--aoi-ot--VibeVoice-Large/snapshots/"));
    assert_int_equal(strcmp(p + strlen(p) - 28, "model.safetensors.index.json"), 0);
    const ttsm_model_tensor *t = ttsm_model_find_tensor(m, c, "lm_head.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, TTSM_DTYPE_BF16);
    ttsm_model *h = load_ok(mgr, cfg("higgs_audio", NULL, NULL));
    /* 2 layers of 9, embeddings, norm, 3 audio heads, over 3 shards */
    assert_int_equal(ttsm_model_tensor_count(h, comp(h, "generation")), 23);
    ttsm_model_release(h);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    ttsm_load_config q = cfg("vibevoice", NULL, NULL);
    char *report = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_resolve(&q, nowhere, hub, &report, &err), &err);
    assert_non_null(strstr(report, "/snapshots/"));
    assert_null(strstr(report, "/blobs/"));
    ttsm_free(report);
}

static const char kokoro[] =
    "{\"schema\": 1, \"name\": \"kokoro\", \"aliases\": [\"Kokoro-82M\"],\n"
    " \"description\": \"Kokoro 82M, a manifest and no code\", \"runtime\": \"pytorch\",\n"
    " \"model_types\": [\"tts\"],\n"
    " \"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false,\n"
    "   \"can_corrupt\": false, \"requires_special_init\": false,\n"
    "   \"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},\n"
    " \"devices\": [\"cpu\", \"cuda\"], \"languages\": [\"en\", \"ja\"], \"identity_params\": [],\n"
    " \"folder\": \"kokoro\", \"legacy_folders\": [], \"default_model\": \"Kokoro-82M\",\n"
    " \"models\": [{\"name\": \"Kokoro-82M\", \"repos\": [{\"id\": \"hexgrad/Kokoro-82M\"}],\n"
    "   \"components\": [\n"
    "     {\"name\": \"model\", \"kind\": \"tensors\", \"files\": [\"kokoro-v1_0.pth\"]},\n"
    "     {\"name\": \"config\", \"kind\": \"json\", \"files\": [\"config.json\"]},\n"
    "     {\"name\": \"voice\", \"kind\": \"tensors\", \"subfolder\": \"voices\",\n"
    "      \"files\": [\"af_heart.pt\"]}]}]}\n";

/* An eighth engine from a folder named by the manager option: a manifest,
 * its store written by the same generator, no code. */
static void test_engines_dir_option(void **state)
{
    (void)state;
    assert_null(ttsm_engine_find("kokoro"));
    char *edir = tu_path(dir, "engines");
    char *kstore = tu_path(dir, "kstore");
    assert_int_equal(mkdir(edir, 0755), 0);
    free(tu_write_file(edir, "kokoro.json", kokoro, sizeof kokoro - 1));
    assert_int_equal(tu_system("/usr/bin/python3 '%s/tests/fixtures/gen_store.py' '%s' --manifests "
                               "'%s' --engines kokoro --layout comfy",
                               TTSM_SOURCE_DIR, kstore, edir),
                     0);
    char *kcomfy = tu_path(kstore, "comfy");
    ttsm_manager *mgr = mk(kcomfy, NULL, edir);
    const ttsm_engine_info *e = ttsm_engine_find("Kokoro-82M");
    assert_non_null(e);
    assert_string_equal(ttsm_engine_name(e), "kokoro");
    assert_non_null(strstr(ttsm_engine_source(e), "/engines/kokoro.json"));
    ttsm_model *m = load_ok(mgr, cfg("kokoro", NULL, NULL));
    assert_int_equal(ttsm_model_component_count(m), 3);
    assert_string_equal(ttsm_model_component_kind(m, comp(m, "config")), "json");
    assert_int_equal(ttsm_model_tensor_count(m, comp(m, "voice")), 3);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    free(kcomfy);
    free(kstore);
    free(edir);
}

/* Every allocation failure while loading a borrowing model with a fallback
 * chain, from the hub, is TTSM_ERR_OUT_OF_MEMORY and leaves nothing cached
 * (leaks are caught under the sanitizers). */
static void test_allocation_failures(void **state)
{
    (void)state;
    int ok = 0;
    long n;
    for (n = 1; n < 5000 && !ok; n++) {
        ttsm_manager *mgr = mk(NULL, hub, NULL);
        ttsm_load_config c = cfg("chatterbox", NULL, "fr");
        ttsm_model *m;
        ttsm_error err;
        ttsm__alloc_fail_after(n);
        ttsm_status st = ttsm_load(mgr, &c, &m, &err);
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK) {
            ok = 1;
            assert_string_equal(ttsm_model_name(m), "French");
            ttsm_model_release(m);
        } else if (st != TTSM_ERR_OUT_OF_MEMORY) {
            fail_msg("allocation %ld: %s: %s", n, ttsm_status_name(st), err.message);
        }
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(s.entries, (size_t)ok);
        ttsm_manager_destroy(mgr);
    }
    assert_true(ok);
    assert_true(n > 20); /* the failures covered resolution, borrowing and loading */

    /* The second spelling of a cached model, each allocation failing in
     * turn: it shares the entry, or loads its own when the alias cannot be
     * made, or fails cleanly - never a leak, never two charges it hides. */
    ok = 0;
    for (n = 1; n < 5000 && !ok; n++) {
        ttsm_manager *mgr = mk(NULL, hub, NULL);
        ttsm_load_config a = cfg("chatterbox", NULL, NULL), b = a;
        b.repo_id = "ResembleAI/chatterbox";
        ttsm_model *ma, *mb;
        ttsm_error err;
        tu_assert_ok(ttsm_load(mgr, &a, &ma, &err), &err);
        ttsm_load_report r;
        ttsm_load_report_init(&r);
        ttsm__alloc_fail_after(n);
        ttsm_status st = ttsm_load_with_report(mgr, &b, &mb, &r, &err);
        ttsm__alloc_fail_after(0);
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        if (st == TTSM_OK) {
            ok = r.shared;
            assert_int_equal(s.entries, r.shared ? 1 : 2);
            assert_int_equal(s.devices[0].in_use, ttsm_model_bytes(ma) * (r.shared ? 1 : 2));
            assert_true(r.shared ? mb == ma : mb != ma);
            ttsm_model_release(mb);
        } else {
            assert_int_equal(st, TTSM_ERR_OUT_OF_MEMORY);
            assert_int_equal(s.entries, 1);
        }
        ttsm_model_release(ma);
        ttsm_manager_destroy(mgr);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_borrowed_files_open_once),
        cmocka_unit_test(test_shared_components),
        cmocka_unit_test(test_fallback_chains),
        cmocka_unit_test(test_load_reports),
        cmocka_unit_test(test_one_set_of_bytes_one_entry),
        cmocka_unit_test(test_repo_id_labels_what_it_holds),
        cmocka_unit_test(test_rvc_voice),
        cmocka_unit_test(test_hub_sharded),
        cmocka_unit_test(test_engines_dir_option),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
