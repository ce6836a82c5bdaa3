/* test_error.c - status names, the is-a tree, ttsm_error filling and truncation. */
#include <string.h>

#include "error_internal.h"
#include "testutil.h"

static void names(void **state)
{
    (void)state;
    assert_string_equal(ttsm_status_name(TTSM_OK), "TTSM_OK");
    assert_string_equal(ttsm_status_name(TTSM_ERR_LOAD), "TTSM_ERR_LOAD");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(names)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
