/* cmd_devices.c - `ttsm devices [--json]`: the devices this machine has,
 * with memory, and why CUDA has none when it has none. */
#include <jansson.h>
#include <string.h>

#include "cli.h"

static void human_bytes(char *buf, size_t size, uint64_t b)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int run(cli_args *a)
{
    int json = a->given[OPT_JSON];
    size_t n = ttsm_device_count();
    const char *cuda = ttsm_cuda_status();
    json_t *list = json_array();
    if (!json)
        printf("%-8s %-32s %12s %12s\n", "DEVICE", "DESCRIPTION", "TOTAL", "FREE");
    for (size_t i = 0; i < n; i++) {
        ttsm_device_info d;
        ttsm_error err;
        ttsm_status st = ttsm_device_get(i, &d, &err);
        if (st != TTSM_OK) {
            json_decref(list);
            return cli_fail(st, &err);
        }
        if (json) {
            json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I}", "name", d.name,
                                                  "description", d.description, "total_bytes",
                                                  (json_int_t)d.total_bytes, "free_bytes",
                                                  (json_int_t)d.free_bytes));
        } else {
            char t[32], f[32];
            human_bytes(t, sizeof t, d.total_bytes);
            human_bytes(f, sizeof f, d.free_bytes);
            printf("%-8s %-32s %12s %12s\n", d.name, d.description, t, f);
        }
    }
    if (json) {
        json_t *root = json_pack("{s:o, s:{s:b, s:s?}}", "devices", list, "cuda", "available",
                                 *cuda == '\0', "reason", *cuda ? cuda : NULL);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(root);
    } else {
        json_decref(list);
        if (*cuda)
            printf("\ncuda: none (%s)\n", cuda);
    }
    return CLI_EXIT_OK;
}

static const cli_opt options[] = {OPT_JSON, OPT_END};

const cli_command cli_cmd_devices = {
    "devices",
    "list devices and their memory",
    "",
    options,
    0,
    "Lists the devices models can be loaded on: cpu first, then every CUDA\n"
    "device the driver reports, with total and free memory. Without a CUDA\n"
    "driver, says why none were found.",
    "{\"devices\": [{\"name\", \"description\", \"total_bytes\", \"free_bytes\"}], "
    "\"cuda\": {\"available\", \"reason\"}}",
    "ttsm devices\n"
    "ttsm devices --json | jq '.devices[].name'",
    NULL,
    run};
