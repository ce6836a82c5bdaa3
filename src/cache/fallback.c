/* fallback.c - the generic fallback chain (DESIGN §8): a primary loader,
 * then (loader, condition) pairs tried in order while the last failure
 * meets the next condition. Every attempt is recorded; when all fail, the
 * caller gets the first (the original) error with the whole list. The
 * manager runs the chains manifests declare through this same function. */
#include <string.h>

#include "base/error.h"

int ttsm_fallback_if_missing_or_bad(void *user, ttsm_status failed, const ttsm_error *err)
{
    (void)user;
    (void)err;
    return failed == TTSM_ERR_NOT_FOUND || failed == TTSM_ERR_FORMAT;
}

int ttsm_fallback_if_load_error(void *user, ttsm_status failed, const ttsm_error *err)
{
    (void)user;
    (void)err;
    return ttsm_status_is(failed, TTSM_ERR_LOAD);
}

ttsm_status ttsm_fallback_run(const ttsm_fallback_step *steps, size_t n, ttsm_model **out,
                              ttsm_error *err)
{
    if (!steps || n == 0 || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "fallback", "invalid argument",
                         "at least a primary step and out are needed");
    for (size_t i = 0; i < n; i++)
        if (!steps[i].load || (i > 0 && !steps[i].when))
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "fallback", "invalid argument",
                             "step %zu needs a loader%s", i, i ? " and a condition" : "");
    ttsm_error first, cur;
    ttsm_error_clear(&first);
    ttsm_status first_st = TTSM_OK, st = TTSM_OK;
    ttsm_error_attempt attempts[TTSM_ERROR_MAX_ATTEMPTS];
    size_t n_attempts = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !steps[i].when(steps[i].when_user, st, &cur))
            continue;
        ttsm_error_clear(&cur);
        st = steps[i].load(steps[i].user, out, &cur);
        if (st == TTSM_OK)
            return TTSM_OK;
        if (cur.code != st) /* a loader that did not fill its error */
            ttsm__err(&cur, st, steps[i].label, "failed", "%s", ttsm_status_name(st));
        if (i == 0) {
            first = cur;
            first_st = st;
        }
        if (n_attempts < TTSM_ERROR_MAX_ATTEMPTS) {
            attempts[n_attempts].code = st;
            ttsm__format_trunc(attempts[n_attempts].message, sizeof attempts[0].message, "%s: %s",
                               steps[i].label ? steps[i].label : "attempt", cur.message);
            n_attempts++;
        } else {
            dropped++;
        }
    }
    if (err) {
        *err = first;
        err->n_attempts = 0;
        err->n_attempts_dropped = dropped;
        for (size_t i = 0; i < n_attempts; i++)
            ttsm__err_add_attempt(err, attempts[i].code, attempts[i].message);
    }
    return first_st;
}
