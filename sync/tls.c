/*
 * tls.c - mutual TLS 1.2 over the HAL's non-blocking network with Mbed TLS
 * 2.28 (see tls.h). The one file that includes mbedtls/ssl.h.
 *
 * Mbed TLS 2.28 judges certificate validity with time(); a per-connection
 * verify callback throws that verdict away and judges again with
 * hal_clock_wall_ms. A resumed handshake exchanges no certificate, so the
 * same checks run on the session's stored peer certificate: on the server
 * when it opens a ticket (a refused ticket just means a full handshake,
 * where the verify callback refuses with the right alert; the server keeps
 * no session cache, so tickets are its only way to resume), and on the
 * client before it offers a saved session and again once the resumed
 * handshake is complete.
 */
#include "tls.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "sat_date.h"
#include "sat_drbg.h"

#define DRBG_PERSONALIZATION "satchel-tls"
#define WHY_BYTES 112
#define TLS_ALERT_RECORD_BYTES 7 /* record header (5) + level + description */

static const int tls_suites[] = { MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                                  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0 };
static const mbedtls_ecp_group_id tls_curves[] = { MBEDTLS_ECP_DP_SECP256R1,
                                                   MBEDTLS_ECP_DP_NONE };
/* Signature hashes for ServerKeyExchange and CertificateVerify: the
 * SHA-384 suite signs its CertificateVerify with SHA-384. */
static const int tls_sig_hashes[] = { MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE };
/* Certificates in a chain: ECDSA P-256 keys, SHA-256/384 signatures. */
static const mbedtls_x509_crt_profile tls_cert_profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY) | MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1),
    2048, /* RSA minimum; RSA keys are refused by allowed_pks anyway */
};

struct tls_config {
    const struct hal *hal;
    int server;
    tls_admit_fn admit;
    void *admit_arg;
    struct sat_drbg drbg; /* HAL entropy */
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own_cert;
    mbedtls_pk_context own_key;
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_context ticket;
#endif
    mbedtls_ssl_config ssl;
};

struct tls_conn {
    struct tls_config *cfg;
    hal_sock *sock;
    mbedtls_ssl_context ssl;
    unsigned want;        /* HAL_NET_* the last would-block waited for */
    int net_err;          /* the HAL's code when a bio callback failed */
    int err;              /* sticky failure; SAT_OK while the connection lives */
    int done;             /* handshake complete */
    int verified;         /* the verify callback ran: a full handshake */
    int resumed;          /* the completed handshake was a resumption */
    int started;          /* the handshake has taken its first step */
    uint64_t started_ms;  /* HAL monotonic time of that step */
    uint32_t chain_flags; /* verify flags of the issuers above the peer */
    char peer_cn[TLS_PEER_CN_BYTES_MAX + 1];
};

/* ---- time: certificate validity by the HAL's wall clock ----------------- */

static int64_t x509_time_ms(const mbedtls_x509_time *t)
{
    return sat_date_unix_ms(t->year, t->mon, t->day, t->hour, t->min, t->sec);
}

/* EXPIRED / FUTURE flags of crt at now_ms. valid_to names its last valid
 * second, as in RFC 5280. */
static uint32_t validity_flags(const mbedtls_x509_crt *crt, int64_t now_ms)
{
    uint32_t flags = 0;
    if (now_ms < x509_time_ms(&crt->valid_from))
        flags |= MBEDTLS_X509_BADCERT_FUTURE;
    if (now_ms >= x509_time_ms(&crt->valid_to) + 1000)
        flags |= MBEDTLS_X509_BADCERT_EXPIRED;
    return flags;
}

/* Copies crt's subject CN into out (TLS_PEER_CN_BYTES_MAX + 1 bytes) if it
 * is there and made of [A-Za-z0-9 ._-] only (it reaches logs), else fails. */
static int cert_cn(const mbedtls_x509_crt *crt, char out[TLS_PEER_CN_BYTES_MAX + 1])
{
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
            continue;
        if (n->val.len == 0 || n->val.len > TLS_PEER_CN_BYTES_MAX)
            return SAT_ERR_TLS_BAD_CERT;
        for (size_t i = 0; i < n->val.len; i++) {
            unsigned char c = n->val.p[i];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == ' ' || c == '.' || c == '_' || c == '-';
            if (!ok)
                return SAT_ERR_TLS_BAD_CERT;
        }
        memcpy(out, n->val.p, n->val.len);
        out[n->val.len] = '\0';
        return SAT_OK;
    }
    return SAT_ERR_TLS_BAD_CERT;
}

/* The checks a resumed session's stored peer certificate must pass again:
 * validity by the HAL clock and, on a server, admission. Fills cn. */
static int stored_peer_check(const struct tls_config *cfg, const mbedtls_x509_crt *peer,
                             char cn[TLS_PEER_CN_BYTES_MAX + 1], const char **why)
{
    uint32_t flags;
    if (peer == NULL) {
        *why = "no certificate in the resumed session";
        return SAT_ERR_TLS_NO_CERT;
    }
    if (cert_cn(peer, cn) != SAT_OK) {
        *why = "certificate without a usable CN";
        return SAT_ERR_TLS_BAD_CERT;
    }
    flags = validity_flags(peer, hal_clock_wall_ms(cfg->hal));
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        *why = "certificate expired (by this side's clock)";
        return SAT_ERR_TLS_EXPIRED;
    }
    if (flags & MBEDTLS_X509_BADCERT_FUTURE) {
        *why = "certificate not yet valid (by this side's clock)";
        return SAT_ERR_TLS_EXPIRED;
    }
    if (cfg->server && cfg->admit != NULL && cfg->admit(cfg->admit_arg, cn) != 0) {
        *why = "device not admitted (not registered with the hub, or revoked)";
        return SAT_ERR_TLS_REVOKED;
    }
    return SAT_OK;
}

/* ---- Mbed TLS callbacks ---------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_conn *c = ctx;
    size_t sent = 0;
    int ret;
    if (len > INT_MAX)
        len = INT_MAX;
    ret = hal_net_send(c->cfg->hal, c->sock, buf, len, &sent);
    if (ret == SAT_ERR_WOULD_BLOCK) {
        c->want = HAL_NET_WRITABLE;
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    if (ret != SAT_OK) {
        c->net_err = ret;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return (int)sent;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_conn *c = ctx;
    size_t got = 0;
    int ret;
    if (len > INT_MAX)
        len = INT_MAX;
    ret = hal_net_recv(c->cfg->hal, c->sock, buf, len, &got);
    if (ret == SAT_ERR_WOULD_BLOCK) {
        c->want = HAL_NET_READABLE;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (ret == SAT_ERR_CLOSED) {
        c->net_err = SAT_ERR_CLOSED;
        return 0; /* end of stream: Mbed TLS reports MBEDTLS_ERR_SSL_CONN_EOF */
    }
    if (ret != SAT_OK) {
        c->net_err = ret;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
    return (int)got;
}

/* Called for each certificate of the peer's chain, the trusted CA first and
 * the peer's own certificate (depth 0) last, with the flags Mbed TLS found.
 * Returning 0 keeps the handshake going; the flags decide its fate. */
static int verify_cert(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_conn *c = arg;
    const struct tls_config *cfg = c->cfg;
    *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    *flags |= validity_flags(crt, hal_clock_wall_ms(cfg->hal));
    c->verified = 1;
    if (depth > 0) {
        c->chain_flags |= *flags;
        return 0;
    }
    if (cert_cn(crt, c->peer_cn) != SAT_OK) {
        c->peer_cn[0] = '\0';
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    }
    /* Only a certificate that passed everything else is worth asking about:
     * the admit callback must never see an unauthenticated name. */
    if (cfg->server && cfg->admit != NULL && (*flags | c->chain_flags) == 0 &&
        cfg->admit(cfg->admit_arg, c->peer_cn) != 0)
        *flags |= MBEDTLS_X509_BADCERT_REVOKED;
    return 0;
}

#if defined(MBEDTLS_SSL_TICKET_C)
static int ticket_write(void *p, const mbedtls_ssl_session *session, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    struct tls_config *cfg = p;
    return mbedtls_ssl_ticket_write(&cfg->ticket, session, start, end, tlen, lifetime);
}

/* Opens a ticket and checks its stored client certificate again; a ticket
 * that fails is declined, so the client does a full handshake instead. */
static int ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    struct tls_config *cfg = p;
    char cn[TLS_PEER_CN_BYTES_MAX + 1];
    const char *why = "";
    int mret = mbedtls_ssl_ticket_parse(&cfg->ticket, session, buf, len);
    if (mret != 0)
        return mret;
    if (stored_peer_check(cfg, session->peer_cert, cn, &why) != SAT_OK) {
        hal_log(cfg->hal, HAL_LOG_INFO, "tls: ticket not honoured (%s): full handshake", why);
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    return 0;
}
#endif

/* ---- configurations -------------------------------------------------------- */

static int is_p256(const mbedtls_pk_context *pk)
{
    return mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY &&
           mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

/* Whether key is the private key of crt_pk: the same curve and public
 * point. The point is the one the key file carries, or the one parsing
 * derived from the private scalar if the file has none, so this catches a
 * key paired with another certificate as mbedtls_pk_check_pair does,
 * without the P-256 multiplication that costs at every start of a tablet
 * (and after every power cut). */
static int key_matches_cert(const mbedtls_pk_context *crt_pk, const mbedtls_pk_context *key)
{
    const mbedtls_ecp_keypair *c = mbedtls_pk_ec(*crt_pk);
    const mbedtls_ecp_keypair *k = mbedtls_pk_ec(*key);
    return c->grp.id == k->grp.id && mbedtls_ecp_point_cmp(&c->Q, &k->Q) == 0;
}

static int config_new(struct tls_config **out, const struct hal *h, int server,
                      const char *ca_pem, const char *cert_pem, const char *key_pem)
{
    struct tls_config *cfg;
    int ret = SAT_ERR_INVALID;
    if (out == NULL || h == NULL || ca_pem == NULL || cert_pem == NULL || key_pem == NULL)
        return SAT_ERR_INVALID;
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return SAT_ERR_NO_MEMORY;
    cfg->hal = h;
    cfg->server = server;
    sat_drbg_init(&cfg->drbg);
    mbedtls_x509_crt_init(&cfg->ca);
    mbedtls_x509_crt_init(&cfg->own_cert);
    mbedtls_pk_init(&cfg->own_key);
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_init(&cfg->ticket);
#endif
    mbedtls_ssl_config_init(&cfg->ssl);

    ret = sat_drbg_seed(&cfg->drbg, hal_entropy_source, (void *)h, DRBG_PERSONALIZATION,
                        SAT_ERR_TLS_CRYPTO);
    if (ret != SAT_OK)
        goto exit;
    ret = SAT_ERR_TLS_CONFIG;
    if (mbedtls_x509_crt_parse(&cfg->ca, (const unsigned char *)ca_pem, strlen(ca_pem) + 1) != 0)
        goto exit;
    if (mbedtls_x509_crt_parse(&cfg->own_cert, (const unsigned char *)cert_pem,
                               strlen(cert_pem) + 1) != 0 ||
        !is_p256(&cfg->own_cert.pk))
        goto exit;
    if (mbedtls_pk_parse_key(&cfg->own_key, (const unsigned char *)key_pem, strlen(key_pem) + 1,
                             NULL, 0) != 0 ||
        !is_p256(&cfg->own_key) || !key_matches_cert(&cfg->own_cert.pk, &cfg->own_key))
        goto exit;
    /* A certificate made for the other role (pki.h) is a configuration
     * mistake: say so now rather than fail every handshake obscurely. */
    if (mbedtls_x509_crt_check_key_usage(&cfg->own_cert, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0)
        goto exit;
    if (server ? mbedtls_x509_crt_check_extended_key_usage(
                     &cfg->own_cert, MBEDTLS_OID_SERVER_AUTH,
                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0
               : mbedtls_x509_crt_check_extended_key_usage(
                     &cfg->own_cert, MBEDTLS_OID_CLIENT_AUTH,
                     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0)
        goto exit;

    ret = SAT_ERR_TLS_CRYPTO;
    if (mbedtls_ssl_config_defaults(&cfg->ssl,
                                    server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        goto exit;
    mbedtls_ssl_conf_min_version(&cfg->ssl, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&cfg->ssl, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&cfg->ssl, tls_suites);
    mbedtls_ssl_conf_curves(&cfg->ssl, tls_curves);
    mbedtls_ssl_conf_sig_hashes(&cfg->ssl, tls_sig_hashes);
    mbedtls_ssl_conf_cert_profile(&cfg->ssl, &tls_cert_profile);
    mbedtls_ssl_conf_authmode(&cfg->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&cfg->ssl, &cfg->ca, NULL);
    mbedtls_ssl_conf_rng(&cfg->ssl, sat_drbg_random, &cfg->drbg);
    mbedtls_ssl_conf_renegotiation(&cfg->ssl, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    if (mbedtls_ssl_conf_own_cert(&cfg->ssl, &cfg->own_cert, &cfg->own_key) != 0)
        goto exit;
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    if (server) {
#if defined(MBEDTLS_SSL_TICKET_C)
        if (mbedtls_ssl_ticket_setup(&cfg->ticket, sat_drbg_random, &cfg->drbg,
                                     MBEDTLS_CIPHER_AES_256_GCM, TLS_TICKET_LIFETIME_S) != 0) {
            ret = sat_drbg_error(&cfg->drbg, SAT_ERR_TLS_CRYPTO);
            goto exit;
        }
        mbedtls_ssl_conf_session_tickets_cb(&cfg->ssl, ticket_write, ticket_parse, cfg);
#endif
    } else {
        mbedtls_ssl_conf_session_tickets(&cfg->ssl, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    }
#endif
    *out = cfg;
    cfg = NULL;
    ret = SAT_OK;
exit:
    tls_config_free(cfg);
    return ret;
}

int tls_config_client(struct tls_config **out, const struct hal *h, const char *ca_pem,
                      const char *cert_pem, const char *key_pem)
{
    return config_new(out, h, 0, ca_pem, cert_pem, key_pem);
}

int tls_config_server(struct tls_config **out, const struct hal *h, const char *ca_pem,
                      const char *cert_pem, const char *key_pem, tls_admit_fn admit, void *arg)
{
    int ret = config_new(out, h, 1, ca_pem, cert_pem, key_pem);
    if (ret == SAT_OK) {
        (*out)->admit = admit;
        (*out)->admit_arg = arg;
    }
    return ret;
}

void tls_config_free(struct tls_config *cfg)
{
    if (cfg == NULL)
        return;
    mbedtls_ssl_config_free(&cfg->ssl);
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_free(&cfg->ticket);
#endif
    mbedtls_pk_free(&cfg->own_key);
    mbedtls_x509_crt_free(&cfg->own_cert);
    mbedtls_x509_crt_free(&cfg->ca);
    sat_drbg_free(&cfg->drbg);
    mbedtls_platform_zeroize(cfg, sizeof *cfg);
    free(cfg);
}

void tls_session_clear(struct tls_session *s)
{
    if (s != NULL)
        mbedtls_platform_zeroize(s, sizeof *s);
}

/* ---- connections ------------------------------------------------------------- */

/* Offers a saved session if it loads and its server certificate is still
 * valid by the HAL clock; otherwise the handshake is a full one. */
static void conn_offer_session(struct tls_conn *c, const struct tls_session *resume)
{
    mbedtls_ssl_session s;
    int64_t now_ms = hal_clock_wall_ms(c->cfg->hal);
    mbedtls_ssl_session_init(&s);
    if (resume->len > sizeof resume->bytes ||
        mbedtls_ssl_session_load(&s, resume->bytes, resume->len) != 0) {
        hal_log(c->cfg->hal, HAL_LOG_INFO, "tls: saved session unusable: full handshake");
    } else if (s.peer_cert == NULL || validity_flags(s.peer_cert, now_ms) != 0) {
        hal_log(c->cfg->hal, HAL_LOG_INFO,
                "tls: saved session's server certificate not valid now: full handshake");
    } else if (mbedtls_ssl_set_session(&c->ssl, &s) != 0) {
        hal_log(c->cfg->hal, HAL_LOG_INFO, "tls: saved session not offered: full handshake");
    }
    mbedtls_ssl_session_free(&s); /* zeroizes the master secret */
}

int tls_conn_new(struct tls_conn **out, struct tls_config *cfg, hal_sock *sock,
                 const struct tls_session *resume)
{
    struct tls_conn *c;
    int mret;
    if (out == NULL || cfg == NULL || sock == NULL || (cfg->server && resume != NULL))
        return SAT_ERR_INVALID;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return SAT_ERR_NO_MEMORY;
    c->cfg = cfg;
    c->sock = sock;
    c->want = cfg->server ? HAL_NET_READABLE : HAL_NET_WRITABLE;
    c->net_err = SAT_OK;
    c->err = SAT_OK;
    mbedtls_ssl_init(&c->ssl);
    mret = mbedtls_ssl_setup(&c->ssl, &cfg->ssl);
    if (mret != 0) {
        tls_conn_free(c);
        return mret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? SAT_ERR_NO_MEMORY : SAT_ERR_TLS_CRYPTO;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    /* The per-connection form of mbedtls_ssl_conf_verify: the callback
     * needs this connection (peer CN, chain flags, full vs resumed). */
    mbedtls_ssl_set_verify(&c->ssl, verify_cert, c);
    if (resume != NULL && resume->len > 0)
        conn_offer_session(c, resume);
    *out = c;
    return SAT_OK;
}

/* The one-line reason for certificate verification flags. */
static int flags_error(uint32_t flags, const char **why)
{
    if (flags & MBEDTLS_X509_BADCERT_MISSING) {
        *why = "sent no certificate";
        return SAT_ERR_TLS_NO_CERT;
    }
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        *why = "certificate not issued by the fleet CA (or bad signature)";
        return SAT_ERR_TLS_BAD_CERT;
    }
    if (flags & MBEDTLS_X509_BADCERT_REVOKED) { /* the admit callback said no */
        *why = "device not admitted (not registered with the hub, or revoked)";
        return SAT_ERR_TLS_REVOKED;
    }
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        *why = "certificate expired (by this side's clock)";
        return SAT_ERR_TLS_EXPIRED;
    }
    if (flags & MBEDTLS_X509_BADCERT_FUTURE) {
        *why = "certificate not yet valid (by this side's clock)";
        return SAT_ERR_TLS_EXPIRED;
    }
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE)) {
        *why = "certificate not made for this role (key usage)";
        return SAT_ERR_TLS_BAD_CERT;
    }
    if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
                 MBEDTLS_X509_BADCERT_BAD_KEY)) {
        *why = "certificate key or signature algorithm not allowed";
        return SAT_ERR_TLS_BAD_CERT;
    }
    *why = "certificate refused";
    return SAT_ERR_TLS_BAD_CERT;
}

/* The error announced by the peer's fatal alert (unauthenticated). */
static int alert_error(unsigned char alert, const char **why)
{
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
        *why = "the peer says our certificate is revoked";
        return SAT_ERR_TLS_REVOKED;
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
        *why = "the peer says our certificate is expired or not yet valid";
        return SAT_ERR_TLS_EXPIRED;
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
        *why = "the peer refused our certificate";
        return SAT_ERR_TLS_BAD_CERT;
    case MBEDTLS_SSL_ALERT_MSG_NO_CERT:
        *why = "the peer wants a certificate";
        return SAT_ERR_TLS_NO_CERT;
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
        *why = "the peer refused our TLS version or cipher suites";
        return SAT_ERR_TLS_VERSION;
    default:
        *why = "the peer sent a fatal alert";
        return SAT_ERR_TLS_HANDSHAKE;
    }
}

/* Maps a failure of Mbed TLS to a Satchel code and a reason for the log. */
static int conn_error(const struct tls_conn *c, int mret, char *why, size_t cap)
{
    const char *text = NULL;
    int ret;
    uint32_t flags;
    switch (mret) {
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
        text = "sent no certificate";
        ret = SAT_ERR_TLS_NO_CERT;
        break;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
    case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
        flags = mbedtls_ssl_get_verify_result(&c->ssl);
        if (flags == UINT32_MAX || flags == 0) {
            text = "certificate could not be parsed";
            ret = SAT_ERR_TLS_BAD_CERT;
        } else {
            ret = flags_error(flags, &text);
        }
        break;
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
        snprintf(why, cap, "offers TLS 1.%d at most; TLS 1.2 is required",
                 c->ssl.minor_ver > 0 ? c->ssl.minor_ver - 1 : 0);
        return SAT_ERR_TLS_VERSION;
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
        text = "no common cipher suite (ECDHE-ECDSA with AES-GCM on P-256 is required)";
        ret = SAT_ERR_TLS_VERSION;
        break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        /* Mbed TLS 2.28 leaves the alert record in in_msg. */
        ret = alert_error(c->ssl.in_msg != NULL ? c->ssl.in_msg[1] : 0, &text);
        break;
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
        text = "closed the session";
        ret = SAT_ERR_TLS_CLOSED;
        break;
    case MBEDTLS_ERR_SSL_INVALID_MAC:
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
        text = "a record failed authentication";
        ret = SAT_ERR_TLS_BAD_RECORD;
        break;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
        text = "out of memory";
        ret = SAT_ERR_NO_MEMORY;
        break;
    case MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED:
        text = "no entropy";
        ret = sat_drbg_error(&c->cfg->drbg, SAT_ERR_TLS_CRYPTO);
        break;
    default:
        if (c->net_err != SAT_OK) {
            ret = c->net_err;
            text = sat_strerror(ret);
        } else {
            ret = c->done ? SAT_ERR_TLS_BAD_RECORD : SAT_ERR_TLS_HANDSHAKE;
            snprintf(why, cap, "TLS error -0x%04X", (unsigned)-mret);
            return ret;
        }
        break;
    }
    snprintf(why, cap, "%s", text);
    return ret;
}

static int is_refusal(int err)
{
    return err == SAT_ERR_TLS_NO_CERT || err == SAT_ERR_TLS_BAD_CERT ||
           err == SAT_ERR_TLS_EXPIRED || err == SAT_ERR_TLS_REVOKED ||
           err == SAT_ERR_TLS_VERSION;
}

/* Marks the connection dead with err and logs why. */
static int conn_die(struct tls_conn *c, int err, const char *why)
{
    const struct hal *h = c->cfg->hal;
    const char *who = c->cfg->server ? "client" : "server";
    c->err = err;
    if (!c->done && c->cfg->server && is_refusal(err)) {
        if (c->peer_cn[0] != '\0')
            hal_log(h, HAL_LOG_WARN, "tls: refused client '%s': %s", c->peer_cn, why);
        else
            hal_log(h, HAL_LOG_WARN, "tls: refused client: %s", why);
    } else if (!c->done) {
        hal_log(h, is_refusal(err) ? HAL_LOG_WARN : HAL_LOG_INFO,
                "tls: handshake with %s failed: %s", who, why);
    } else if (err != SAT_ERR_TLS_CLOSED && err != SAT_ERR_CLOSED) {
        hal_log(h, HAL_LOG_INFO, "tls: connection with %s failed: %s", who, why);
    }
    return err;
}

/* A client whose handshake ended in a reset or an end of stream: a server
 * that refuses our certificate sends a fatal alert and closes, and the
 * close may reset the rest of our flight before Mbed TLS reads the alert.
 * The alert, a plaintext record before ChangeCipherSpec (type 21, version,
 * length 2, level fatal, description), may still be waiting in the socket:
 * if it is, returns the error it announces (why set), else 0. */
static int peek_refusal(struct tls_conn *c, const char **why)
{
    uint8_t rec[TLS_ALERT_RECORD_BYTES];
    size_t have = 0, got = 0;
    while (have < sizeof rec &&
           hal_net_recv(c->cfg->hal, c->sock, rec + have, sizeof rec - have, &got) == SAT_OK &&
           got > 0)
        have += got;
    if (have != sizeof rec || rec[0] != MBEDTLS_SSL_MSG_ALERT || rec[1] != 3 || rec[3] != 0 ||
        rec[4] != 2 || rec[5] != MBEDTLS_SSL_ALERT_LEVEL_FATAL)
        return 0;
    return alert_error(rec[6], why);
}

static int conn_fail(struct tls_conn *c, int mret)
{
    char why[WHY_BYTES];
    int err = conn_error(c, mret, why, sizeof why);
    const char *alert_why = NULL;
    int alert_err;
    if (!c->cfg->server && !c->done && (err == SAT_ERR_RESET || err == SAT_ERR_CLOSED) &&
        (alert_err = peek_refusal(c, &alert_why)) != 0)
        return conn_die(c, alert_err, alert_why);
    return conn_die(c, err, why);
}

/* After a resumed handshake. A client checks the stored server certificate
 * against the HAL clock again. A server resumes only from its own tickets,
 * which ticket_parse checked (validity and admission) moments ago in this
 * handshake: it only needs the CN. A server that refuses tells the client
 * with a fatal alert. */
static int conn_check_resumed(struct tls_conn *c)
{
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    const char *why = "";
    int ret;
    if (c->cfg->server) {
        ret = peer == NULL ? SAT_ERR_TLS_NO_CERT : cert_cn(peer, c->peer_cn);
        why = "no usable certificate in the resumed session";
    } else {
        ret = stored_peer_check(c->cfg, peer, c->peer_cn, &why);
    }
    if (ret == SAT_OK)
        return SAT_OK;
    if (c->cfg->server) {
        unsigned char alert = ret == SAT_ERR_TLS_REVOKED   ? MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED
                              : ret == SAT_ERR_TLS_EXPIRED ? MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED
                                                           : MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
        (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
    }
    return conn_die(c, ret, why);
}

int tls_conn_handshake(struct tls_conn *c)
{
    uint64_t now_ms;
    int mret;
    if (c == NULL)
        return SAT_ERR_INVALID;
    if (c->err != SAT_OK)
        return c->err;
    if (c->done)
        return SAT_OK;
    now_ms = hal_clock_monotonic_ms(c->cfg->hal);
    if (!c->started) {
        c->started = 1;
        c->started_ms = now_ms;
    } else if (now_ms - c->started_ms > TLS_HANDSHAKE_MS_MAX) {
        return conn_die(c, SAT_ERR_TIMEOUT, "handshake took too long");
    }
    mret = mbedtls_ssl_handshake(&c->ssl);
    if (mret == MBEDTLS_ERR_SSL_WANT_READ) {
        c->want = HAL_NET_READABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    if (mret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        c->want = HAL_NET_WRITABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    if (mret != 0)
        return conn_fail(c, mret);
    /* With MBEDTLS_SSL_VERIFY_REQUIRED a full handshake cannot succeed
     * without verifying the peer's certificate: no verification means the
     * session was resumed. */
    c->resumed = !c->verified;
    if (c->resumed && conn_check_resumed(c) != SAT_OK)
        return c->err;
    c->done = 1;
    return SAT_OK;
}

int tls_conn_send(struct tls_conn *c, const void *buf, size_t len, size_t *sent)
{
    int mret;
    if (c == NULL || sent == NULL || (buf == NULL && len > 0))
        return SAT_ERR_INVALID;
    if (c->err != SAT_OK)
        return c->err;
    if (!c->done)
        return SAT_ERR_INVALID;
    if (len == 0) {
        *sent = 0;
        return SAT_OK;
    }
    mret = mbedtls_ssl_write(&c->ssl, buf, len);
    if (mret > 0) {
        *sent = (size_t)mret;
        return SAT_OK;
    }
    if (mret == MBEDTLS_ERR_SSL_WANT_WRITE || mret == 0) {
        c->want = HAL_NET_WRITABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    if (mret == MBEDTLS_ERR_SSL_WANT_READ) {
        c->want = HAL_NET_READABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    return conn_fail(c, mret);
}

int tls_conn_recv(struct tls_conn *c, void *buf, size_t len, size_t *got)
{
    int mret;
    if (c == NULL || buf == NULL || got == NULL || len == 0)
        return SAT_ERR_INVALID;
    if (c->err != SAT_OK)
        return c->err;
    if (!c->done)
        return SAT_ERR_INVALID;
    mret = mbedtls_ssl_read(&c->ssl, buf, len);
    if (mret > 0) {
        *got = (size_t)mret;
        return SAT_OK;
    }
    if (mret == MBEDTLS_ERR_SSL_WANT_READ || (mret == 0 && c->net_err == SAT_OK)) {
        c->want = HAL_NET_READABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    if (mret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        c->want = HAL_NET_WRITABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    return conn_fail(c, mret);
}

int tls_conn_pending(const struct tls_conn *c)
{
    if (c == NULL || c->err != SAT_OK)
        return 0;
    return mbedtls_ssl_get_bytes_avail(&c->ssl) > 0 || mbedtls_ssl_check_pending(&c->ssl);
}

unsigned tls_conn_wants(const struct tls_conn *c)
{
    return c != NULL ? c->want : HAL_NET_READABLE;
}

int tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t cap)
{
    size_t n;
    if (c == NULL || out == NULL || !c->done || c->err != SAT_OK)
        return SAT_ERR_INVALID;
    n = strlen(c->peer_cn);
    if (n + 1 > cap)
        return SAT_ERR_INVALID;
    memcpy(out, c->peer_cn, n + 1);
    return SAT_OK;
}

int tls_conn_resumed(const struct tls_conn *c)
{
    return c != NULL && c->done && c->resumed;
}

const char *tls_conn_suite(const struct tls_conn *c)
{
    const char *name;
    if (c == NULL || !c->done)
        return "";
    name = mbedtls_ssl_get_ciphersuite(&c->ssl);
    return name != NULL ? name : "";
}

int tls_conn_save_session(struct tls_conn *c, struct tls_session *out)
{
    mbedtls_ssl_session s;
    size_t len = 0;
    int mret;
    if (c == NULL || out == NULL)
        return SAT_ERR_INVALID;
    tls_session_clear(out);
    if (c->cfg->server || !c->done || c->err != SAT_OK)
        return SAT_ERR_INVALID;
    mbedtls_ssl_session_init(&s);
    mret = mbedtls_ssl_get_session(&c->ssl, &s);
    if (mret == 0)
        mret = mbedtls_ssl_session_save(&s, out->bytes, sizeof out->bytes, &len);
    mbedtls_ssl_session_free(&s);
    if (mret != 0) {
        tls_session_clear(out);
        return mret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? SAT_ERR_NO_MEMORY : SAT_ERR_INVALID;
    }
    out->len = len;
    return SAT_OK;
}

int tls_conn_close_notify(struct tls_conn *c)
{
    int mret;
    if (c == NULL)
        return SAT_ERR_INVALID;
    if (c->err != SAT_OK)
        return c->err;
    if (!c->done)
        return SAT_ERR_INVALID;
    mret = mbedtls_ssl_close_notify(&c->ssl);
    if (mret == 0)
        return SAT_OK;
    if (mret == MBEDTLS_ERR_SSL_WANT_WRITE || mret == MBEDTLS_ERR_SSL_WANT_READ) {
        c->want = mret == MBEDTLS_ERR_SSL_WANT_WRITE ? HAL_NET_WRITABLE : HAL_NET_READABLE;
        return SAT_ERR_WOULD_BLOCK;
    }
    return conn_fail(c, mret);
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_free(&c->ssl);
    mbedtls_platform_zeroize(c, sizeof *c);
    free(c);
}
