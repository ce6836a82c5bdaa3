/* load_report.c - what one load tried and got (ttsm_load_report): the
 * manager records each attempt here as it makes it; at the end the report
 * says whether the model returned is the one asked for and, when not, why.
 * A fallback that succeeds is visible this way without changing what the
 * cache holds. */
#include <string.h>

#include "base/error.h"
#include "engines/model.h"
#include "cache/load_report.h"

void ttsm_load_report_init(ttsm_load_report *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
}

ttsm_status ttsm__report_begin(ttsm_load_report *r, ttsm_error *err)
{
    if (!r)
        return TTSM_OK;
    if (r->struct_size != sizeof *r)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_load_with_report",
                         "invalid argument",
                         "report.struct_size is %zu, expected %zu: use ttsm_load_report_init()",
                         r->struct_size, sizeof *r);
    ttsm_load_report_init(r);
    return TTSM_OK;
}

void ttsm__report_relabel(ttsm_load_report *r, const char *asked, const char *why)
{
    if (!r)
        return;
    ttsm__format_trunc(r->asked, sizeof r->asked, "%s", asked);
    ttsm__format_trunc(r->why, sizeof r->why, "%s", why);
    r->fell_back = 1;
}

void ttsm__report_step(ttsm_load_report *r, const char *model, const char *device,
                       ttsm_status st, const ttsm_error *err)
{
    if (!r)
        return;
    if (r->n_steps == TTSM_LOAD_REPORT_MAX_STEPS) {
        r->n_steps_dropped++;
        return;
    }
    ttsm_load_step *s = &r->steps[r->n_steps++];
    s->code = st;
    ttsm__format_trunc(s->model, sizeof s->model, "%s", model ? model : "default");
    ttsm__format_trunc(s->device, sizeof s->device, "%s", device ? device : "auto");
    s->message[0] = '\0';
    if (st != TTSM_OK)
        ttsm__format_trunc(s->message, sizeof s->message, "%s",
                           err && err->message[0] ? err->message : ttsm_status_name(st));
}

void ttsm__report_finish(ttsm_load_report *r, const ttsm_model *m)
{
    if (!r)
        return;
    /* What was asked: the first step (a relabel already named it). */
    if (!r->asked[0] && r->n_steps)
        ttsm__format_trunc(r->asked, sizeof r->asked, "%s", r->steps[0].model);
    if (!r->asked_device[0] && r->n_steps)
        ttsm__format_trunc(r->asked_device, sizeof r->asked_device, "%s", r->steps[0].device);
    if (!m)
        return;
    ttsm__format_trunc(r->loaded, sizeof r->loaded, "%s", m->label);
    ttsm__format_trunc(r->loaded_device, sizeof r->loaded_device, "%s", m->device);
    /* Any failed step before the one that loaded means a fallback; the
     * reason is the first failure, the asked model's own error. */
    for (size_t i = 0; i < r->n_steps && !r->fell_back; i++)
        if (r->steps[i].code != TTSM_OK) {
            r->fell_back = 1;
            ttsm__format_trunc(r->why, sizeof r->why, "%s", r->steps[i].message);
        }
}
