/* Servers for the remote tests (see rt.h). */
#include "rt.h"

#include "kvik.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KVIK_REMOTE_TEST_DIR
#define KVIK_REMOTE_TEST_DIR "."
#endif

const char *rt_src_dir(void) { return KVIK_REMOTE_TEST_DIR; }

static void say(char *why, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, len, fmt, ap);
  va_end(ap);
}

bool rt_find_exe(const char *env_var, const char *name, const char *fallback, char *out,
                 size_t len) {
  const char *e = env_var ? getenv(env_var) : NULL;
  if (e && *e) {
    snprintf(out, len, "%s", e);
    return access(out, X_OK) == 0;
  }
  const char *path = getenv("PATH");
  if (path) {
    char *copy = strdup(path), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
      snprintf(out, len, "%s/%s", d, name);
      if (access(out, X_OK) == 0) {
        free(copy);
        return true;
      }
    }
    free(copy);
  }
  if (fallback && access(fallback, X_OK) == 0) {
    snprintf(out, len, "%s", fallback);
    return true;
  }
  return false;
}

static char *make_dir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/kvik-rt-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  if (!d)
    return NULL;
  chmod(d, 0755);
  return strdup(d);
}

static void rm_rf(const char *dir) {
  if (!dir)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    execlp("rm", "rm", "-rf", dir, (char *)NULL);
    _exit(127);
  }
  if (pid > 0)
    waitpid(pid, NULL, 0);
}

/* Forks and execs argv with stdout and stderr going to log; the child dies with us. */
static pid_t spawn(char *const argv[], const char *log) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    _exit(1);
  setpgid(0, 0);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  int nul = open("/dev/null", O_RDONLY);
  if (nul >= 0) {
    dup2(nul, 0);
    close(nul);
  }
  execvp(argv[0], argv);
  _exit(127);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A port that was free a moment ago (the server then binds it; a lost race is retried). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* Waits until port accepts connections while pid lives. */
static bool wait_ready(pid_t pid, int port, double timeout_s) {
  double end = now_s() + timeout_s;
  while (now_s() < end) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return false;
    if (port_open(port))
      return true;
    nap_ms(50);
  }
  return false;
}

static void tail_log(const char *log, char *why, size_t len) {
  FILE *f = fopen(log, "r");
  if (!f)
    return;
  char buf[2048];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  size_t used = strlen(why);
  snprintf(why + used, len - used, "; log: %s", buf);
}

void rt_stop(struct rt_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    double end = now_s() + 5;
    int st;
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
      if (now_s() > end) {
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        break;
      }
      nap_ms(20);
    }
    s->pid = 0;
  }
  rm_rf(s->dir);
  free(s->dir);
  s->dir = NULL;
}

/* cert and key: PEM files for "listen ... ssl", or NULL for plain HTTP. */
static int nginx_start(struct rt_server *s, const char *www, const char *cert, const char *key,
                       char *why, size_t why_len) {
  memset(s, 0, sizeof *s);
  char nginx[512];
  if (!rt_find_exe("KVIK_TEST_NGINX", "nginx", "/usr/sbin/nginx", nginx, sizeof nginx)) {
    say(why, why_len, "nginx not found (apt-get install nginx-light, or set KVIK_TEST_NGINX)");
    return -1;
  }
  for (int attempt = 0; attempt < 5; attempt++) {
    s->dir = make_dir();
    if (!s->dir) {
      say(why, why_len, "mkdtemp: %s", strerror(errno));
      return -1;
    }
    s->port = free_port();
    char conf[1024], log[1024], text[4096], tls[2200] = "";
    if (cert)
      snprintf(tls, sizeof tls, " ssl; ssl_certificate %s; ssl_certificate_key %s", cert, key);
    snprintf(conf, sizeof conf, "%s/nginx.conf", s->dir);
    snprintf(log, sizeof log, "%s/stderr.log", s->dir);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(text, sizeof text,
             "daemon off;\n"
             "master_process on;\n"
             "worker_processes %ld;\n"
             "%s"
             "pid %s/nginx.pid;\n"
             "error_log %s/error.log warn;\n"
             "events { worker_connections 1024; }\n"
             "http {\n"
             "  access_log off;\n"
             "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
             "  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
             "  sendfile on; tcp_nopush on; keepalive_requests 1000000;\n"
             "  keepalive_timeout 120s;\n"
             "  default_type application/octet-stream;\n"
             "  server { listen 127.0.0.1:%d%s; root %s; location / { }\n"
             "           location = /nginx_status { stub_status; } }\n"
             "}\n",
             ncpu > 0 ? (ncpu > 16 ? 16 : ncpu) : 2, geteuid() == 0 ? "user root;\n" : "", s->dir,
             s->dir, s->dir, s->dir, s->dir, s->dir, s->dir, s->port, tls, www);
    FILE *f = fopen(conf, "w");
    if (!f) {
      say(why, why_len, "cannot write %s", conf);
      rt_stop(s);
      return -1;
    }
    fputs(text, f);
    fclose(f);
    char elog[1100];
    snprintf(elog, sizeof elog, "%s/error.log", s->dir);
    char *argv[] = {nginx, "-p", s->dir, "-e", elog, "-c", conf, NULL};
    s->pid = spawn(argv, log);
    if (s->pid > 0 && wait_ready(s->pid, s->port, 10)) {
      snprintf(s->base, sizeof s->base, "%s://127.0.0.1:%d", cert ? "https" : "http", s->port);
      return 0;
    }
    say(why, why_len, "nginx did not start on port %d", s->port);
    tail_log(elog, why, why_len);
    rt_stop(s);
  }
  return -1;
}

int rt_nginx_start(struct rt_server *s, const char *www, char *why, size_t why_len) {
  return nginx_start(s, www, NULL, NULL, why, why_len);
}

int rt_nginx_start_tls(struct rt_server *s, const char *www, const char *cert, const char *key,
                       char *why, size_t why_len) {
  return nginx_start(s, www, cert, key, why, why_len);
}

static bool python_ok(const char *py, const char *code) {
  char *argv[] = {(char *)py, "-c", (char *)code, NULL};
  char out[64];
  return rt_run(argv, out, sizeof out) == 0;
}

int rt_scripted_start(struct rt_server *s, const char *root, const char *const *extra, char *why,
                      size_t why_len) {
  memset(s, 0, sizeof *s);
  char py[512];
  if (!rt_find_exe("KVIK_TEST_PYTHON", "python3", NULL, py, sizeof py)) {
    say(why, why_len, "python3 not found (apt-get install python3, or set KVIK_TEST_PYTHON)");
    return -1;
  }
  s->dir = make_dir();
  if (!s->dir) {
    say(why, why_len, "mkdtemp: %s", strerror(errno));
    return -1;
  }
  char script[1024], portfile[1024], log[1024];
  snprintf(script, sizeof script, "%s/scripted_server.py", rt_src_dir());
  snprintf(portfile, sizeof portfile, "%s/port", s->dir);
  snprintf(log, sizeof log, "%s/server.log", s->dir);
  char *argv[32] = {py, script, "--root", (char *)root, "--port-file", portfile};
  int n = 6;
  for (; extra && *extra && n < 30; extra++)
    argv[n++] = (char *)*extra;
  argv[n] = NULL;
  s->pid = spawn(argv, log);
  double end = now_s() + 15;
  while (now_s() < end) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &s->port);
      fclose(f);
      if (ok == 1 && wait_ready(s->pid, s->port, 5)) {
        snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
        return 0;
      }
      break;
    }
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      s->pid = 0;
      break;
    }
    nap_ms(50);
  }
  say(why, why_len, "scripted server did not start");
  tail_log(log, why, why_len);
  rt_stop(s);
  return -1;
}

int rt_moto_start(struct rt_server *s, char *python, size_t python_len, char *why, size_t why_len) {
  memset(s, 0, sizeof *s);
  const char *check = "import moto.server, boto3";
  bool found = false;
  const char *vars[] = {"KVIK_TEST_MOTO_PYTHON", "KVIK_TEST_PYTHON", NULL};
  for (const char **v = vars; *v && !found; v++)
    if (getenv(*v) && *getenv(*v) && rt_find_exe(*v, "python3", NULL, python, python_len))
      found = python_ok(python, check);
  if (!found && rt_find_exe(NULL, "python3", NULL, python, python_len))
    found = python_ok(python, check);
  if (!found) {
    say(why, why_len,
        "no python with moto and boto3 (pip install 'moto[server]' boto3, or set "
        "KVIK_TEST_MOTO_PYTHON)");
    return -1;
  }
  for (int attempt = 0; attempt < 5; attempt++) {
    s->dir = make_dir();
    if (!s->dir) {
      say(why, why_len, "mkdtemp: %s", strerror(errno));
      return -1;
    }
    s->port = free_port();
    char port[16], log[1024];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/moto.log", s->dir);
    char *argv[] = {python, "-m", "moto.server", "-H", "127.0.0.1", "-p", port, NULL};
    s->pid = spawn(argv, log);
    if (s->pid > 0 && wait_ready(s->pid, s->port, 30)) {
      snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
      return 0;
    }
    say(why, why_len, "moto server did not start on port %d", s->port);
    tail_log(log, why, why_len);
    rt_stop(s);
  }
  return -1;
}

static int http_request(int port, const char *method, const char *path, const char *body, char *out,
                        size_t len);

int rt_http_get(int port, const char *path, char *out, size_t len) {
  return http_request(port, "GET", path, NULL, out, len);
}

int rt_http_post(int port, const char *path, const char *body, char *out, size_t len) {
  return http_request(port, "POST", path, body, out, len);
}

static int http_request(int port, const char *method, const char *path, const char *body, char *out,
                        size_t len) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   method, path, port, body ? strlen(body) : 0, body ? body : "");
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  char buf[16384];
  size_t got = 0;
  ssize_t r;
  while (got < sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)r;
  close(fd);
  buf[got] = '\0';
  int status = -1;
  if (sscanf(buf, "HTTP/%*s %d", &status) != 1)
    return -1;
  const char *resp_body = strstr(buf, "\r\n\r\n");
  snprintf(out, len, "%s", resp_body ? resp_body + 4 : "");
  return status;
}

int rt_run(char *const argv[], char *out, size_t len) {
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 1);
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0)
      dup2(nul, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  size_t got = 0;
  ssize_t r;
  char sink[256];
  while ((r = read(p[0], got + 1 < len ? out + got : sink,
                   got + 1 < len ? len - 1 - got : sizeof sink)) > 0)
    if (got + 1 < len)
      got += (size_t)r;
  close(p[0]);
  if (len)
    out[got < len - 1 ? got : len - 1] = '\0';
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Guards rt_log_text and log_len: kvik may log from several workers at once. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
char rt_log_text[1 << 20];
static size_t log_len;

static void log_collect(int level, const char *msg, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&log_lock);
  size_t n = strlen(msg);
  if (log_len + n + 2 < sizeof rt_log_text) {
    memcpy(rt_log_text + log_len, msg, n);
    log_len += n;
    rt_log_text[log_len++] = '\n';
    rt_log_text[log_len] = '\0';
  }
  pthread_mutex_unlock(&log_lock);
}

void rt_log_capture(int min_level) {
  pthread_mutex_lock(&log_lock);
  log_len = 0;
  rt_log_text[0] = '\0';
  pthread_mutex_unlock(&log_lock);
  kvik_set_log(log_collect, NULL, min_level);
}
