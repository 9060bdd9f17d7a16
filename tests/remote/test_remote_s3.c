/* S3 against moto's server with SigV4 checking on: objects read through s3:// URLs (with
 * AWS_ENDPOINT_URL), path-style URLs and presigned URLs; keys that need percent-encoding;
 * wrong credentials and unknown keys named as 403 and 404; no secret in any message or log. */
#include "common.h"

#include "rt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEED 21
#define OBJ (3 * MiB + 5)
#define BUCKET "kvik-bucket"
#define SPECIAL "dir/a b+c=d&e;f@g(h)!'*,$:"

static struct rt_server srv;
static char *root;
static char access_key[128], secret_key[128];
static char presigned_obj[4096];
static int moto_ok_special; /* moto before 5.2.5 mis-checks signatures of encoded keys */
static unsigned char *buf;

static void use_env_credentials(void) {
  setenv("AWS_ACCESS_KEY_ID", access_key, 1);
  setenv("AWS_SECRET_ACCESS_KEY", secret_key, 1);
  setenv("AWS_ENDPOINT_URL", srv.base, 1);
  setenv("AWS_DEFAULT_REGION", "us-east-1", 1);
  unsetenv("AWS_SESSION_TOKEN");
}

static void check_object(const char *url, const struct kvik_remote_opts *o, int type) {
  kvik_remote *r;
  int rc = kvik_remote_open(&r, url, o);
  if (rc)
    fail_msg("open %s: %d %s", url, rc, kvik_last_error());
  ASSERT_CODE(kvik_remote_type(r), type);
  ASSERT_CODE(kvik_remote_size(r), OBJ);
  memset(buf, 0xEE, OBJ);
  kvik_pool *pool;
  ASSERT_CODE(kvik_pool_create(&pool, 3), 0);
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = 256 * KiB, .pool = pool};
  kvik_future *f;
  ASSERT_CODE(kvik_remote_pread(r, buf, OBJ, 0, &io, &f), 0);
  ASSERT_CODE(kvik_future_wait(f), OBJ);
  ASSERT_PATTERN(buf, OBJ, 0, SEED, url);
  ASSERT_CODE(kvik_remote_read(r, buf, 777, 1234567), 777);
  ASSERT_PATTERN(buf, 777, 1234567, SEED, url);
  kvik_pool_destroy(pool);
  kvik_remote_close(r);
}

static void s3_urls_are_signed(void **state) {
  (void)state;
  use_env_credentials();
  check_object("s3://" BUCKET "/obj.bin", NULL, KVIK_REMOTE_S3);
  if (moto_ok_special)
    check_object("s3://" BUCKET "/" SPECIAL "obj.bin", NULL, KVIK_REMOTE_S3);
  else
    printf("NOTE: keys with special characters not checked: moto before 5.2.5 refuses even "
           "boto3's signatures for them (pip install 'moto[server]>=5.2.5')\n");
  /* Path style on the endpoint, with the type named. */
  char url[512];
  snprintf(url, sizeof url, "%s/%s/obj.bin", srv.base, BUCKET);
  struct kvik_remote_opts o = {.sz = sizeof o, .type = KVIK_REMOTE_S3};
  check_object(url, &o, KVIK_REMOTE_S3);
  /* Credentials and endpoint in the options instead of the environment. */
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_ENDPOINT_URL");
  struct kvik_remote_opts o2 = {.sz = sizeof o2,
                                .type = KVIK_REMOTE_S3,
                                .endpoint = srv.base,
                                .access_key_id = access_key,
                                .secret_access_key = secret_key};
  check_object("s3://" BUCKET "/obj.bin", &o2, KVIK_REMOTE_S3);
  /* Unsigned requests are refused by this server: S3_PUBLIC (chosen by AUTO without
   * credentials) gets a 403. */
  setenv("AWS_ENDPOINT_URL", srv.base, 1);
  kvik_remote *r;
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", NULL), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 403");
}

static void wrong_credentials_and_unknown_keys_are_named(void **state) {
  (void)state;
  use_env_credentials();
  kvik_remote *r;
  struct kvik_remote_opts o = {.sz = sizeof o, .secret_access_key = "WRONGSECRET0123"};
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", &o), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 403");
  assert_null(strstr(kvik_last_error(), "WRONGSECRET0123"));
  /* With the size given the GET is refused, and S3's error code is named. */
  o.size = OBJ;
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", &o), 0);
  memset(buf, 0xEE, 100);
  ASSERT_CODE(kvik_remote_read(r, buf, 100, 0), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 403");
  ASSERT_CONTAINS(kvik_last_error(), "SignatureDoesNotMatch");
  assert_null(strstr(kvik_last_error(), "WRONGSECRET0123"));
  ASSERT_FILLED(buf, 100, 0xEE, "buffer after a 403");
  kvik_remote_close(r);
  /* An unknown access key. */
  struct kvik_remote_opts o2 = {.sz = sizeof o2, .access_key_id = "AKIAUNKNOWN000000000"};
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", &o2), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 403");
  /* Unknown key and unknown bucket. */
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/no-such-key", NULL), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 404");
  ASSERT_CONTAINS(kvik_last_error(), "no-such-key");
  ASSERT_CODE(kvik_remote_open(&r, "s3://no-such-bucket-kvik/obj.bin", NULL), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 404");
  struct kvik_remote_opts sized = {.sz = sizeof sized, .size = 10};
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/no-such-key", &sized), 0);
  ASSERT_CODE(kvik_remote_read(r, buf, 10, 0), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "NoSuchKey");
  kvik_remote_close(r);
}

static void no_secret_in_verbose_logs(void **state) {
  (void)state;
  use_env_credentials();
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_REMOTE_VERBOSE, 1), 0);
  rt_log_capture(KVIK_LOG_TRACE);
  kvik_remote *r;
  ASSERT_CODE(kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", NULL), 0);
  ASSERT_CODE(kvik_remote_read(r, buf, 1000, 0), 1000);
  kvik_remote_close(r);
  /* A session token is sent as x-amz-security-token (moto refuses it with an IAM user's key,
   * which is fine here: what matters is that it never shows). */
  setenv("AWS_SESSION_TOKEN", "SESSIONTOKEN0123456789", 1);
  int rc = kvik_remote_open(&r, "s3://" BUCKET "/obj.bin", NULL);
  if (rc == 0)
    kvik_remote_close(r);
  const char *err = rc ? kvik_last_error() : "";
  kvik_set_log(NULL, NULL, KVIK_LOG_OFF);
  kvik_config_set_u64(KVIK_CFG_REMOTE_VERBOSE, 0);
  unsetenv("AWS_SESSION_TOKEN");
  ASSERT_CONTAINS(rt_log_text, "curl > GET /" BUCKET "/obj.bin");
  ASSERT_CONTAINS(rt_log_text, "Authorization: ***");
  ASSERT_CONTAINS(rt_log_text, "x-amz-security-token: ***");
  const char *secrets[] = {secret_key, "SESSIONTOKEN0123456789", "Signature="};
  for (size_t i = 0; i < 3; i++) {
    if (strstr(rt_log_text, secrets[i]))
      fail_msg("log holds %s:\n%s", secrets[i], rt_log_text);
    if (strstr(err, secrets[i]))
      fail_msg("error holds %s: %s", secrets[i], err);
  }
}

static void presigned_urls(void **state) {
  (void)state;
  /* moto cannot check presigned signatures while it checks header signatures (it answers 500),
   * so this part runs with its authentication off; test_remote_faults checks that a bad
   * presigned signature is refused, against the scripted server's SigV4 verifier. */
  char out[256];
  ASSERT_CODE(rt_http_post(srv.port, "/moto-api/reset-auth", "inf", out, sizeof out), 200);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  check_object(presigned_obj, NULL, KVIK_REMOTE_S3_PRESIGNED);
  ASSERT_CODE(rt_http_post(srv.port, "/moto-api/reset-auth", "0", out, sizeof out), 200);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  kvik_remote *probe;
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 1};
  if (kvik_remote_open(&probe, "http://127.0.0.1:9/x", &o) == KVIK_EUNSUPPORTED) {
    printf("SKIP remote_s3: %s\n", kvik_last_error());
    return 77;
  }
  kvik_remote_close(probe);
  char python[512], why[4096];
  if (rt_moto_start(&srv, python, sizeof python, why, sizeof why) != 0) {
    printf("SKIP remote_s3: %s\n", why);
    return 77;
  }
  printf("moto S3 server on %s (%s)\n", srv.base, python);
  root = t_mkdtemp(NULL);
  char *p = t_join(root, "obj.bin");
  t_write_pattern_file(p, OBJ, SEED);
  free(p);
  char script[1024];
  snprintf(script, sizeof script, "%s/s3_setup.py", rt_src_dir());
  static char out[1 << 16];
  char *args[] = {python, script, srv.base, BUCKET, root, NULL};
  int rc = rt_run(args, out, sizeof out);
  int mv[3] = {0, 0, 0};
  if (rc != 0 || sscanf(out, "access_key %127s\nmoto_version %d.%d.%d\nsecret_key %127s",
                        access_key, &mv[0], &mv[1], &mv[2], secret_key) != 5) {
    printf("s3_setup.py failed (exit %d): %s\n", rc, out);
    rt_stop(&srv);
    return 1;
  }
  moto_ok_special = mv[0] > 5 || (mv[0] == 5 && (mv[1] > 2 || (mv[1] == 2 && mv[2] >= 5)));
  const char *line = strstr(out, "presigned obj.bin\t");
  if (!line || sscanf(line, "presigned obj.bin\t%4095s", presigned_obj) != 1) {
    printf("s3_setup.py gave no presigned URL: %s\n", out);
    rt_stop(&srv);
    return 1;
  }
  buf = t_alloc_aligned(OBJ);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(s3_urls_are_signed),
      cmocka_unit_test(wrong_credentials_and_unknown_keys_are_named),
      cmocka_unit_test(no_secret_in_verbose_logs),
      cmocka_unit_test(presigned_urls),
  };
  rc = cmocka_run_group_tests_name("remote_s3", tests, NULL, NULL);
  rt_stop(&srv);
  t_rmtree(root);
  free(buf);
  return rc;
}
