/* Remote reads over TLS against nginx on loopback, with a throwaway CA made by the openssl
 * command at test time: the CA found through CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR
 * (read by kvik_remote_open, per handle); an unknown CA and a certificate for another host name
 * fail verification with a message that says so, and no data comes back.
 *
 * The cases run in one process, in order, so the failures also check that a connection or TLS
 * session verified under one CA setting is not reused by a handle without it. */
#include "common.h"

#include "rt.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct rt_server srv;   /* certificate for IP:127.0.0.1 and DNS:localhost */
static struct rt_server wrong; /* certificate for DNS:localhost only */
static char *tmp;              /* CA, keys, certificates, the hashed CA directory */
static char *www;              /* the served file */
static char openssl[512];
static char ca_pem[1024], ca_dir[1024];
static bool have_ca_dir;
static char why_no_ca_dir[1200];

#define SIZE (1 * MiB + 7)
#define SEED 11

static void ca_env(const char *bundle, const char *file, const char *dir) {
  unsetenv("CURL_CA_BUNDLE");
  unsetenv("SSL_CERT_FILE");
  unsetenv("SSL_CERT_DIR");
  if (bundle)
    setenv("CURL_CA_BUNDLE", bundle, 1);
  if (file)
    setenv("SSL_CERT_FILE", file, 1);
  if (dir)
    setenv("SSL_CERT_DIR", dir, 1);
}

/* Opens base/f.bin and checks size, a blocking read and a parallel read, byte for byte. */
static void read_ok(const char *base) {
  char url[256];
  snprintf(url, sizeof url, "%s/f.bin", base);
  kvik_remote *r = NULL;
  int rc = kvik_remote_open(&r, url, NULL);
  if (rc)
    fail_msg("open %s: %d %s", url, rc, kvik_last_error());
  assert_int_equal(kvik_remote_size(r), SIZE);
  unsigned char *buf = malloc(SIZE + 64);
  assert_non_null(buf);

  memset(buf, 0xEE, SIZE + 64);
  ssize_t n = kvik_remote_read(r, buf, SIZE, 0);
  if (n != (ssize_t)SIZE)
    fail_msg("read %s: %zd %s", url, n, kvik_last_error());
  ASSERT_PATTERN(buf, SIZE, 0, SEED, "kvik_remote_read over TLS");
  ASSERT_FILLED(buf + SIZE, 64, 0xEE, "after kvik_remote_read");

  memset(buf, 0xEE, SIZE + 64);
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = 64 * KiB};
  kvik_future *f = NULL;
  rc = kvik_remote_pread(r, buf, SIZE - 5, 5, &io, &f);
  if (rc)
    fail_msg("pread %s: %d %s", url, rc, kvik_last_error());
  n = kvik_future_wait(f);
  if (n != (ssize_t)(SIZE - 5))
    fail_msg("pread %s: %zd %s", url, n, kvik_last_error());
  ASSERT_PATTERN(buf, SIZE - 5, 5, SEED, "kvik_remote_pread over TLS");
  ASSERT_FILLED(buf + SIZE - 5, 64, 0xEE, "after kvik_remote_pread");

  free(buf);
  assert_int_equal(kvik_remote_close(r), 0);
}

/* Checks that open fails verification with a message naming it, and that reads through a
 * handle opened with the size given (no request at open) fail without returning data. */
static void verify_fails(const char *base, const char *detail) {
  char url[256];
  snprintf(url, sizeof url, "%s/f.bin", base);
  kvik_remote *r = NULL;
  int rc = kvik_remote_open(&r, url, NULL);
  if (rc == 0) {
    kvik_remote_close(r);
    fail_msg("open %s succeeded without a trusted certificate", url);
  }
  assert_int_equal(rc, KVIK_EHTTP);
  const char *err = kvik_last_error();
  printf("    open %s: %s\n", url, err);
  /* libcurl's text for CURLE_PEER_FAILED_VERIFICATION, then its detail in parentheses. */
  if (!strstr(err, "SSL peer certificate") || !strstr(err, "not OK") || !strstr(err, detail) ||
      !strstr(err, "127.0.0.1"))
    fail_msg("open %s: message does not name certificate verification (%s): %s", url, detail, err);

  struct kvik_remote_opts o = {.sz = sizeof o, .size = SIZE};
  assert_int_equal(kvik_remote_open(&r, url, &o), 0);
  unsigned char *buf = malloc(SIZE);
  assert_non_null(buf);
  memset(buf, 0xEE, SIZE);
  ssize_t n = kvik_remote_read(r, buf, SIZE, 0);
  if (n >= 0)
    fail_msg("read %s returned %zd without a trusted certificate", url, n);
  if (!strstr(kvik_last_error(), detail))
    fail_msg("read %s: %s", url, kvik_last_error());
  ASSERT_FILLED(buf, SIZE, 0xEE, "buffer after a refused read");

  struct kvik_io_opts io = {.sz = sizeof io, .task_size = 256 * KiB};
  kvik_future *f = NULL;
  assert_int_equal(kvik_remote_pread(r, buf, SIZE, 0, &io, &f), 0);
  n = kvik_future_wait(f);
  if (n >= 0)
    fail_msg("pread %s returned %zd without a trusted certificate", url, n);
  if (!strstr(kvik_last_error(), detail))
    fail_msg("pread %s: %s", url, kvik_last_error());
  ASSERT_FILLED(buf, SIZE, 0xEE, "buffer after a refused pread");
  free(buf);
  assert_int_equal(kvik_remote_close(r), 0);
}

static void ca_from_curl_ca_bundle(void **state) {
  (void)state;
  ca_env(ca_pem, NULL, NULL);
  read_ok(srv.base);
}

static void ca_from_ssl_cert_file(void **state) {
  (void)state;
  ca_env(NULL, ca_pem, NULL);
  read_ok(srv.base);
}

static void ca_from_ssl_cert_dir(void **state) {
  (void)state;
  if (!have_ca_dir) {
    printf("SKIP ca_from_ssl_cert_dir: %s\n", why_no_ca_dir);
    skip();
  }
  ca_env(NULL, NULL, ca_dir);
  read_ok(srv.base);
}

static void unknown_ca_fails(void **state) {
  (void)state;
  ca_env(NULL, NULL, NULL);
  verify_fails(srv.base, "unable to get local issuer certificate");
}

static void wrong_host_name_fails(void **state) {
  (void)state;
  ca_env(ca_pem, NULL, NULL);
  verify_fails(wrong.base, "subject name");
}

/* ---- setup: the CA, the certificates and the servers ------------------------------------ */

/* Runs openssl with args (NULL-terminated); on failure writes the command to why. */
static bool ossl(char *why, size_t why_len, ...) {
  char *argv[40] = {openssl};
  int n = 1;
  va_list ap;
  va_start(ap, why_len);
  for (char *a; n < 39 && (a = va_arg(ap, char *)) != NULL;)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  char out[256];
  if (rt_run(argv, out, sizeof out) == 0)
    return true;
  size_t used = (size_t)snprintf(why, why_len, "failed:");
  for (int i = 0; i < n && used < why_len; i++)
    used += (size_t)snprintf(why + used, why_len - used, " %s", argv[i]);
  return false;
}

static bool write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f)
    return false;
  fputs(text, f);
  return fclose(f) == 0;
}

/* A server key and a certificate for san, signed by the CA in tmp. */
static bool make_server_cert(const char *name, const char *san, char *why, size_t why_len) {
  char key[1100], csr[1100], crt[1100], ext[1100], ca_key[1100], subj[128], text[512];
  snprintf(key, sizeof key, "%s/%s.key", tmp, name);
  snprintf(csr, sizeof csr, "%s/%s.csr", tmp, name);
  snprintf(crt, sizeof crt, "%s/%s.pem", tmp, name);
  snprintf(ext, sizeof ext, "%s/%s.ext", tmp, name);
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", tmp);
  snprintf(subj, sizeof subj, "/CN=kvik test %s", name);
  snprintf(text, sizeof text,
           "basicConstraints = critical, CA:FALSE\n"
           "keyUsage = critical, digitalSignature, keyEncipherment\n"
           "extendedKeyUsage = serverAuth\n"
           "subjectAltName = %s\n",
           san);
  if (!write_text(ext, text)) {
    snprintf(why, why_len, "cannot write %s", ext);
    return false;
  }
  return ossl(why, why_len, "req", "-new", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", subj,
              (char *)NULL) &&
         ossl(why, why_len, "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
              "-set_serial", name[0] == 'g' ? "1001" : "1002", "-days", "2", "-sha256", "-extfile",
              ext, "-out", crt, (char *)NULL);
}

/* Copies the CA into ca_dir and hashes it there (openssl rehash, else c_rehash). */
static void make_ca_dir(void) {
  snprintf(ca_dir, sizeof ca_dir, "%s/certs", tmp);
  char copy[1100];
  snprintf(copy, sizeof copy, "%s/kvik-test-ca.pem", ca_dir);
  FILE *in = fopen(ca_pem, "r");
  char text[8192];
  size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
  if (in)
    fclose(in);
  text[n] = '\0';
  if (mkdir(ca_dir, 0755) != 0 || n == 0 || !write_text(copy, text)) {
    snprintf(why_no_ca_dir, sizeof why_no_ca_dir, "cannot copy the CA to %s", ca_dir);
    return;
  }
  char out[256], c_rehash[512];
  char *rehash[] = {openssl, "rehash", ca_dir, NULL};
  bool ran = rt_run(rehash, out, sizeof out) == 0;
  if (!ran && rt_find_exe(NULL, "c_rehash", NULL, c_rehash, sizeof c_rehash)) {
    char *argv[] = {c_rehash, ca_dir, NULL};
    ran = rt_run(argv, out, sizeof out) == 0;
  }
  /* The hashed name is HASH.0: look for it rather than trust the exit status alone. */
  DIR *d = opendir(ca_dir);
  bool hashed = false;
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    size_t l = strlen(e->d_name);
    if (l == 10 && strcmp(e->d_name + 8, ".0") == 0)
      hashed = true;
  }
  if (d)
    closedir(d);
  if (ran && hashed)
    have_ca_dir = true;
  else
    snprintf(why_no_ca_dir, sizeof why_no_ca_dir, "neither 'openssl rehash' nor c_rehash hashed %s",
             ca_dir);
}

static bool make_pki(char *why, size_t why_len) {
  char ca_key[1100];
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", tmp);
  snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", tmp);
  if (!ossl(why, why_len, "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days",
            "2", "-sha256", "-subj", "/CN=kvik throwaway test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            (char *)NULL))
    return false;
  if (!make_server_cert("good", "IP:127.0.0.1, DNS:localhost", why, why_len) ||
      !make_server_cert("wrong", "DNS:localhost", why, why_len))
    return false;
  make_ca_dir();
  return true;
}

static void cleanup(void) {
  rt_stop(&srv);
  rt_stop(&wrong);
  t_rmtree(www);
  t_rmtree(tmp);
  www = tmp = NULL;
}

static int teardown(void **state) {
  (void)state;
  cleanup();
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  kvik_remote *probe;
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 1};
  if (kvik_remote_open(&probe, "http://127.0.0.1:9/x", &o) == KVIK_EUNSUPPORTED) {
    printf("SKIP remote_tls: %s\n", kvik_last_error());
    return 77;
  }
  kvik_remote_close(probe);
  if (!rt_find_exe("KVIK_TEST_OPENSSL", "openssl", "/usr/bin/openssl", openssl, sizeof openssl)) {
    printf("SKIP remote_tls: openssl not found (apt-get install openssl, or set "
           "KVIK_TEST_OPENSSL)\n");
    return 77;
  }
  tmp = t_mkdtemp(NULL);
  www = t_mkdtemp(NULL);
  if (!tmp || !www)
    return 1;
  chmod(tmp, 0755); /* nginx workers may run as another user */
  chmod(www, 0755);
  char *file = t_join(www, "f.bin");
  t_write_pattern_file(file, SIZE, SEED);
  chmod(file, 0644);
  free(file);

  char why[4096];
  if (!make_pki(why, sizeof why)) {
    printf("FAIL remote_tls: making the test CA: %s\n", why);
    cleanup();
    return 1;
  }
  char crt[1100], key[1100];
  snprintf(crt, sizeof crt, "%s/good.pem", tmp);
  snprintf(key, sizeof key, "%s/good.key", tmp);
  if (rt_nginx_start_tls(&srv, www, crt, key, why, sizeof why) != 0) {
    printf("SKIP remote_tls: %s\n", why);
    cleanup();
    return 77;
  }
  snprintf(crt, sizeof crt, "%s/wrong.pem", tmp);
  snprintf(key, sizeof key, "%s/wrong.key", tmp);
  if (rt_nginx_start_tls(&wrong, www, crt, key, why, sizeof why) != 0) {
    printf("SKIP remote_tls: %s\n", why);
    cleanup();
    return 77;
  }
  printf("nginx on %s (cert for 127.0.0.1, localhost) and %s (cert for localhost only), CA %s\n",
         srv.base, wrong.base, ca_pem);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ca_from_curl_ca_bundle), cmocka_unit_test(ca_from_ssl_cert_file),
      cmocka_unit_test(ca_from_ssl_cert_dir),   cmocka_unit_test(unknown_ca_fails),
      cmocka_unit_test(wrong_host_name_fails),
  };
  return cmocka_run_group_tests_name("remote_tls", tests, NULL, teardown);
}
