/* cmd_inspect.c - `ttsm inspect FILE`: placeholder until the readers land. */
#include "cli.h"

static void help(FILE *out)
{
    fprintf(out, "usage: ttsm inspect FILE [--json] [--tensors]\n");
}

static int run(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("inspect", "missing FILE");
    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_status st = ttsm_checkpoint_open(argv[1], NULL, &ck, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    printf("%s: %s, %zu tensors\n", argv[1], ttsm_format_name(ttsm_checkpoint_format(ck)),
           ttsm_checkpoint_tensor_count(ck));
    ttsm_checkpoint_close(ck);
    return 0;
}

const cli_command cli_cmd_inspect = {"inspect", "show a checkpoint's format, tensors and metadata",
                                     run, help};
