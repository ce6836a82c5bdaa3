/* test_io_faults.c - faults below the library: short reads, EINTR, EIO, EACCES,
 * truncation and replacement of files (iofault_shim.c linked in), ENOSPC and
 * friends on `ttsm convert`'s output (the CLI under the shim via LD_PRELOAD), and
 * device faults on the fake backend: allocation and upload failures, a device
 * that disappears. Policies: docs/reliability.md. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_backend.h"
#include "iofault_shim.h"
#include "mgr_util.h"

#define FIXTURES TTSM_SOURCE_DIR "/tests/fixtures"

extern char **environ;
static char *dir;

static int setup(void **state)
{
    (void)state;
    fake_backend_register();
    dir = strdup(tu_mkdtemp());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    iofault_set(NULL);
    tu_rmtree(dir);
    free(dir);
    return 0;
}

/* dir/name: `nt` F32 tensors "t0".."t<nt-1>" of `n` elements each, element
 * i of tensor k = base + 1000 k + i. Each tensor is its own storage. */
static char *write_st(const char *name, int nt, size_t n, float base)
{
    char hdr[4096];
    int hl = 0;
    hdr[hl++] = '{';
    for (int k = 0; k < nt; k++)
        hl += snprintf(hdr + hl, sizeof hdr - (size_t)hl,
                       "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}",
                       k ? "," : "", k, n, (size_t)k * n * 4, (size_t)(k + 1) * n * 4);
    hdr[hl++] = '}';
    while (hl % 8)
        hdr[hl++] = ' ';
    size_t total = 8 + (size_t)hl + (size_t)nt * n * 4;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)hl);
    for (int k = 0; k < nt; k++)
        for (size_t i = 0; i < n; i++) {
            float v = base + 1000.0f * (float)k + (float)i;
            memcpy(buf + 8 + hl + ((size_t)k * n + i) * 4, &v, 4);
        }
    char *p = tu_write_file(dir, name, buf, total);
    free(buf);
    return p;
}

static ttsm_checkpoint *open_mode(const char *path, ttsm_io_mode mode)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = mode;
    ttsm_checkpoint *ck;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_open(path, &o, &ck, &err), &err);
    return ck;
}

/* Every tensor of `a` and `b` has the same bytes. */
static void assert_same_data(ttsm_checkpoint *a, ttsm_checkpoint *b)
{
    assert_int_equal(ttsm_checkpoint_tensor_count(a), ttsm_checkpoint_tensor_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(a); i++) {
        const ttsm_tensor_info *ta = ttsm_checkpoint_tensor(a, i), *tb = ttsm_checkpoint_tensor(b, i);
        const void *da, *db;
        ttsm_error err;
        tu_assert_ok(ttsm_checkpoint_tensor_data(a, ta, &da, &err), &err);
        tu_assert_ok(ttsm_checkpoint_tensor_data(b, tb, &db, &err), &err);
        assert_int_equal(ta->nbytes, tb->nbytes);
        assert_memory_equal(da, db, (size_t)ta->nbytes);
    }
}

static const char *const read_fixtures[] = {
    "safetensors/ok_all_dtypes.safetensors", "safetensors/index/ok.safetensors.index.json",
    "gguf/valid_v3_all_types.gguf", "torch/state_dict.pt", "torch/deflated.pt",
    "torch/zip64.pt", "torch/legacy.pt"};
#define N_READ_FIXTURES (sizeof read_fixtures / sizeof read_fixtures[0])

/* ---- short reads and EINTR: the read loop finishes the job --------------- */

static void reads_survive(const char *spec_fmt)
{
    for (size_t i = 0; i < N_READ_FIXTURES; i++) {
        char *path = tu_fmt("%s/%s", FIXTURES, read_fixtures[i]);
        char spec[256];
        ttsm_checkpoint *clean = open_mode(path, TTSM_IO_MMAP);
        /* every file of a sharded index: match the fixture folder */
        snprintf(spec, sizeof spec, spec_fmt, "/tests/fixtures/");
        assert_int_equal(iofault_set(spec), 0);
        ttsm_checkpoint *ck = open_mode(path, TTSM_IO_READ);
        assert_same_data(clean, ck);
        assert_true(iofault_hits() > 0);
        iofault_set(NULL);
        ttsm_checkpoint_close(ck);
        ttsm_checkpoint_close(clean);
        free(path);
    }
}

static void test_short_reads(void **state)
{
    (void)state;
    reads_survive("op=pread,path=%s,short=3");
    reads_survive("op=pread,path=%s,short=1");
}

static void test_eintr(void **state)
{
    (void)state;
    reads_survive("op=pread,path=%s,eintr");
}

/* ---- EIO, EACCES, EMFILE ------------------------------------------------ */

static void test_eio(void **state)
{
    (void)state;
    char *p = write_st("eio.safetensors", 2, 64, 0);
    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = TTSM_IO_READ;
    /* on the header */
    iofault_set("op=pread,path=eio.safetensors,errno=EIO");
    ttsm_status st = ttsm_checkpoint_open(p, &o, &ck, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "eio.safetensors", "read failed", "Input/output error");
    /* on tensor data, after the header was read */
    iofault_set(NULL);
    ck = open_mode(p, TTSM_IO_READ);
    iofault_set("op=pread,path=eio.safetensors,errno=EIO");
    const void *data;
    st = ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, 1), &data, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "eio.safetensors", "Input/output error");
    /* a failed read is not cached: it works once the disk does */
    iofault_set(NULL);
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, 1), &data, &err), &err);
    assert_true(((const float *)data)[63] == 1063.0f);
    ttsm_checkpoint_close(ck);
    /* through the manager (read mode, fake device): nothing is left */
    ttsm_manager_options mo = ttsm_manager_options_default();
    mo.io_mode = TTSM_IO_READ;
    ttsm_manager *mgr;
    tu_assert_ok(ttsm_manager_create(&mo, &mgr, &err), &err);
    ttsm_load_config c = mu_cfg("file", p, "fake:0");
    ttsm_model *m;
    iofault_set("op=pread,path=eio.safetensors,errno=EIO,skip=2");
    st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "eio.safetensors", "Input/output error");
    assert_int_equal(fake_allocated(0), 0);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.failures, 1);
    iofault_set(NULL);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    free(p);
}

static void test_open_refused(void **state)
{
    (void)state;
    char *p = write_st("locked.safetensors", 1, 16, 0);
    ttsm_error err;
    ttsm_checkpoint *ck;
    iofault_set("op=open,path=locked.safetensors,errno=EACCES");
    ttsm_status st = ttsm_checkpoint_open(p, NULL, &ck, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "locked.safetensors", "cannot open", "Permission denied");
    iofault_set("op=open,path=locked.safetensors,errno=EMFILE");
    st = ttsm_checkpoint_open(p, NULL, &ck, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "locked.safetensors", "Too many open files");
    /* a shard of an index */
    const char *idx = FIXTURES "/safetensors/index/ok.safetensors.index.json";
    iofault_set("op=open,path=shard-b.safetensors,errno=EACCES");
    st = ttsm_checkpoint_open(idx, NULL, &ck, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "shard-b.safetensors", "Permission denied");
    /* through the manager */
    ttsm_manager *mgr;
    tu_assert_ok(ttsm_manager_create(NULL, &mgr, &err), &err);
    ttsm_load_config c = mu_cfg("file", p, "cpu");
    ttsm_model *m;
    iofault_set("op=open,path=locked.safetensors,errno=EACCES");
    st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "locked.safetensors", "Permission denied");
    iofault_set(NULL);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    /* the real thing, where permissions apply (not as root) */
    if (geteuid() != 0) {
        chmod(p, 0);
        st = ttsm_checkpoint_open(p, NULL, &ck, &err);
        tu_assert_error(st, &err, TTSM_ERR_IO, "locked.safetensors", "Permission denied");
        chmod(p, 0644);
    }
    free(p);
}

/* ---- truncated after open ----------------------------------------------- */

static void test_truncated_read_mode(void **state)
{
    (void)state;
    char *p = write_st("shrinks.safetensors", 2, 256, 0);
    ttsm_checkpoint *ck = open_mode(p, TTSM_IO_READ);
    const ttsm_tensor_info *t1 = ttsm_checkpoint_tensor(ck, 1);
    assert_int_equal(truncate(p, (off_t)t1->file_offset + 100), 0);
    const void *data;
    ttsm_error err;
    ttsm_status st = ttsm_checkpoint_tensor_data(ck, t1, &data, &err);
    tu_assert_error(st, &err, TTSM_ERR_IO, "shrinks.safetensors", "truncated after opening");
    ttsm_checkpoint_close(ck);
    free(p);
}

/* The manager loads in read mode; the file shrinks after the first storage
 * was uploaded (from the progress callback): TTSM_ERR_IO, nothing booked or
 * allocated, and the next load of the repaired file works. */
static const char *shrink_path;
static off_t shrink_to;
static int shrink_progress(void *user, const char *key, uint64_t done, uint64_t total)
{
    (void)user;
    (void)key;
    (void)total;
    if (shrink_path && done > 0) {
        assert_int_equal(truncate(shrink_path, shrink_to), 0);
        shrink_path = NULL;
    }
    return 0;
}

static void test_truncated_during_load(void **state)
{
    (void)state;
    char *p = write_st("shrinks2.safetensors", 3, 256, 0);
    size_t len;
    unsigned char *orig = tu_read_file(p, &len);
    ttsm_manager_options mo = ttsm_manager_options_default();
    mo.io_mode = TTSM_IO_READ;
    mo.progress = shrink_progress;
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&mo, &mgr, &err), &err);
    const char *devices[] = {"fake:0", "cpu"};
    for (int d = 0; d < 2; d++) {
        shrink_path = p;
        shrink_to = (off_t)(len - 256 * 4 - 10);
        ttsm_load_config c = mu_cfg("file", p, devices[d]);
        ttsm_model *m;
        ttsm_status st = ttsm_load(mgr, &c, &m, &err);
        tu_assert_error(st, &err, TTSM_ERR_IO, "shrinks2.safetensors", "truncated after opening");
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(s.entries, 0);
        for (size_t i = 0; i < s.n_devices; i++) {
            assert_int_equal(s.devices[i].in_use, 0);
            assert_int_equal(s.devices[i].reserved, 0);
        }
        assert_int_equal(fake_allocated(0), 0);
        /* repaired: the next load opens it afresh and succeeds */
        free(tu_write_file(dir, "shrinks2.safetensors", orig, len));
        tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
        assert_true(((const float *)ttsm_model_get_tensor(m, 0, 2)->data)[255] == 2255.0f);
        char key[TTSM_KEY_HEX_SIZE];
        snprintf(key, sizeof key, "%s", ttsm_model_key(m));
        ttsm_model_release(m);
        /* read mode keeps the bytes it read: the next device must open anew */
        tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    }
    ttsm_manager_destroy(mgr);
    free(orig);
    free(p);
}

static void on_sigbus(int sig)
{
    (void)sig;
    _exit(77);
}

/* mmap mode cannot report a file that shrank: touching a page past the
 * new end raises SIGBUS in the process (POSIX). Shown in a child that
 * exits 77 from its SIGBUS handler; the library installs no handler of its
 * own (it never changes process-wide signal state). */
static void test_truncated_mmap_mode_sigbus(void **state)
{
    (void)state;
    char *p = write_st("shrinks3.safetensors", 2, 4096, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigbus;
        sigaction(SIGBUS, &sa, NULL);
        ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
        ttsm_checkpoint *ck;
        if (ttsm_checkpoint_open(p, &o, &ck, NULL) != TTSM_OK)
            _exit(1);
        const ttsm_tensor_info *t1 = ttsm_checkpoint_tensor(ck, 1);
        const void *data;
        if (ttsm_checkpoint_tensor_data(ck, t1, &data, NULL) != TTSM_OK)
            _exit(2);
        if (truncate(p, 64) != 0)
            _exit(3);
        volatile float v = ((const volatile float *)data)[4095];
        (void)v;
        _exit(0); /* no SIGBUS: the page survived, which POSIX does not promise */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 77);
    free(p);
}

/* A file replaced by rename (how `ttsm convert`, huggingface_hub and most
 * writers publish) leaves a mapping of the old inode intact. */
static void test_replaced_under_mmap(void **state)
{
    (void)state;
    char *p = write_st("swap.safetensors", 1, 1024, 1.0f);
    ttsm_checkpoint *ck = open_mode(p, TTSM_IO_MMAP);
    char *q = write_st("swap.tmp", 1, 16, 9.0f);
    assert_int_equal(rename(q, p), 0);
    const void *data;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, 0), &data, &err), &err);
    assert_true(((const float *)data)[1023] == 1024.0f);
    ttsm_checkpoint_close(ck);
    free(q);
    free(p);
}

/* ---- a file replaced while cached: the policy --------------------------- */

static float first_value(ttsm_model *m)
{
    return ((const float *)ttsm_model_get_tensor(m, 0, 0)->data)[0];
}

static void test_replaced_while_cached(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        char name[64];
        snprintf(name, sizeof name, "cached%d.safetensors", mode);
        char *p = write_st(name, 1, 64, 1.0f);
        ttsm_manager_options mo = ttsm_manager_options_default();
        mo.io_mode = mode ? TTSM_IO_READ : TTSM_IO_MMAP;
        ttsm_manager *mgr;
        ttsm_error err;
        tu_assert_ok(ttsm_manager_create(&mo, &mgr, &err), &err);
        ttsm_load_config cpu = mu_cfg("file", p, "cpu"), fake = mu_cfg("file", p, "fake:1");
        ttsm_model *m1, *m2, *m3, *m4;
        tu_assert_ok(ttsm_load(mgr, &cpu, &m1, &err), &err);
        assert_true(first_value(m1) == 1.0f);
        /* replaced the way writers publish: a new file renamed over it */
        char *q = write_st("new.tmp", 1, 96, 5.0f);
        assert_int_equal(rename(q, p), 0);
        free(q);
        /* 1. a cache hit serves what was loaded: no stat on the hot path */
        tu_assert_ok(ttsm_load(mgr, &cpu, &m2, &err), &err);
        assert_ptr_equal(m1, m2);
        assert_true(first_value(m2) == 1.0f);
        /* 2. a new entry (another device) opens the file as it is now, even
         *    though the cpu entry still holds the old checkpoint */
        tu_assert_ok(ttsm_load(mgr, &fake, &m3, &err), &err);
        assert_true(first_value(m3) == 5.0f);
        assert_int_equal(ttsm_model_get_tensor(m3, 0, 0)->shape[0], 96);
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(s.checkpoint_opens, 2);
        /* 3. invalidating (or unloading) the stale entry makes the next
         *    load see the new file; holders keep the old tensors */
        tu_assert_ok(ttsm_invalidate(mgr, ttsm_model_key(m1), &err), &err);
        tu_assert_ok(ttsm_load(mgr, &cpu, &m4, &err), &err);
        assert_true(first_value(m4) == 5.0f);
        assert_true(first_value(m1) == 1.0f);
        char k4[TTSM_KEY_HEX_SIZE];
        snprintf(k4, sizeof k4, "%s", ttsm_model_key(m4));
        ttsm_model_release(m1);
        ttsm_model_release(m2);
        ttsm_model_release(m3);
        ttsm_model_release(m4);
        /* 4. a rewrite in place (same inode: size and mtime change) is
         *    seen by the next load that opens, though the fake:1 entry
         *    still holds the checkpoint */
        tu_assert_ok(ttsm_unload(mgr, k4, &err), &err);
        char *t = write_st("inplace.tmp", 1, 32, 7.0f);
        size_t len;
        unsigned char *bytes = tu_read_file(t, &len);
        struct stat before, after;
        assert_int_equal(stat(p, &before), 0);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, len, f), len);
        fclose(f);
        assert_int_equal(stat(p, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        tu_assert_ok(ttsm_load(mgr, &cpu, &m4, &err), &err);
        assert_true(first_value(m4) == 7.0f);
        ttsm_model_release(m4);
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(s.checkpoint_opens, 3);
        unlink(t);
        free(t);
        free(bytes);
        ttsm_manager_destroy(mgr);
        /* 5. what `ttsm verify` does - open and read the file - sees the
         *    new bytes at once */
        ttsm_checkpoint *ck = open_mode(p, TTSM_IO_READ);
        const void *data;
        tu_assert_ok(ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, 0), &data, &err),
                     &err);
        assert_true(((const float *)data)[0] == 7.0f);
        ttsm_checkpoint_close(ck);
        free(p);
    }
}

/* ---- convert's output: the CLI under the shim --------------------------- */

/* A `ttsm convert` started by start_convert(): its pid and what to free. */
typedef struct convert_run {
    pid_t pid;
    char *errpath, *pre, *fault, *asan;
} convert_run;

/* Starts `ttsm convert IN OUT` with TTSM_IOFAULT=spec (NULL: none) and the
 * file-size limit `fsize` (0: none); finish_convert() waits for it. */
static convert_run start_convert(const char *spec, rlim_t fsize, const char *in, const char *out)
{
    convert_run cr;
    cr.errpath = tu_fmt("%s/convert.stderr", dir);
    char *envp[256];
    size_t ne = 0;
    cr.pre = tu_fmt("LD_PRELOAD=%s", IOFAULT_SHIM);
    cr.fault = tu_fmt("TTSM_IOFAULT=%s", spec ? spec : "");
    /* gcc's shared ASan runtime wants to be first; a preload is not it */
    const char *ao = getenv("ASAN_OPTIONS");
    cr.asan = tu_fmt("ASAN_OPTIONS=%s%sverify_asan_link_order=0", ao ? ao : "",
                     ao && *ao ? ":" : "");
    envp[ne++] = cr.pre;
    envp[ne++] = cr.fault;
    envp[ne++] = cr.asan;
    for (char **e = environ; *e && ne < 250; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "TTSM_IOFAULT=", 13) &&
            strncmp(*e, "ASAN_OPTIONS=", 13))
            envp[ne++] = *e;
    envp[ne] = NULL;
    fflush(NULL);
    cr.pid = fork();
    assert_true(cr.pid >= 0);
    if (cr.pid == 0) {
        int fd = open(cr.errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        if (fsize) {
            /* SIGXFSZ keeps its default action (the process is killed):
             * exit 7 with no file left has to come from the CLI itself. */
            struct rlimit rl = {fsize, fsize};
            signal(SIGXFSZ, SIG_DFL);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        char *argv[] = {(char *)TTSM_CLI, "convert", (char *)in, (char *)out, NULL};
        execve(TTSM_CLI, argv, envp);
        _exit(127);
    }
    return cr;
}

/* @return the exit code (128 + N for a signal), stderr in `*msg`
 * (malloc'd: free it). */
static int finish_convert(convert_run cr, char **msg)
{
    int status = 0;
    assert_int_equal(waitpid(cr.pid, &status, 0), cr.pid);
    size_t n = 0;
    unsigned char *text = tu_read_file(cr.errpath, &n);
    *msg = text ? (char *)text : strdup("");
    unlink(cr.errpath);
    free(cr.errpath);
    free(cr.pre);
    free(cr.fault);
    free(cr.asan);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_convert(const char *spec, rlim_t fsize, const char *in, const char *out,
                       char **msg)
{
    return finish_convert(start_convert(spec, fsize, in, out), msg);
}

static size_t entries_in(const char *d)
{
    size_t n = 0;
    DIR *dp = opendir(d);
    struct dirent *de;
    while (dp && (de = readdir(dp)) != NULL)
        n += de->d_name[0] != '.' || (de->d_name[1] && strcmp(de->d_name, "..") != 0);
    if (dp)
        closedir(dp);
    return n;
}

/* Interrupted while writing (the shim holds its first write for up to
 * 20 s): killed by SIGINT, SIGTERM or SIGHUP, convert leaves neither OUT
 * nor its temporary file, and dies of the signal. */
static void test_convert_interrupted(void **state)
{
    (void)state;
    char in[4096];
    snprintf(in, sizeof in, "%s/torch/rvc.pth", FIXTURES);
    char *outdir = strdup(tu_mkdtemp());
    char *out = tu_path(outdir, "rvc.safetensors");
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        convert_run cr = start_convert("op=fwrite,path=rvc.safetensors.ttsm-,delay=20000", 0, in,
                                       out);
        /* the temporary file exists once the handler knows it */
        for (int t = 0; t < 2000 && entries_in(outdir) == 0; t++)
            usleep(10000);
        assert_int_equal(entries_in(outdir), 1);
        usleep(50000);
        assert_int_equal(kill(cr.pid, sigs[i]), 0);
        char *msg;
        int rc = finish_convert(cr, &msg);
        if (rc != 128 + sigs[i])
            fail_msg("signal %d: exit %d, expected death by the signal: %s", sigs[i], rc, msg);
        free(msg);
        if (entries_in(outdir) != 0)
            fail_msg("signal %d: the temporary file was left behind", sigs[i]);
    }
    tu_rmtree(outdir);
    free(outdir);
    free(out);
}

static void test_convert_output_faults(void **state)
{
    (void)state;
    const char *in = FIXTURES "/torch/rvc.pth";
    char *outdir = strdup(tu_mkdtemp());
    char *out = tu_path(outdir, "rvc.safetensors");
    char *msg;
    static const struct {
        const char *spec;
        rlim_t fsize;
        const char *needle;
    } cases[] = {
        /* the disk fills up after the header */
        {"op=fwrite,path=rvc.safetensors.ttsm-,errno=ENOSPC,after=100", 0,
         "No space left on device"},
        /* ... before the first byte */
        {"op=fwrite,path=rvc.safetensors.ttsm-,errno=ENOSPC,after=0", 0, "No space left on device"},
        /* delayed allocation / NFS: the error arrives at fsync */
        {"op=fsync,path=rvc.safetensors.ttsm-,errno=ENOSPC", 0, "No space left on device"},
        {"op=fsync,path=rvc.safetensors.ttsm-,errno=EIO", 0, "Input/output error"},
        /* quota */
        {"op=fwrite,path=rvc.safetensors.ttsm-,errno=EDQUOT,after=50", 0, "quota"},
        /* the output folder is not writable */
        {"op=mkstemp,path=rvc.safetensors.ttsm-,errno=EACCES", 0, "Permission denied"},
        /* a real limit, no shim: the file-size rlimit makes write(2) fail */
        {NULL, 200, "File too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_convert(cases[i].spec, cases[i].fsize, in, out, &msg);
        if (rc != 7 || !strstr(msg, cases[i].needle))
            fail_msg("case %zu (%s): exit %d, expected 7 and \"%s\": %s", i,
                     cases[i].spec ? cases[i].spec : "rlimit", rc, cases[i].needle, msg);
        free(msg);
        /* neither OUT nor the temporary file is left behind */
        assert_int_equal(entries_in(outdir), 0);
    }
    /* the same command without faults works, under the shim too */
    int rc = run_convert(NULL, 0, in, out, &msg);
    if (rc != 0)
        fail_msg("clean convert: exit %d: %s", rc, msg);
    free(msg);
    ttsm_checkpoint *ck;
    ttsm_error err;
    tu_assert_ok(ttsm_checkpoint_open(out, NULL, &ck, &err), &err);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS);
    ttsm_checkpoint_close(ck);
    tu_rmtree(outdir);
    free(outdir);
    free(out);
}

/* ---- device faults on the fake backend ---------------------------------- */

static const ttsm_device_stats *dev(const ttsm_manager_stats *s, const char *name)
{
    for (size_t i = 0; i < s->n_devices; i++)
        if (strcmp(s->devices[i].device, name) == 0)
            return &s->devices[i];
    fail_msg("no stats for %s", name);
    return NULL;
}

/* A model of three components: three allocations, one upload per tensor. */
static char *three_part_model(const char *name)
{
    char *d = tu_path(dir, name);
    mkdir(d, 0755);
    char *saved = dir;
    dir = d;
    free(write_st("a.safetensors", 2, 128, 0));
    free(write_st("b.safetensors", 2, 128, 10));
    free(write_st("c.safetensors", 2, 128, 20));
    dir = saved;
    return d;
}

static void test_device_alloc_and_upload_failures(void **state)
{
    (void)state;
    char *resident = write_st("resident.safetensors", 1, 64, 0);
    char *model = three_part_model("three");
    ttsm_device_budget b[] = {{"fake:0", 1 << 20}};
    ttsm_manager_options mo = ttsm_manager_options_default();
    mo.budgets = b;
    mo.n_budgets = 1;
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&mo, &mgr, &err), &err);
    /* something already on the device, whose books must not move */
    ttsm_load_config rc = mu_cfg("file", resident, "fake:0");
    ttsm_model *r;
    tu_assert_ok(ttsm_load(mgr, &rc, &r, &err), &err);
    uint64_t base = fake_allocated(0);
    assert_true(base > 0);
    ttsm_load_config c = mu_cfg("file", model, "fake:0");
    for (int step = 1; step <= 3; step++) {
        /* allocation `step` fails: components before it were allocated and
         * uploaded, and must be freed */
        long up0 = fake_upload_count();
        fake_fail_alloc_after(step);
        ttsm_model *m;
        ttsm_status st = ttsm_load(mgr, &c, &m, &err);
        fake_fail_alloc_after(0);
        tu_assert_error(st, &err, TTSM_ERR_OUT_OF_MEMORY, "injected allocation failure");
        assert_int_equal(fake_upload_count() - up0, 2 * (step - 1));
        assert_int_equal(fake_allocated(0), base);
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(dev(&s, "fake:0")->in_use, base);
        assert_int_equal(dev(&s, "fake:0")->reserved, 0);
        assert_int_equal(dev(&s, "fake:0")->entries, 1);
    }
    for (int step = 1; step <= 6; step++) {
        /* upload `step` of six fails */
        long up0 = fake_upload_count();
        fake_fail_upload_after(step);
        ttsm_model *m;
        ttsm_status st = ttsm_load(mgr, &c, &m, &err);
        fake_fail_upload_after(0);
        tu_assert_error(st, &err, TTSM_ERR_DEVICE, "injected upload failure");
        assert_int_equal(fake_upload_count() - up0, step - 1);
        assert_int_equal(fake_allocated(0), base);
        ttsm_manager_stats s;
        ttsm_manager_get_stats(mgr, &s);
        assert_int_equal(dev(&s, "fake:0")->in_use, base);
        assert_int_equal(dev(&s, "fake:0")->reserved, 0);
    }
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(ttsm_model_component_count(m), 3);
    assert_true(((const float *)ttsm_model_get_tensor(m, 2, 1)->data)[127] == 1147.0f);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.failures, 9);
    assert_int_equal(dev(&s, "fake:0")->in_use, fake_allocated(0));
    ttsm_model_release(m);
    ttsm_model_release(r);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    free(resident);
    free(model);
}

/* The device vanishes: between loads, and in the middle of one (from the
 * progress callback, after the first component). */
static int vanish_progress(void *user, const char *key, uint64_t done, uint64_t total)
{
    (void)key;
    (void)total;
    if (*(int *)user && done > 0) {
        fake_set_count(1);
        *(int *)user = 0;
    }
    return 0;
}

static void test_device_disappears(void **state)
{
    (void)state;
    char *p = write_st("dev1.safetensors", 1, 64, 3.0f);
    char *model = three_part_model("three2");
    int vanish = 0;
    ttsm_manager_options mo = ttsm_manager_options_default();
    mo.progress = vanish_progress;
    mo.progress_user = &vanish;
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&mo, &mgr, &err), &err);
    size_t before = ttsm_device_count();
    ttsm_load_config c = mu_cfg("file", p, "fake:1");
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    char key[TTSM_KEY_HEX_SIZE];
    snprintf(key, sizeof key, "%s", ttsm_model_key(m));
    ttsm_model_release(m);
    assert_true(fake_allocated(1) > 0);

    fake_set_count(1);
    assert_int_equal(ttsm_device_count(), before - 1);
    /* new loads and cache lookups for the device fail, naming what exists */
    ttsm_status st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_DEVICE, "fake:1", "does not exist");
    /* the entry made before stays listed until unloaded; its memory is
     * returned through the backend's free */
    ttsm_entry_info *v;
    size_t n;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].device, "fake:1");
    ttsm_free(v);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    assert_int_equal(fake_allocated(1), 0);
    fake_set_count(2);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_true(first_value(m) == 3.0f);
    ttsm_model_release(m);

    /* in the middle of a load: the next allocation finds the device gone */
    ttsm_load_config c3 = mu_cfg("file", model, "fake:1");
    vanish = 1;
    uint64_t held = fake_allocated(1);
    st = ttsm_load(mgr, &c3, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_DEVICE, "device is gone");
    assert_int_equal(fake_allocated(1), held);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(dev(&s, "fake:1")->reserved, 0);
    assert_int_equal(dev(&s, "fake:1")->in_use, held);
    fake_set_count(2);
    tu_assert_ok(ttsm_load(mgr, &c3, &m, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(1), 0);
    free(p);
    free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_reads),
        cmocka_unit_test(test_eintr),
        cmocka_unit_test(test_eio),
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_truncated_read_mode),
        cmocka_unit_test(test_truncated_during_load),
        cmocka_unit_test(test_truncated_mmap_mode_sigbus),
        cmocka_unit_test(test_replaced_under_mmap),
        cmocka_unit_test(test_replaced_while_cached),
        cmocka_unit_test(test_convert_output_faults),
        cmocka_unit_test(test_convert_interrupted),
        cmocka_unit_test(test_device_alloc_and_upload_failures),
        cmocka_unit_test(test_device_disappears),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
