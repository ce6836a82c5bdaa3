/* iofault_shim.h - arming the I/O fault shim (iofault_shim.c) from a test
 * that links it in. */
#ifndef TTSM_IOFAULT_SHIM_H
#define TTSM_IOFAULT_SHIM_H

/* Arms one rule (the syntax of TTSM_IOFAULT, see iofault_shim.c); NULL
 * disarms. Resets the counters. @return 0, or -1 for a bad spec. */
int iofault_set(const char *spec);
/* Faults injected since the last iofault_set(). */
long iofault_hits(void);
/* Calls waiting in a delay now, and calls delayed since iofault_set(). */
long iofault_waiting(void);
long iofault_delayed(void);
/* Ends every delay, current and to come, until the next iofault_set(). */
void iofault_release(void);

#endif
