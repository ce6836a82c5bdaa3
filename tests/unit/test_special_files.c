/* test_special_files.c - a FIFO, a device or a folder where a file is
 * expected, wherever a path is opened: a checkpoint, a shard named by an
 * index, a hub blob, a hub ref, a manifest in an engines folder, a JSON or
 * blob component. Each is refused at once, as TTSM_ERR_IO naming the path
 * and what it is. Every case runs in a child under alarm(): opening a FIFO
 * for reading blocks until a writer comes, so a regression shows as a
 * child killed by SIGALRM, not as a test that never ends. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgr_util.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"
#define LIMIT_SECONDS 10

static char *root;

static int setup(void **state)
{
    (void)state;
    root = strdup(tu_mkdtemp());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(root);
    free(root);
    return 0;
}

typedef ttsm_status (*op_fn)(const void *ctx, ttsm_error *err);

typedef struct outcome {
    ttsm_status st;
    char message[TTSM_ERROR_MESSAGE_MAX];
} outcome;

/* Runs op in a child that SIGALRM ends after LIMIT_SECONDS. */
static outcome bounded(const char *what, op_fn op, const void *ctx)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(LIMIT_SECONDS);
        outcome o;
        memset(&o, 0, sizeof o);
        ttsm_error err;
        ttsm_error_clear(&err);
        o.st = op(ctx, &err);
        snprintf(o.message, sizeof o.message, "%s", err.message);
        ssize_t w = write(fds[1], &o, sizeof o);
        _exit(w == (ssize_t)sizeof o ? 0 : 1);
    }
    close(fds[1]);
    outcome o;
    memset(&o, 0, sizeof o);
    ssize_t r = read(fds[0], &o, sizeof o);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        fail_msg("%s: still blocked after %d s (opened a FIFO and waited for a writer?)", what,
                 LIMIT_SECONDS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r != (ssize_t)sizeof o)
        fail_msg("%s: the child died (status %d)", what, status);
    printf("%-44s %s: %s\n", what, ttsm_status_name(o.st), o.message);
    return o;
}

static void expect(const char *what, op_fn op, const void *ctx, ttsm_status code,
                   const char *path, const char *type)
{
    outcome o = bounded(what, op, ctx);
    if (o.st != code || !strstr(o.message, path) || !strstr(o.message, type))
        fail_msg("%s: expected %s naming %s and \"%s\", got %s: %s", what,
                 ttsm_status_name(code), path, type, ttsm_status_name(o.st), o.message);
}

static char *make_fifo(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    assert_int_equal(mkfifo(p, 0644), 0);
    return p;
}

/* ---- operations ------------------------------------------------------------ */

static ttsm_status open_mmap(const void *path, ttsm_error *err)
{
    return mu_open_once(path, 0, err);
}

static ttsm_status open_read(const void *path, ttsm_error *err)
{
    return mu_open_once(path, 1, err);
}

static ttsm_status load_file_engine(const void *path, ttsm_error *err)
{
    return mu_load_once("file", path, err);
}

static ttsm_status load_dir(const void *dir, ttsm_error *err)
{
    return ttsm_engines_load_dir(dir, err);
}

static ttsm_status load_json_component(const void *path, ttsm_error *err)
{
    return mu_load_once("special_json", path, err);
}

static ttsm_status load_blob_component(const void *path, ttsm_error *err)
{
    return mu_load_once("special_blob", path, err);
}

/* The manifest engine "special" (one model "m", component "w" from the hub
 * repo org/name), loaded from `hub`. */
static ttsm_status load_from_hub(const void *hub, ttsm_error *err)
{
    char *nowhere = tu_path(root, "nowhere");
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = nowhere;
    o.hf_cache = hub;
    ttsm_manager *mgr;
    ttsm_status st = ttsm_manager_create(&o, &mgr, err);
    if (st == TTSM_OK) {
        ttsm_load_config c = ttsm_load_config_default();
        c.engine = "special";
        c.device = "cpu";
        ttsm_model *m = NULL;
        st = ttsm_load(mgr, &c, &m, err);
        ttsm_model_release(m);
        ttsm_manager_destroy(mgr);
    }
    free(nowhere);
    return st;
}

static void register_hub_engine(void)
{
    char *dir = tu_path(root, "engines-special");
    mkdir(dir, 0755);
    static const char text[] =
        "{\"schema\": 1, \"name\": \"special\", \"runtime\": \"pytorch\", "
        "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": false, "
        "\"has_fallback\": false, \"can_corrupt\": false, \"requires_special_init\": false, "
        "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"}, "
        "\"devices\": [\"cpu\"], \"folder\": \"special\", \"default_model\": \"m\", "
        "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"org/name\"}], "
        "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", "
        "\"files\": [\"model.safetensors\"]}]}]}";
    free(tu_write_file(dir, "special.json", text, strlen(text)));
    ttsm_error err;
    tu_assert_ok(ttsm_engines_load_dir(dir, &err), &err);
    free(dir);
}

/* hub/models--org--name with refs/main and snapshots/<commit>/model.safetensors
 * linking to blobs/b, as huggingface_hub writes them. */
static char *make_hub(const char *name)
{
    char *hub = tu_path(root, name);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; R='%s/models--org--name'; mkdir -p \"$R/refs\" \"$R/blobs\" "
             "\"$R/snapshots/" COMMIT "\"; printf " COMMIT " > \"$R/refs/main\"; "
             "ln -s ../../blobs/b \"$R/snapshots/" COMMIT "/model.safetensors\"",
             hub);
    assert_int_equal(system(cmd), 0);
    return hub;
}

/* ---- the cases ------------------------------------------------------------- */

static void test_checkpoint_fifo(void **state)
{
    (void)state;
    char *p = make_fifo(root, "pipe.safetensors");
    expect("checkpoint: FIFO, mmap mode", open_mmap, p, TTSM_ERR_IO, p, "FIFO (named pipe)");
    expect("checkpoint: FIFO, read mode", open_read, p, TTSM_ERR_IO, p, "FIFO (named pipe)");
    expect("file engine: FIFO", load_file_engine, p, TTSM_ERR_IO, p, "FIFO (named pipe)");
    expect("checkpoint: /dev/null", open_mmap, "/dev/null", TTSM_ERR_IO, "/dev/null",
           "character device");
    expect("checkpoint: a folder", open_read, root, TTSM_ERR_IO, root, "is a directory");
    free(p);
}

static void test_index_shard_fifo(void **state)
{
    (void)state;
    char *dir = tu_path(root, "idx");
    mkdir(dir, 0755);
    char src[4096];
    snprintf(src, sizeof src, "%s/tests/fixtures/safetensors/index", TTSM_SOURCE_DIR);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cp '%s/ok.safetensors.index.json' '%s/shard-a.safetensors' '%s/'",
             src, src, dir);
    assert_int_equal(system(cmd), 0);
    char *fifo = make_fifo(dir, "shard-b.safetensors");
    char *idx = tu_path(dir, "ok.safetensors.index.json");
    expect("index: a shard that is a FIFO, mmap", open_mmap, idx, TTSM_ERR_IO, fifo, "FIFO");
    expect("index: a shard that is a FIFO, read", open_read, idx, TTSM_ERR_IO, fifo, "FIFO");
    free(idx);
    free(fifo);
    free(dir);
}

static void test_hub_fifos(void **state)
{
    (void)state;
    register_hub_engine();
    /* the blob the snapshot entry links to is a FIFO */
    char *hub = make_hub("hub-blob");
    char *blob = tu_path(hub, "models--org--name/blobs/b");
    assert_int_equal(mkfifo(blob, 0644), 0);
    expect("hub: blob is a FIFO", load_from_hub, hub, TTSM_ERR_IO, "model.safetensors",
           "FIFO (named pipe)");
    free(blob);
    free(hub);

    /* refs/main is a FIFO */
    hub = make_hub("hub-ref");
    char *ref = tu_path(hub, "models--org--name/refs/main");
    blob = tu_path(hub, "models--org--name/blobs/b");
    free(mu_write_st(root, "real.safetensors", 4, 0));
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cp '%s/real.safetensors' '%s'", root, blob);
    assert_int_equal(system(cmd), 0);
    outcome intact = bounded("hub: intact", load_from_hub, hub);
    if (intact.st != TTSM_OK)
        fail_msg("the intact hub repo does not load: %s", intact.message);
    assert_int_equal(unlink(ref), 0);
    assert_int_equal(mkfifo(ref, 0644), 0);
    expect("hub: refs/main is a FIFO", load_from_hub, hub, TTSM_ERR_IO, ref,
           "FIFO (named pipe)");
    free(ref);
    free(blob);
    free(hub);
}

static void test_engines_folder_fifo(void **state)
{
    (void)state;
    char *dir = tu_path(root, "engines-fifo");
    mkdir(dir, 0755);
    char *fifo = make_fifo(dir, "x.json");
    expect("engines folder: *.json is a FIFO", load_dir, dir, TTSM_ERR_IO, fifo,
           "FIFO (named pipe)");
    free(fifo);
    free(dir);
}

static void test_component_fifo(void **state)
{
    (void)state;
    ttsm_error err;
    tu_assert_ok(mu_register_file_engine("special_json", TTSM_FILE_JSON, &err), &err);
    tu_assert_ok(mu_register_file_engine("special_blob", TTSM_FILE_BLOB, &err), &err);
    char *fifo = make_fifo(root, "config.json");
    expect("JSON component: FIFO", load_json_component, fifo, TTSM_ERR_IO, fifo,
           "FIFO (named pipe)");
    expect("blob component: FIFO", load_blob_component, fifo, TTSM_ERR_IO, fifo,
           "FIFO (named pipe)");
    expect("blob component: /dev/null", load_blob_component, "/dev/null", TTSM_ERR_IO,
           "/dev/null", "character device");
    free(fifo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_fifo),   cmocka_unit_test(test_index_shard_fifo),
        cmocka_unit_test(test_hub_fifos),         cmocka_unit_test(test_engines_folder_fifo),
        cmocka_unit_test(test_component_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
