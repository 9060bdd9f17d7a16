/* Helpers for kvik's remote tests: real servers started by the tests on 127.0.0.1, on ports
 * chosen at run time, stopped at exit (and killed with the test process if it dies: they get
 * PR_SET_PDEATHSIG). A test binary whose server is missing exits 77 (skip) with the reason.
 *
 * Environment (all optional):
 *   KVIK_TEST_NGINX        the nginx binary (default: nginx in PATH, then /usr/sbin/nginx)
 *   KVIK_TEST_PYTHON       python3 for the scripted server (default: python3 in PATH)
 *   KVIK_TEST_MOTO_PYTHON  a python that can import moto.server and boto3 (default:
 *                          KVIK_TEST_PYTHON, then python3)
 */
#ifndef KVIK_TEST_RT_H
#define KVIK_TEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct rt_server {
  pid_t pid;
  int port;
  char *dir;      /* scratch directory of the server (config, logs), removed on stop */
  char base[128]; /* "http://127.0.0.1:PORT" (https:// for rt_nginx_start_tls) */
};

/* Finds an executable: the value of env_var if set, else name in PATH, else fallback (may be
 * NULL). Writes the path to out. Returns true if found. */
bool rt_find_exe(const char *env_var, const char *name, const char *fallback, char *out,
                 size_t len);

/* Starts nginx serving www (a directory) with byte ranges. Returns 0, or -1 with why. */
int rt_nginx_start(struct rt_server *s, const char *www, char *why, size_t why_len);
/* The same over TLS ("listen 127.0.0.1:PORT ssl") with the PEM files cert and key; base is then
 * "https://127.0.0.1:PORT". */
int rt_nginx_start_tls(struct rt_server *s, const char *www, const char *cert, const char *key,
                       char *why, size_t why_len);
/* Starts tests/remote/scripted_server.py over root, with extra arguments (NULL-terminated
 * list, may be NULL). Returns 0, or -1 with why. */
int rt_scripted_start(struct rt_server *s, const char *root, const char *const *extra, char *why,
                      size_t why_len);
/* Starts moto's S3 server. Returns 0, or -1 with why. python receives the interpreter used. */
int rt_moto_start(struct rt_server *s, char *python, size_t python_len, char *why, size_t why_len);
/* Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
void rt_stop(struct rt_server *s);

/* A minimal HTTP/1.0 GET on 127.0.0.1:port (no libcurl): writes the body to out (truncated,
 * NUL-terminated). Returns the status code or -1. */
int rt_http_get(int port, const char *path, char *out, size_t len);

/* The same with POST and a text/plain body. */
int rt_http_post(int port, const char *path, const char *body, char *out, size_t len);

/* Runs argv, waits, returns the exit status (or -1); stdout goes to out (NUL-terminated). */
int rt_run(char *const argv[], char *out, size_t len);

/* Directory of this test's sources (scripted_server.py, s3_setup.py). */
const char *rt_src_dir(void);

/* Every line kvik logs while capturing (up to 1 MiB), for assertions on rt_log_text. */
extern char rt_log_text[1 << 20];
/* Clears rt_log_text and makes it kvik's log sink for messages of min_level and above. */
void rt_log_capture(int min_level);

#endif
