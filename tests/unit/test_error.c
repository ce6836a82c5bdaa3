/* test_error.c - status names, the is-a tree, ttsm_error filling, attempts
 * and visible truncation. */
#include <string.h>

#include "base/error.h"
#include "base/text.h"
#include "testutil.h"

static void every_code_has_its_name(void **state)
{
    (void)state;
    static const struct {
        ttsm_status code;
        int value;
        const char *name;
    } want[] = {
        {TTSM_OK, 0, "TTSM_OK"},
        {TTSM_ERR_LOAD, 1, "TTSM_ERR_LOAD"},
        {TTSM_ERR_NOT_FOUND, 2, "TTSM_ERR_NOT_FOUND"},
        {TTSM_ERR_DEVICE, 3, "TTSM_ERR_DEVICE"},
        {TTSM_ERR_OUT_OF_MEMORY, 4, "TTSM_ERR_OUT_OF_MEMORY"},
        {TTSM_ERR_FORMAT, 5, "TTSM_ERR_FORMAT"},
        {TTSM_ERR_IO, 6, "TTSM_ERR_IO"},
        {TTSM_ERR_ENGINE, 7, "TTSM_ERR_ENGINE"},
        {TTSM_ERR_INVALID_ARGUMENT, 8, "TTSM_ERR_INVALID_ARGUMENT"},
        {TTSM_ERR_CANCELLED, 9, "TTSM_ERR_CANCELLED"},
    };
    assert_int_equal(TTSM_STATUS_COUNT_, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal((int)want[i].code, want[i].value); /* numbers never change */
        assert_string_equal(ttsm_status_name(want[i].code), want[i].name);
        assert_true(strlen(ttsm_status_description(want[i].code)) > 3);
    }
    assert_string_equal(ttsm_status_name((ttsm_status)-1), "TTSM_STATUS_UNKNOWN");
    assert_string_equal(ttsm_status_name((ttsm_status)10), "TTSM_STATUS_UNKNOWN");
    assert_string_equal(ttsm_status_description((ttsm_status)99), "unknown status code");
}

static void the_whole_is_a_table(void **state)
{
    (void)state;
    /* Rows: code; columns: category. 1 where code is-a category. */
    enum { N = 10 };
    static const int table[N][N] = {
        /*            OK LOAD NF DEV OOM FMT IO ENG ARG CAN */
        /* OK      */ {1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        /* LOAD    */ {0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
        /* NOTFND  */ {0, 1, 1, 0, 0, 0, 0, 0, 0, 0},
        /* DEVICE  */ {0, 1, 0, 1, 0, 0, 0, 0, 0, 0},
        /* OOM     */ {0, 1, 0, 1, 1, 0, 0, 0, 0, 0},
        /* FORMAT  */ {0, 1, 0, 0, 0, 1, 0, 0, 0, 0},
        /* IO      */ {0, 1, 0, 0, 0, 0, 1, 0, 0, 0},
        /* ENGINE  */ {0, 1, 0, 0, 0, 0, 0, 1, 0, 0},
        /* INVARG  */ {0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
        /* CANCEL  */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    };
    for (int c = 0; c < N; c++)
        for (int k = 0; k < N; k++)
            if (ttsm_status_is((ttsm_status)c, (ttsm_status)k) != table[c][k])
                fail_msg("ttsm_status_is(%s, %s) should be %d", ttsm_status_name((ttsm_status)c),
                         ttsm_status_name((ttsm_status)k), table[c][k]);
    assert_false(ttsm_status_is((ttsm_status)42, TTSM_ERR_LOAD));
    assert_false(ttsm_status_is(TTSM_ERR_LOAD, (ttsm_status)-3));
}

static void message_shape(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_error_clear(&err);
    ttsm_status st = ttsm__err(&err, TTSM_ERR_NOT_FOUND, "chatterbox/English", "file not found",
                               "t3_cfg.safetensors (searched: %s)", "/models/TTS/chatterbox");
    assert_int_equal(st, TTSM_ERR_NOT_FOUND);
    assert_int_equal(err.code, TTSM_ERR_NOT_FOUND);
    assert_string_equal(err.message, "chatterbox/English: file not found: t3_cfg.safetensors "
                                     "(searched: /models/TTS/chatterbox)");
    assert_string_equal(err.hint, "");
    ttsm__err_hint(&err, "download it with %s", "huggingface-cli");
    assert_string_equal(err.hint, "download it with huggingface-cli");
    /* No subject, no detail: "<what>" alone; no what: the code's description. */
    ttsm__err(&err, TTSM_ERR_IO, NULL, "read failed", NULL);
    assert_string_equal(err.message, "read failed");
    assert_string_equal(err.hint, ""); /* a new error clears the old hint */
    ttsm__err(&err, TTSM_ERR_ENGINE, "espeak-ng", NULL, "%s", "boom");
    assert_string_equal(err.message, "espeak-ng: engine initialisation or synthesis failed: boom");
}

static void null_error_pointers_are_fine(void **state)
{
    (void)state;
    assert_int_equal(ttsm__err(NULL, TTSM_ERR_FORMAT, "f", "w", "%d", 1), TTSM_ERR_FORMAT);
    ttsm__err_hint(NULL, "x");
    ttsm__err_add_attempt(NULL, TTSM_ERR_IO, "x");
    ttsm_error_clear(NULL);
    /* Public functions accept a NULL error too. */
    assert_int_equal(ttsm_load_config_validate(NULL, NULL), TTSM_ERR_INVALID_ARGUMENT);
    assert_int_equal(ttsm_checkpoint_open(NULL, NULL, NULL, NULL), TTSM_ERR_INVALID_ARGUMENT);
}

static void long_inputs_are_truncated_visibly(void **state)
{
    (void)state;
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ttsm_error err;
    ttsm__err(&err, TTSM_ERR_FORMAT, big, "what", "%s", big);
    assert_int_equal(strlen(err.message), TTSM_ERROR_MESSAGE_MAX - 1);
    assert_string_equal(err.message + strlen(err.message) - 3, "...");
    ttsm__err(&err, TTSM_ERR_FORMAT, "file", "rule", "%s", big);
    assert_memory_equal(err.message, "file: rule: xxx", 15);
    assert_string_equal(err.message + strlen(err.message) - 3, "...");
    ttsm__err_hint(&err, "%s", big);
    assert_int_equal(strlen(err.hint), TTSM_ERROR_HINT_MAX - 1);
    assert_string_equal(err.hint + strlen(err.hint) - 3, "...");
    /* A message that just fits is not marked. */
    char fits[TTSM_ERROR_MESSAGE_MAX];
    memset(fits, 'y', sizeof fits - 1);
    fits[sizeof fits - 1] = '\0';
    ttsm__err(&err, TTSM_ERR_IO, NULL, fits, NULL);
    assert_string_equal(err.message, fits);
    char buf[8];
    assert_int_equal(ttsm__format_trunc(buf, sizeof buf, "%s", "1234567"), 0);
    assert_int_equal(ttsm__format_trunc(buf, sizeof buf, "%s", "12345678"), 1);
    assert_string_equal(buf, "1234...");
}

/* A subject too long for the message (a file deep in the tree) loses its
 * head, never the file's name or the rule. */
static void a_deep_path_keeps_its_name_and_the_rule(void **state)
{
    (void)state;
    char deep[2000] = "";
    for (int i = 0; i < 30; i++)
        strcat(deep, "/a-folder-name-of-fifty-bytes-in-a-deep-checkout-x");
    strcat(deep, "/model.safetensors");
    ttsm_error err;
    ttsm__err(&err, TTSM_ERR_FORMAT, deep, "header too small", "header length %d", 1);
    const char *want = "/a-folder-name-of-fifty-bytes-in-a-deep-checkout-x/model.safetensors: "
                       "header too small: header length 1";
    assert_memory_equal(err.message, "...", 3);
    assert_string_equal(err.message + strlen(err.message) - strlen(want), want);
    assert_true(strlen(err.message) < TTSM_ERROR_MESSAGE_MAX);
    /* one that fits is whole */
    ttsm__err(&err, TTSM_ERR_FORMAT, deep + 1200, "header too small", NULL);
    assert_memory_equal(err.message, deep + 1200, strlen(deep + 1200));
    /* the tail starts at a folder when one is near, or mid-name when not */
    assert_string_equal(ttsm__path_tail("/a/b/c", 10), "/a/b/c");
    assert_string_equal(ttsm__path_tail("/aa/bb/cc", 8), "/cc");
    assert_string_equal(ttsm__path_tail("xxxxxxxxxx", 8), "xxxxx");
    assert_string_equal(ttsm__path_tail("/abc", 3), "");
}

static void attempts_are_recorded_and_bounded(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm__err(&err, TTSM_ERR_NOT_FOUND, "chatterbox/French", "no model", "all attempts failed");
    for (int i = 0; i < TTSM_ERROR_MAX_ATTEMPTS + 3; i++) {
        char m[64];
        snprintf(m, sizeof m, "attempt %d", i);
        ttsm__err_add_attempt(&err, i % 2 ? TTSM_ERR_FORMAT : TTSM_ERR_NOT_FOUND, m);
    }
    assert_int_equal(err.n_attempts, TTSM_ERROR_MAX_ATTEMPTS);
    assert_int_equal(err.n_attempts_dropped, 3);
    assert_string_equal(err.attempts[0].message, "attempt 0");
    assert_int_equal(err.attempts[1].code, TTSM_ERR_FORMAT);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    err.n_attempts = 0;
    ttsm__err_add_attempt(&err, TTSM_ERR_IO, big);
    assert_int_equal(strlen(err.attempts[0].message), TTSM_ERROR_ATTEMPT_MAX - 1);
    assert_string_equal(err.attempts[0].message + TTSM_ERROR_ATTEMPT_MAX - 4, "...");
    ttsm_error_clear(&err);
    assert_int_equal(err.code, TTSM_OK);
    assert_int_equal(err.n_attempts, 0);
    assert_string_equal(err.message, "");
}


/* Names and values from files reach messages: whatever a reader passes,
 * the message holds no byte a terminal obeys (C0, DEL, C1 as UTF-8) and is
 * valid UTF-8; printable text, UTF-8 included, stays as it is. */
static void messages_are_sanitised_in_one_place(void **state)
{
    (void)state;
    ttsm_error e;
    ttsm__err(&e, TTSM_ERR_FORMAT, "f\x1b]0;x\x07.gguf", "bad tensor name",
              "tensor '%s' and '%s' and '%s'", "\x1b[31mred\x1b[0m", "caf\xc3\xa9 \xc2\x9b" "2J",
              "\xff\xfe\x80 \x7f\r\n");
    assert_string_equal(e.message, "f?]0;x?.gguf: bad tensor name: tensor '?[31mred?[0m' and "
                                   "'caf\xc3\xa9 ?2J' and '?\?? ?\?\?'");
    ttsm__err_hint(&e, "rename '%s'", "\x1b[2J");
    assert_string_equal(e.hint, "rename '?[2J'");
    ttsm__err_add_attempt(&e, TTSM_ERR_FORMAT, "x: \x1b[1m");
    assert_string_equal(e.attempts[0].message, "x: ?[1m");
    /* a cut never leaves half a character */
    char big[TTSM_ERROR_MESSAGE_MAX * 2];
    memset(big, 'a', sizeof big);
    for (size_t i = 1; i + 2 < sizeof big; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof big - 1] = '\0';
    ttsm__err(&e, TTSM_ERR_FORMAT, NULL, "x", "%s", big);
    assert_int_equal(ttsm__utf8_check((const unsigned char *)e.message, strlen(e.message)),
                     strlen(e.message));
}

static void printable_copies(void **state)
{
    (void)state;
    char out[16];
    assert_string_equal(ttsm__printable("abc", 3, out, sizeof out), "abc");
    assert_string_equal(ttsm__printable("a\x1b" "b\x00" "c", 5, out, sizeof out), "a?b?c");
    assert_string_equal(ttsm__printable("0123456789abcdefXYZ", 19, out, sizeof out),
                        "0123456789ab...");
    /* exactly the room: no cut */
    assert_string_equal(ttsm__printable("0123456789abcde", 15, out, sizeof out),
                        "0123456789abcde");
    /* a two-byte character is cut whole */
    assert_string_equal(ttsm__printable("0123456789a\xc3\xa9zzzz", 17, out, sizeof out),
                        "0123456789a...");
    assert_string_equal(ttsm_text_printable("t\x1b[31m\xc2\x85", out, sizeof out), "t?[31m?");
    assert_string_equal(ttsm_text_printable(NULL, out, sizeof out), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_name),
        cmocka_unit_test(the_whole_is_a_table),
        cmocka_unit_test(message_shape),
        cmocka_unit_test(null_error_pointers_are_fine),
        cmocka_unit_test(long_inputs_are_truncated_visibly),
        cmocka_unit_test(a_deep_path_keeps_its_name_and_the_rule),
        cmocka_unit_test(attempts_are_recorded_and_bounded),
        cmocka_unit_test(messages_are_sanitised_in_one_place),
        cmocka_unit_test(printable_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
