/* kvik: the command-line tool. Dispatches to the subcommands in info.c, bench.c and cp.c. */
#include <string.h>

#include "cli.h"

struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

static const struct command commands[] = {
    {"info", cmd_info, "version, configuration, thread pool; what kvik sees at a path"},
    {"bench", cmd_bench, "write and read a file with kvik and with a plain baseline"},
    {"cp", cmd_cp, "copy a file with kvik's parallel I/O"},
};

static void usage(FILE *out) {
  fputs("usage: kvik [--help] [--version] <command> [options]\n"
        "\n"
        "Moves bytes between files and memory with libkvik.\n"
        "\n"
        "commands:\n",
        out);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  /* man/gen-man.sh builds kvik(1) from this text and each command's --help: its options, the
   * exit status paragraph and the commands list above go there as they are. */
  fputs("\n"
        "options:\n"
        "  -h, --help     print this help and exit ('kvik help <command>' is\n"
        "                 'kvik <command> --help')\n"
        "  -V, --version  print the tool's version and the library's, and exit\n"
        "\n"
        "'kvik <command> --help' describes a command's options. Settings not given as options\n"
        "come from the KVIKIO_* environment variables (see 'kvik info').\n"
        "\n"
        "Exit status: 0 on success, 1 when something failed (the library's message is printed,\n"
        "with the code's name in brackets), 2 on a usage error.\n",
        out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    if (strcmp(cmd, "help") == 0 && argc > 2) {
      /* "kvik help bench" is "kvik bench --help". */
      char *sub[] = {argv[2], "--help", NULL};
      for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, argv[2]) == 0)
          return commands[i].run(2, sub);
      cli_err("unknown command '%s'", argv[2]);
      return CLI_USAGE;
    }
    usage(stdout);
    return CLI_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    /* The tool's own version is the header it was built with; the library's is what runs. */
    printf("kvik %s (libkvik %s)\n", KVIK_VERSION_STRING, kvik_version());
    return CLI_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, cmd) == 0)
      return commands[i].run(argc - 1, argv + 1);
  /* kvik bench runs this program again for its one-shot reads; not a user command. */
  if (strcmp(cmd, "__oneshot") == 0)
    return cmd_bench_oneshot(argc - 1, argv + 1);
  cli_err("unknown command '%s' (try 'kvik --help')", cmd);
  return CLI_USAGE;
}
