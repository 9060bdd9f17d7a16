/* kvik cp URL FILE and kvik bench --url URL: the remote-read commands (remote_cmds.c).
 *
 * Wiring: cmd_cp hands over to cmd_cp_remote when its source argument is a URL
 * (cli_is_url), and cmd_bench to cmd_bench_remote when --url is among its arguments
 * (cli_has_url_option). Both take the subcommand's argv as cmd_cp / cmd_bench do
 * (argv[0] == "cp" / "bench"). */
#ifndef KVIK_CLI_REMOTE_CMDS_H
#define KVIK_CLI_REMOTE_CMDS_H

#include <stdbool.h>

/* True if text looks like a URL kvik_remote_open takes ("scheme://..."). */
bool cli_is_url(const char *text);
/* True if argv[1..argc) holds "--url" or "--url=...". */
bool cli_has_url_option(int argc, char **argv);

/* kvik cp [options] URL DST: downloads a remote object with parallel ranged reads. */
int cmd_cp_remote(int argc, char **argv);
/* kvik bench --url URL [options]: parallel ranged reads against single-stream baselines. */
int cmd_bench_remote(int argc, char **argv);

#endif
