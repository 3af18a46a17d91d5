/*
 * test_tls.c - mutual TLS (sync/tls.c) and the fleet PKI (sync/pki.c) over
 * real loopback sockets of the POSIX HAL.
 *
 * Keys and certificates are made when the test runs. Client and server run
 * in this one thread, each stepped until it would block, with hal_net_wait
 * in between; every loop is bounded so a hang fails instead of running on.
 * The server's HAL is the POSIX HAL with its wall clock and its log wrapped,
 * so a test can move the server's clock and read what it logged.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "hal_posix.h"
#include "pki.h"
#include "tls.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef"
#define HUB_NAME "satchel-hub"
#define STEPS_MAX 400         /* handshake / transfer loop iterations */
#define WAIT_MS 100           /* hal_net_wait timeout per iteration */
#define FAILED_SIDE_LINGER 5  /* iterations a failed side keeps its socket */
#define LOG_BYTES 8192
#define DAY_S 86400LL
#define YEAR_S (365LL * DAY_S)

struct pem {
    char crt[PKI_PEM_BYTES_MAX];
    char key[PKI_PEM_BYTES_MAX];
};

/* Everything the tests share: made once by the group set-up. */
struct world {
    char dir[64];
    struct hal base; /* the POSIX HAL as opened */
    struct hal srv;  /* base with a shifted wall clock and a captured log */
    struct hal cli;  /* base with its own shifted wall clock */
    int64_t now_s;
    struct pem ca, other_ca;
    struct pem hub, hub_other_ca, dev, dev_other_ca, dev_expired, dev_future;
};

static struct world *W;

/* ---- HAL wrappers ----------------------------------------------------------- */

static int64_t srv_clock_offset_ms;
static int64_t cli_clock_offset_ms;
static char srv_log[LOG_BYTES];

static int64_t (*posix_wall_ms)(void *ctx);
static void (*posix_log)(void *ctx, enum hal_log_level level, const char *msg);

static int64_t srv_wall_ms(void *ctx)
{
    return posix_wall_ms(ctx) + srv_clock_offset_ms;
}

static int64_t cli_wall_ms(void *ctx)
{
    return posix_wall_ms(ctx) + cli_clock_offset_ms;
}

static void srv_log_capture(void *ctx, enum hal_log_level level, const char *msg)
{
    size_t used = strlen(srv_log);
    snprintf(srv_log + used, sizeof srv_log - used, "%s\n", msg);
    posix_log(ctx, level, msg);
}

/* ---- the admit callback ------------------------------------------------------ */

struct admission {
    int revoked;
    int calls;
    char last_cn[TLS_PEER_CN_BYTES_MAX + 1];
};

static struct admission admission;

static int admit(void *arg, const char *peer_cn)
{
    struct admission *a = arg;
    a->calls++;
    snprintf(a->last_cn, sizeof a->last_cn, "%s", peer_cn);
    return a->revoked ? 1 : 0;
}

/* ---- PKI helpers --------------------------------------------------------------- */

static void make_ca(const struct hal *h, const char *cn, int64_t from, int64_t to,
                    struct pem *out)
{
    assert_int_equal(pki_key_generate(h, out->key, sizeof out->key), SAT_OK);
    assert_int_equal(pki_ca_self_sign(h, out->key, cn, 1, from, to, out->crt, sizeof out->crt),
                     SAT_OK);
}

static void make_cert(const struct hal *h, const struct pem *ca, const char *cn,
                      enum pki_usage usage, int64_t from, int64_t to, struct pem *out)
{
    static uint64_t serial = 100;
    assert_int_equal(pki_key_generate(h, out->key, sizeof out->key), SAT_OK);
    assert_int_equal(pki_cert_issue(h, ca->crt, ca->key, out->key, cn, usage, ++serial, from, to,
                                    out->crt, sizeof out->crt),
                     SAT_OK);
}

static int group_setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    int64_t now;
    (void)state;
    if (w == NULL)
        return -1;
    snprintf(w->dir, sizeof w->dir, "/tmp/satchel-tls-XXXXXX");
    if (!mkdtemp(w->dir) || hal_posix_open(&w->base, w->dir) != SAT_OK)
        return -1;
    posix_wall_ms = w->base.clock_wall_ms;
    posix_log = w->base.log;
    w->srv = w->base;
    w->srv.clock_wall_ms = srv_wall_ms;
    w->srv.log = srv_log_capture;
    w->cli = w->base;
    w->cli.clock_wall_ms = cli_wall_ms;
    hal_posix_set_log_level(&w->base, HAL_LOG_ERROR); /* captured, not printed */

    now = w->now_s = hal_clock_wall_ms(&w->base) / 1000;
    make_ca(&w->base, "Satchel test fleet CA", now - DAY_S, now + 20 * YEAR_S, &w->ca);
    make_ca(&w->base, "Some other CA", now - DAY_S, now + 20 * YEAR_S, &w->other_ca);
    make_cert(&w->base, &w->ca, HUB_NAME, PKI_USAGE_SERVER, now - DAY_S, now + 5 * YEAR_S,
              &w->hub);
    make_cert(&w->base, &w->other_ca, HUB_NAME, PKI_USAGE_SERVER, now - DAY_S,
              now + 5 * YEAR_S, &w->hub_other_ca);
    make_cert(&w->base, &w->ca, DEVICE_ID, PKI_USAGE_CLIENT, now - DAY_S, now + 5 * YEAR_S,
              &w->dev);
    make_cert(&w->base, &w->other_ca, DEVICE_ID, PKI_USAGE_CLIENT, now - DAY_S,
              now + 5 * YEAR_S, &w->dev_other_ca);
    make_cert(&w->base, &w->ca, DEVICE_ID, PKI_USAGE_CLIENT, now - 2 * YEAR_S, now - YEAR_S,
              &w->dev_expired);
    make_cert(&w->base, &w->ca, DEVICE_ID, PKI_USAGE_CLIENT, now + YEAR_S, now + 2 * YEAR_S,
              &w->dev_future);
    W = w;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;
    hal_posix_close(&W->base);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", W->dir);
    if (system(cmd) != 0)
        return -1;
    free(W);
    W = NULL;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    srv_clock_offset_ms = 0;
    cli_clock_offset_ms = 0;
    srv_log[0] = '\0';
    memset(&admission, 0, sizeof admission);
    return 0;
}

/* ---- a loopback link ------------------------------------------------------------ */

struct link {
    hal_sock *listener;
    hal_sock *cli;
    hal_sock *srv;
};

static void link_open(struct link *l)
{
    const struct hal *h = &W->base;
    uint16_t port = 0;
    int ret = SAT_ERR_WOULD_BLOCK;
    memset(l, 0, sizeof *l);
    assert_int_equal(hal_net_listen(h, "127.0.0.1", 0, &l->listener), SAT_OK);
    assert_int_equal(hal_net_local_port(h, l->listener, &port), SAT_OK);
    assert_int_equal(hal_net_connect(h, "127.0.0.1", port, &l->cli), SAT_OK);
    for (int i = 0; i < STEPS_MAX && ret == SAT_ERR_WOULD_BLOCK; i++) {
        unsigned want = HAL_NET_READABLE;
        unsigned ready = 0;
        ret = hal_net_accept(h, l->listener, &l->srv);
        if (ret == SAT_ERR_WOULD_BLOCK)
            (void)hal_net_wait(h, &l->listener, &want, &ready, 1, WAIT_MS);
    }
    assert_int_equal(ret, SAT_OK);
}

static void link_close(struct link *l)
{
    hal_sock **socks[3] = { &l->listener, &l->cli, &l->srv };
    for (int i = 0; i < 3; i++) {
        if (*socks[i] != NULL)
            hal_net_close(&W->base, *socks[i]);
        *socks[i] = NULL;
    }
}

/* ---- driving two handshakes ------------------------------------------------------ */

/* One end of a handshake: tls.c's or a raw Mbed TLS client's. */
struct side {
    int (*step)(void *arg);
    unsigned (*wants)(void *arg);
    void *arg;
    hal_sock **sock;
    int ret;
};

static int tls_step(void *arg)
{
    return tls_conn_handshake(arg);
}

static unsigned tls_wants(void *arg)
{
    return tls_conn_wants(arg);
}

/* Steps both ends until neither would block. An end that failed keeps its
 * socket open a few rounds (so its alert gets read), then closes it as a
 * real peer would, so the other end cannot wait for ever. */
static void drive(struct side *a, struct side *b)
{
    struct side *sides[2] = { a, b };
    int failed_for[2] = { 0, 0 };
    a->ret = b->ret = SAT_ERR_WOULD_BLOCK;
    for (int i = 0; i < STEPS_MAX; i++) {
        hal_sock *socks[2];
        unsigned want[2];
        unsigned ready[2];
        size_t n = 0;
        for (int k = 0; k < 2; k++) {
            struct side *s = sides[k];
            if (s->ret == SAT_ERR_WOULD_BLOCK)
                s->ret = s->step(s->arg);
            if (s->ret != SAT_OK && s->ret != SAT_ERR_WOULD_BLOCK && *s->sock != NULL &&
                ++failed_for[k] > FAILED_SIDE_LINGER) {
                hal_net_close(&W->base, *s->sock);
                *s->sock = NULL;
            }
        }
        for (int k = 0; k < 2; k++) {
            if (sides[k]->ret == SAT_ERR_WOULD_BLOCK) {
                socks[n] = *sides[k]->sock;
                want[n] = sides[k]->wants(sides[k]->arg);
                n++;
            }
        }
        if (n == 0)
            return;
        (void)hal_net_wait(&W->base, socks, want, ready, n, WAIT_MS);
    }
    fail_msg("handshake still running after %d steps", STEPS_MAX);
}

/* A tls.c client and server over a fresh link. */
struct pair {
    struct link link;
    struct tls_config *ccfg;
    struct tls_config *scfg;
    struct tls_conn *c;
    struct tls_conn *s;
    int cret;
    int sret;
};

static void pair_configs(struct pair *p, const struct pem *client, const struct pem *server)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(tls_config_client(&p->ccfg, &W->cli, W->ca.crt, client->crt, client->key),
                     SAT_OK);
    assert_int_equal(tls_config_server(&p->scfg, &W->srv, W->ca.crt, server->crt, server->key,
                                       admit, &admission),
                     SAT_OK);
}

/* Connects and runs one handshake on the pair's configs. */
static void pair_handshake(struct pair *p, const struct tls_session *resume)
{
    struct side cs = { tls_step, tls_wants, NULL, &p->link.cli, 0 };
    struct side ss = { tls_step, tls_wants, NULL, &p->link.srv, 0 };
    link_open(&p->link);
    assert_int_equal(tls_conn_new(&p->c, p->ccfg, p->link.cli, resume), SAT_OK);
    assert_int_equal(tls_conn_new(&p->s, p->scfg, p->link.srv, NULL), SAT_OK);
    cs.arg = p->c;
    ss.arg = p->s;
    drive(&cs, &ss);
    p->cret = cs.ret;
    p->sret = ss.ret;
}

static void pair_disconnect(struct pair *p)
{
    tls_conn_free(p->c);
    tls_conn_free(p->s);
    p->c = p->s = NULL;
    link_close(&p->link);
}

static void pair_free(struct pair *p)
{
    pair_disconnect(p);
    tls_config_free(p->ccfg);
    tls_config_free(p->scfg);
}

/* Sends n patterned bytes from one end and checks they all arrive. */
static void transfer(struct tls_conn *from, hal_sock *from_sock, struct tls_conn *to,
                     hal_sock *to_sock, size_t n, unsigned seed)
{
    uint8_t *out = malloc(n);
    uint8_t *in = malloc(n);
    size_t sent = 0;
    size_t got = 0;
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i * 7u + seed);
    for (int i = 0; i < STEPS_MAX * 10 && got < n; i++) {
        hal_sock *socks[2];
        unsigned want[2];
        unsigned ready[2];
        size_t k;
        int ret;
        while (sent < n) {
            ret = tls_conn_send(from, out + sent, n - sent, &k);
            if (ret == SAT_ERR_WOULD_BLOCK)
                break;
            assert_int_equal(ret, SAT_OK);
            assert_true(k > 0 && k <= n - sent);
            sent += k;
        }
        while (got < n) {
            ret = tls_conn_recv(to, in + got, n - got, &k);
            if (ret == SAT_ERR_WOULD_BLOCK)
                break;
            assert_int_equal(ret, SAT_OK);
            got += k;
        }
        if (got == n || tls_conn_pending(to))
            continue;
        socks[0] = to_sock;
        want[0] = HAL_NET_READABLE;
        k = 1;
        if (sent < n) {
            socks[1] = from_sock;
            want[1] = tls_conn_wants(from);
            k = 2;
        }
        (void)hal_net_wait(&W->base, socks, want, ready, k, WAIT_MS);
    }
    assert_int_equal(got, n);
    assert_memory_equal(in, out, n);
    free(out);
    free(in);
}

/* ---- a raw Mbed TLS client, for what tls.c itself would never offer -------------- */

struct raw {
    hal_sock *sock;
    unsigned want;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
};

static int raw_entropy(void *p, unsigned char *buf, size_t len)
{
    (void)p;
    return hal_entropy_fill(&W->base, buf, len) == SAT_OK ? 0 : -1;
}

static int raw_send(void *p, const unsigned char *buf, size_t len)
{
    struct raw *r = p;
    size_t sent = 0;
    int ret = hal_net_send(&W->base, r->sock, buf, len, &sent);
    if (ret == SAT_ERR_WOULD_BLOCK) {
        r->want = HAL_NET_WRITABLE;
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    return ret == SAT_OK ? (int)sent : -1;
}

static int raw_recv(void *p, unsigned char *buf, size_t len)
{
    struct raw *r = p;
    size_t got = 0;
    int ret = hal_net_recv(&W->base, r->sock, buf, len, &got);
    if (ret == SAT_ERR_WOULD_BLOCK) {
        r->want = HAL_NET_READABLE;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (ret == SAT_ERR_CLOSED)
        return 0;
    return ret == SAT_OK ? (int)got : -1;
}

static int raw_step(void *arg)
{
    struct raw *r = arg;
    int mret = mbedtls_ssl_handshake(&r->ssl);
    if (mret == MBEDTLS_ERR_SSL_WANT_READ || mret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return SAT_ERR_WOULD_BLOCK;
    return mret == 0 ? SAT_OK : SAT_ERR_TLS_HANDSHAKE;
}

static unsigned raw_wants(void *arg)
{
    return ((struct raw *)arg)->want;
}

/* A client that does not check the server, offers TLS 1.minor_max at most
 * (1.minor_max at least too), the given suites (NULL: Mbed TLS's defaults)
 * and the certificate `cert` (NULL: none). */
static void raw_init(struct raw *r, hal_sock *sock, const struct pem *cert, int minor_max,
                     const int *suites)
{
    memset(r, 0, sizeof *r);
    r->sock = sock;
    r->want = HAL_NET_WRITABLE;
    mbedtls_ctr_drbg_init(&r->drbg);
    mbedtls_x509_crt_init(&r->crt);
    mbedtls_pk_init(&r->key);
    mbedtls_ssl_config_init(&r->conf);
    mbedtls_ssl_init(&r->ssl);
    assert_int_equal(mbedtls_ctr_drbg_seed(&r->drbg, raw_entropy, NULL, NULL, 0), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&r->conf, MBEDTLS_SSL_IS_CLIENT,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_authmode(&r->conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_rng(&r->conf, mbedtls_ctr_drbg_random, &r->drbg);
    mbedtls_ssl_conf_min_version(&r->conf, MBEDTLS_SSL_MAJOR_VERSION_3, minor_max);
    mbedtls_ssl_conf_max_version(&r->conf, MBEDTLS_SSL_MAJOR_VERSION_3, minor_max);
    if (suites != NULL)
        mbedtls_ssl_conf_ciphersuites(&r->conf, suites);
    if (cert != NULL) {
        assert_int_equal(mbedtls_x509_crt_parse(&r->crt, (const unsigned char *)cert->crt,
                                                strlen(cert->crt) + 1),
                         0);
        assert_int_equal(mbedtls_pk_parse_key(&r->key, (const unsigned char *)cert->key,
                                              strlen(cert->key) + 1, NULL, 0),
                         0);
        assert_int_equal(mbedtls_ssl_conf_own_cert(&r->conf, &r->crt, &r->key), 0);
    }
    assert_int_equal(mbedtls_ssl_setup(&r->ssl, &r->conf), 0);
    mbedtls_ssl_set_bio(&r->ssl, r, raw_send, raw_recv, NULL);
}

static void raw_free(struct raw *r)
{
    mbedtls_ssl_free(&r->ssl);
    mbedtls_ssl_config_free(&r->conf);
    mbedtls_pk_free(&r->key);
    mbedtls_x509_crt_free(&r->crt);
    mbedtls_ctr_drbg_free(&r->drbg);
}

/* Runs a raw client against a tls.c server; returns the server's result. */
static int raw_against_server(const struct pem *cert, int minor_max, const int *suites)
{
    struct tls_config *scfg = NULL;
    struct tls_conn *s = NULL;
    struct link l;
    struct raw *r = malloc(sizeof *r);
    struct side cs = { raw_step, raw_wants, NULL, &l.cli, 0 };
    struct side ss = { tls_step, tls_wants, NULL, &l.srv, 0 };
    assert_non_null(r);
    assert_int_equal(tls_config_server(&scfg, &W->srv, W->ca.crt, W->hub.crt, W->hub.key, admit,
                                       &admission),
                     SAT_OK);
    link_open(&l);
    raw_init(r, l.cli, cert, minor_max, suites);
    assert_int_equal(tls_conn_new(&s, scfg, l.srv, NULL), SAT_OK);
    cs.arg = r;
    ss.arg = s;
    drive(&cs, &ss);
    assert_int_not_equal(cs.ret, SAT_OK);
    tls_conn_free(s);
    raw_free(r);
    free(r);
    link_close(&l);
    tls_config_free(scfg);
    return ss.ret;
}

static void assert_logged(const char *needle)
{
    if (strstr(srv_log, needle) == NULL)
        fail_msg("server log lacks '%s'; it holds:\n%s", needle, srv_log);
}

/* ---- PKI ------------------------------------------------------------------------------ */

static void test_pki_certificates_chain_to_the_ca(void **state)
{
    mbedtls_x509_crt ca;
    mbedtls_x509_crt dev;
    uint32_t flags = 0;
    (void)state;
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&dev);
    assert_int_equal(mbedtls_x509_crt_parse(&ca, (const unsigned char *)W->ca.crt,
                                            strlen(W->ca.crt) + 1),
                     0);
    assert_int_equal(mbedtls_x509_crt_parse(&dev, (const unsigned char *)W->dev.crt,
                                            strlen(W->dev.crt) + 1),
                     0);
    assert_true(ca.ca_istrue);
    assert_false(dev.ca_istrue);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&ca, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&dev, MBEDTLS_X509_KU_DIGITAL_SIGNATURE),
                     0);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &dev, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
                     0);
    assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(
                             &dev, MBEDTLS_OID_SERVER_AUTH,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                         0);
    assert_int_equal(mbedtls_x509_crt_verify(&dev, &ca, NULL, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(dev.subject.val.len, strlen(DEVICE_ID));
    assert_memory_equal(dev.subject.val.p, DEVICE_ID, strlen(DEVICE_ID));
    mbedtls_x509_crt_free(&dev);
    mbedtls_x509_crt_free(&ca);
}

static void test_pki_rejects_bad_input(void **state)
{
    char out[PKI_PEM_BYTES_MAX];
    char tiny[64];
    const struct hal *h = &W->base;
    int64_t now = W->now_s;
    (void)state;
    /* The other CA's key does not sign for the fleet CA. */
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->other_ca.key, W->dev.key, "x",
                                    PKI_USAGE_CLIENT, 7, now, now + DAY_S, out, sizeof out),
                     SAT_ERR_TLS_CONFIG);
    /* An end-entity certificate is not a CA. */
    assert_int_equal(pki_cert_issue(h, W->dev.crt, W->dev.key, W->hub.key, "x", PKI_USAGE_CLIENT,
                                    7, now, now + DAY_S, out, sizeof out),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->ca.key, "not a key", "x", PKI_USAGE_CLIENT,
                                    7, now, now + DAY_S, out, sizeof out),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->ca.key, W->dev.key, "bad,cn",
                                    PKI_USAGE_CLIENT, 7, now, now + DAY_S, out, sizeof out),
                     SAT_ERR_INVALID);
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->ca.key, W->dev.key, "x", PKI_USAGE_CLIENT, 0,
                                    now, now + DAY_S, out, sizeof out),
                     SAT_ERR_INVALID);
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->ca.key, W->dev.key, "x", PKI_USAGE_CLIENT, 7,
                                    now, now - 1, out, sizeof out),
                     SAT_ERR_INVALID);
    assert_int_equal(pki_cert_issue(h, W->ca.crt, W->ca.key, W->dev.key, "x", PKI_USAGE_CLIENT, 7,
                                    now, now + DAY_S, tiny, sizeof tiny),
                     SAT_ERR_INVALID);
    assert_int_equal(pki_key_generate(h, tiny, sizeof tiny), SAT_ERR_INVALID);
    assert_false(pki_cn_valid(""));
    assert_false(pki_cn_valid(" lead"));
    assert_false(pki_cn_valid("a=b"));
    assert_true(pki_cn_valid("Satchel fleet CA"));
}

static void test_pki_file_helpers(void **state)
{
    const struct hal *h = &W->base;
    char buf[64];
    size_t len = 0;
    (void)state;
    assert_int_equal(pki_file_write_new(h, "pki-test.txt", "hello\n"), SAT_OK);
    assert_int_equal(pki_file_write_new(h, "pki-test.txt", "again\n"), SAT_ERR_EXISTS);
    assert_int_equal(pki_file_read(h, "pki-test.txt", buf, sizeof buf, &len), SAT_OK);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "hello\n");
    assert_int_equal(pki_file_read(h, "pki-test.txt", buf, 6, &len), SAT_ERR_INVALID);
    assert_int_equal(pki_file_read(h, "pki-none.txt", buf, sizeof buf, &len), SAT_ERR_NOT_FOUND);
    assert_int_equal(hal_storage_delete(h, "pki-test.txt"), SAT_OK);
}

/* ---- handshakes that succeed ---------------------------------------------------------- */

static void test_tls_mutual_handshake_and_data(void **state)
{
    struct pair p;
    char cn[TLS_PEER_CN_BYTES_MAX + 1];
    const char *suite;
    size_t got = 0;
    (void)state;
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_false(tls_conn_resumed(p.c));
    assert_false(tls_conn_resumed(p.s));
    assert_int_equal(tls_conn_peer_cn(p.s, cn, sizeof cn), SAT_OK);
    assert_string_equal(cn, DEVICE_ID);
    assert_int_equal(tls_conn_peer_cn(p.c, cn, sizeof cn), SAT_OK);
    assert_string_equal(cn, HUB_NAME);
    assert_int_equal(tls_conn_peer_cn(p.c, cn, 4), SAT_ERR_INVALID);
    assert_int_equal(admission.calls, 1);
    assert_string_equal(admission.last_cn, DEVICE_ID);
    suite = tls_conn_suite(p.c);
    assert_true(strcmp(suite, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256") == 0 ||
                strcmp(suite, "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384") == 0);
    assert_string_equal(suite, tls_conn_suite(p.s));

    /* Small messages both ways, then more than a few records each way. */
    transfer(p.c, p.link.cli, p.s, p.link.srv, 9, 1);
    transfer(p.s, p.link.srv, p.c, p.link.cli, 12, 2);
    transfer(p.c, p.link.cli, p.s, p.link.srv, 300 * 1024, 3);
    transfer(p.s, p.link.srv, p.c, p.link.cli, 300 * 1024, 4);

    /* close_notify ends the session cleanly for the other side. */
    for (int i = 0; i < STEPS_MAX; i++) {
        int ret = tls_conn_close_notify(p.c);
        if (ret != SAT_ERR_WOULD_BLOCK) {
            assert_int_equal(ret, SAT_OK);
            break;
        }
    }
    for (int i = 0; i < STEPS_MAX; i++) {
        unsigned want = HAL_NET_READABLE;
        unsigned ready = 0;
        int ret = tls_conn_recv(p.s, cn, sizeof cn, &got);
        if (ret != SAT_ERR_WOULD_BLOCK) {
            assert_int_equal(ret, SAT_ERR_TLS_CLOSED);
            break;
        }
        (void)hal_net_wait(&W->base, &p.link.srv, &want, &ready, 1, WAIT_MS);
        assert_true(i < STEPS_MAX - 1);
    }
    assert_int_equal(tls_conn_recv(p.s, cn, sizeof cn, &got), SAT_ERR_TLS_CLOSED); /* sticky */
    pair_free(&p);
}

static void test_tls_resumes_with_saved_session(void **state)
{
    struct pair p;
    struct tls_session *sess = malloc(sizeof *sess);
    char cn[TLS_PEER_CN_BYTES_MAX + 1];
    (void)state;
    assert_non_null(sess);
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_false(tls_conn_resumed(p.c));
    assert_int_equal(tls_conn_save_session(p.c, sess), SAT_OK);
    assert_true(sess->len > 0);
    assert_int_equal(tls_conn_save_session(p.s, sess), SAT_ERR_INVALID); /* server: no */
    assert_int_equal(sess->len, 0);
    assert_int_equal(tls_conn_save_session(p.c, sess), SAT_OK);
    print_message("saved session: %zu bytes\n", sess->len);
    pair_disconnect(&p);

    /* Second connection: resumed on both sides, identities still known. */
    pair_handshake(&p, sess);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_true(tls_conn_resumed(p.c));
    assert_true(tls_conn_resumed(p.s));
    assert_int_equal(tls_conn_peer_cn(p.s, cn, sizeof cn), SAT_OK);
    assert_string_equal(cn, DEVICE_ID);
    assert_int_equal(tls_conn_peer_cn(p.c, cn, sizeof cn), SAT_OK);
    assert_string_equal(cn, HUB_NAME);
    assert_int_equal(admission.calls, 2); /* asked again on resumption */
    transfer(p.c, p.link.cli, p.s, p.link.srv, 1000, 5);
    transfer(p.s, p.link.srv, p.c, p.link.cli, 1000, 6);
    assert_int_equal(tls_conn_save_session(p.c, sess), SAT_OK);
    pair_disconnect(&p);

    /* The refreshed session resumes too. */
    pair_handshake(&p, sess);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_true(tls_conn_resumed(p.c));
    pair_disconnect(&p);

    /* A damaged session is ignored: a full handshake instead. */
    sess->bytes[sess->len / 2] ^= 0x55;
    sess->bytes[0] ^= 0x55;
    pair_handshake(&p, sess);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_false(tls_conn_resumed(p.c));
    assert_false(tls_conn_resumed(p.s));
    pair_free(&p);

    /* A server that restarted (new ticket key) makes the client do a full
     * handshake, not fail. */
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(tls_conn_save_session(p.c, sess), SAT_OK);
    pair_free(&p);
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, sess);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    assert_false(tls_conn_resumed(p.c));
    pair_free(&p);
    tls_session_clear(sess);
    free(sess);
}

/* The HAL's clock, not time(), decides: certificates that time() calls
 * long expired are fine when the HAL says it is their year. */
static void test_tls_hal_clock_accepts_what_time_rejects(void **state)
{
    const int64_t y2000 = 946684800LL; /* 2000-01-01T00:00:00Z */
    struct hal *h = &W->base;
    struct pem *ca = malloc(sizeof *ca);
    struct pem *hub = malloc(sizeof *hub);
    struct pem *dev = malloc(sizeof *dev);
    struct tls_config *scfg = NULL;
    struct pair p;
    (void)state;
    assert_true(ca && hub && dev);
    make_ca(h, "Old CA", y2000, y2000 + YEAR_S, ca);
    make_cert(h, ca, HUB_NAME, PKI_USAGE_SERVER, y2000, y2000 + YEAR_S, hub);
    make_cert(h, ca, DEVICE_ID, PKI_USAGE_CLIENT, y2000, y2000 + YEAR_S, dev);
    srv_clock_offset_ms = cli_clock_offset_ms = (y2000 + 180 * DAY_S - W->now_s) * 1000;

    memset(&p, 0, sizeof p);
    assert_int_equal(tls_config_client(&p.ccfg, &W->cli, ca->crt, dev->crt, dev->key), SAT_OK);
    assert_int_equal(
        tls_config_server(&scfg, &W->srv, ca->crt, hub->crt, hub->key, admit, &admission),
        SAT_OK);
    p.scfg = scfg;
    pair_handshake(&p, NULL);
    assert_int_equal(p.cret, SAT_OK);
    assert_int_equal(p.sret, SAT_OK);
    pair_free(&p);
    free(ca);
    free(hub);
    free(dev);
}

/* ---- refusals by the server --------------------------------------------------------- */

static void test_tls_refuses_client_without_certificate(void **state)
{
    (void)state;
    assert_int_equal(raw_against_server(NULL, MBEDTLS_SSL_MINOR_VERSION_3, NULL),
                     SAT_ERR_TLS_NO_CERT);
    assert_logged("refused client: sent no certificate");
    assert_int_equal(admission.calls, 0);
}

static void test_tls_refuses_client_from_other_ca(void **state)
{
    struct pair p;
    (void)state;
    pair_configs(&p, &W->dev_other_ca, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_ERR_TLS_BAD_CERT);
    assert_int_equal(p.cret, SAT_ERR_TLS_BAD_CERT); /* the server's alert */
    assert_logged("refused client '" DEVICE_ID "': certificate not issued by the fleet CA");
    assert_int_equal(admission.calls, 0);
    pair_free(&p);
}

static void test_tls_refuses_expired_client(void **state)
{
    struct pair p;
    (void)state;
    pair_configs(&p, &W->dev_expired, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_ERR_TLS_EXPIRED);
    assert_int_equal(p.cret, SAT_ERR_TLS_EXPIRED);
    assert_logged("refused client '" DEVICE_ID "': certificate expired");
    assert_int_equal(admission.calls, 0);
    pair_free(&p);
}

static void test_tls_refuses_not_yet_valid_client(void **state)
{
    struct pair p;
    (void)state;
    pair_configs(&p, &W->dev_future, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_ERR_TLS_EXPIRED);
    assert_logged("refused client '" DEVICE_ID "': certificate not yet valid");
    pair_free(&p);
}

static void test_tls_refuses_revoked_client(void **state)
{
    struct pair p;
    (void)state;
    admission.revoked = 1;
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_ERR_TLS_REVOKED);
    assert_int_equal(p.cret, SAT_ERR_TLS_REVOKED); /* from the (unauthenticated) alert */
    assert_int_equal(admission.calls, 1);
    assert_string_equal(admission.last_cn, DEVICE_ID);
    assert_logged("refused client '" DEVICE_ID "': device not admitted");
    pair_free(&p);
}

/* A session saved before the revocation must not let the device back in. */
static void test_tls_refuses_revoked_client_on_resumption(void **state)
{
    struct pair p;
    struct tls_session *sess = malloc(sizeof *sess);
    (void)state;
    assert_non_null(sess);
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_OK);
    assert_int_equal(tls_conn_save_session(p.c, sess), SAT_OK);
    pair_disconnect(&p);

    admission.revoked = 1;
    pair_handshake(&p, sess);
    assert_int_equal(p.sret, SAT_ERR_TLS_REVOKED);
    assert_int_not_equal(p.cret, SAT_OK);
    assert_false(tls_conn_resumed(p.s));
    assert_logged("ticket not honoured (device not admitted");
    assert_logged("refused client '" DEVICE_ID "': device not admitted");
    pair_free(&p);
    tls_session_clear(sess);
    free(sess);
}

static void test_tls_refuses_tls_1_1_client(void **state)
{
    (void)state;
    assert_int_equal(raw_against_server(&W->dev, MBEDTLS_SSL_MINOR_VERSION_2, NULL),
                     SAT_ERR_TLS_VERSION);
    assert_logged("refused client: offers TLS 1.1 at most; TLS 1.2 is required");
    assert_int_equal(admission.calls, 0);
}

static void test_tls_refuses_client_without_common_suite(void **state)
{
    static const int cbc_only[] = { MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 0 };
    (void)state;
    assert_int_equal(raw_against_server(&W->dev, MBEDTLS_SSL_MINOR_VERSION_3, cbc_only),
                     SAT_ERR_TLS_VERSION);
    assert_logged("refused client: no common cipher suite");
}

/* A certificate time() calls valid is expired by the server's HAL clock,
 * set ten years ahead (the device certificate lasts five). */
static void test_tls_hal_clock_decides_expiry(void **state)
{
    struct pair p;
    (void)state;
    srv_clock_offset_ms = 10 * YEAR_S * 1000;
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.sret, SAT_ERR_TLS_EXPIRED);
    assert_logged("refused client '" DEVICE_ID "': certificate expired");
    pair_free(&p);
}

/* ---- refusals by the client ------------------------------------------------------------ */

static void test_tls_client_refuses_server_from_other_ca(void **state)
{
    struct pair p;
    (void)state;
    pair_configs(&p, &W->dev, &W->hub_other_ca);
    pair_handshake(&p, NULL);
    assert_int_equal(p.cret, SAT_ERR_TLS_BAD_CERT);
    assert_int_not_equal(p.sret, SAT_OK);
    pair_free(&p);
}

/* A device's certificate (extendedKeyUsage clientAuth) cannot serve as the
 * hub's, nor the hub's as a device's: refused when configured. (Mbed TLS
 * would not even offer it in a handshake: the server finds no usable
 * certificate for any suite.) */
static void test_tls_config_refuses_wrong_role(void **state)
{
    struct tls_config *cfg = NULL;
    (void)state;
    assert_int_equal(tls_config_server(&cfg, &W->srv, W->ca.crt, W->dev.crt, W->dev.key, admit,
                                       &admission),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(tls_config_client(&cfg, &W->cli, W->ca.crt, W->hub.crt, W->hub.key),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(tls_config_client(&cfg, &W->cli, W->ca.crt, W->ca.crt, W->ca.key),
                     SAT_ERR_TLS_CONFIG); /* a CA: no digitalSignature */
    assert_null(cfg);
}

static void test_tls_client_refuses_expired_server(void **state)
{
    struct pair p;
    (void)state;
    cli_clock_offset_ms = 6 * YEAR_S * 1000;
    pair_configs(&p, &W->dev, &W->hub);
    pair_handshake(&p, NULL);
    assert_int_equal(p.cret, SAT_ERR_TLS_EXPIRED);
    assert_int_not_equal(p.sret, SAT_OK);
    pair_free(&p);
}

/* ---- configuration errors -------------------------------------------------------------- */

static void test_tls_config_rejects_bad_pem(void **state)
{
    struct tls_config *cfg = NULL;
    (void)state;
    assert_int_equal(tls_config_client(&cfg, &W->cli, "garbage", W->dev.crt, W->dev.key),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(tls_config_client(&cfg, &W->cli, W->ca.crt, "garbage", W->dev.key),
                     SAT_ERR_TLS_CONFIG);
    assert_int_equal(tls_config_client(&cfg, &W->cli, W->ca.crt, W->dev.crt, W->hub.key),
                     SAT_ERR_TLS_CONFIG); /* key of another certificate */
    assert_int_equal(tls_config_client(&cfg, &W->cli, W->ca.crt, W->dev.crt, NULL),
                     SAT_ERR_INVALID);
    assert_null(cfg);
    assert_int_equal(tls_config_server(&cfg, &W->srv, W->ca.crt, W->hub.crt, W->hub.key, NULL,
                                       NULL),
                     SAT_OK);
    tls_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pki_certificates_chain_to_the_ca, setup),
        cmocka_unit_test_setup(test_pki_rejects_bad_input, setup),
        cmocka_unit_test_setup(test_pki_file_helpers, setup),
        cmocka_unit_test_setup(test_tls_mutual_handshake_and_data, setup),
        cmocka_unit_test_setup(test_tls_resumes_with_saved_session, setup),
        cmocka_unit_test_setup(test_tls_hal_clock_accepts_what_time_rejects, setup),
        cmocka_unit_test_setup(test_tls_refuses_client_without_certificate, setup),
        cmocka_unit_test_setup(test_tls_refuses_client_from_other_ca, setup),
        cmocka_unit_test_setup(test_tls_refuses_expired_client, setup),
        cmocka_unit_test_setup(test_tls_refuses_not_yet_valid_client, setup),
        cmocka_unit_test_setup(test_tls_refuses_revoked_client, setup),
        cmocka_unit_test_setup(test_tls_refuses_revoked_client_on_resumption, setup),
        cmocka_unit_test_setup(test_tls_refuses_tls_1_1_client, setup),
        cmocka_unit_test_setup(test_tls_refuses_client_without_common_suite, setup),
        cmocka_unit_test_setup(test_tls_hal_clock_decides_expiry, setup),
        cmocka_unit_test_setup(test_tls_client_refuses_server_from_other_ca, setup),
        cmocka_unit_test_setup(test_tls_config_refuses_wrong_role, setup),
        cmocka_unit_test_setup(test_tls_client_refuses_expired_server, setup),
        cmocka_unit_test_setup(test_tls_config_rejects_bad_pem, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
