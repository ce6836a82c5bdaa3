/* load_report.h - filling a ttsm_load_report (load_report.c): the steps a
 * load tried and, once it ends, whether what it returned is what was
 * asked. Every helper accepts a NULL report, so a plain ttsm_load() pays
 * nothing for it. */
#ifndef TTSM_CACHE_LOAD_REPORT_H
#define TTSM_CACHE_LOAD_REPORT_H

#include "ttsm.h"

/* @return TTSM_OK, or TTSM_ERR_INVALID_ARGUMENT for a report that was not
 * initialised with ttsm_load_report_init() (it is then left alone). */
ttsm_status ttsm__report_begin(ttsm_load_report *r, ttsm_error *err);
/* The caller asked for `asked`, and the canonical config names another
 * model for the reason `why` (a repo id that holds that model's files). */
void ttsm__report_relabel(ttsm_load_report *r, const char *asked, const char *why);
/* One attempt: model and device asked for, its status and error (NULL or
 * unfilled for a success). */
void ttsm__report_step(ttsm_load_report *r, const char *model, const char *device,
                       ttsm_status st, const ttsm_error *err);
/* The load ended: `m` is what it returned (NULL when it failed). */
void ttsm__report_finish(ttsm_load_report *r, const ttsm_model *m);

#endif
