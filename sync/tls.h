/*
 * tls.h - mutual TLS between a tablet and the hub, over the HAL's
 * non-blocking network.
 *
 * The only module that talks to Mbed TLS's ssl layer, so a move to Mbed TLS
 * 3.6 (and TLS 1.3) touches tls.c alone. What it enforces:
 *  - TLS 1.2 only; cipher suites TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256 and
 *    TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384; curve P-256; certificates
 *    ECDSA P-256 signed with SHA-256 or SHA-384; no renegotiation.
 *  - Mutual authentication: each side requires the other's certificate and
 *    checks it against the fleet CA (pki.h says what the certificates hold,
 *    including the extended key usage that keeps device and hub roles apart).
 *  - Certificate validity is judged by hal_clock_wall_ms, never time(), so
 *    the simulator's virtual clock decides expiry.
 *  - Randomness: a CTR-DRBG per configuration seeded from hal_entropy_fill.
 *  - Resumption: the server issues session tickets (AES-256-GCM, random key,
 *    TLS_TICKET_LIFETIME_S); a client saves its session after a handshake
 *    (tls_conn_save_session) and offers it on the next connection. A resumed
 *    handshake still rechecks the peer certificate's validity against the HAL
 *    clock, and on the server asks the admit callback again, so a device
 *    revoked since its last full handshake is refused.
 *  - Nothing blocks: every call that would wait answers SAT_ERR_WOULD_BLOCK;
 *    tls_conn_wants says whether to wait for the socket to become readable
 *    or writable (hal_net_wait) before calling again.
 *
 * Ownership and threads: a tls_config owns copies of its CA, certificate and
 * key and must outlive every tls_conn made from it. The struct hal passed to
 * tls_config_* must outlive the config. A config and its connections are used
 * from one thread. A tls_conn borrows its hal_sock: tls_conn_free never
 * closes it.
 *
 * Return codes: SAT_OK or a negative code from sat_err.h. The TLS codes:
 *   SAT_ERR_TLS_NO_CERT    the peer sent no certificate
 *   SAT_ERR_TLS_BAD_CERT   peer certificate not from the fleet CA, bad
 *                          signature, wrong key type or wrong usage
 *   SAT_ERR_TLS_EXPIRED    peer certificate expired or not yet valid
 *   SAT_ERR_TLS_REVOKED    server: the admit callback refused the device
 *   SAT_ERR_TLS_VERSION    peer below TLS 1.2 or no common cipher suite
 *   SAT_ERR_TLS_HANDSHAKE  any other handshake failure
 *   SAT_ERR_TLS_BAD_RECORD a record failed authentication or was malformed
 *   SAT_ERR_TLS_CLOSED     the peer closed the session with close_notify
 *   SAT_ERR_TLS_CONFIG     a PEM input does not parse or does not fit
 *   SAT_ERR_TLS_CRYPTO     the crypto library failed internally
 * On a client, a refusal the server announced with an alert is mapped the
 * same way (certificate_revoked -> SAT_ERR_TLS_REVOKED, certificate_expired
 * -> SAT_ERR_TLS_EXPIRED, ...). Such alerts are NOT authenticated (they
 * arrive before the handshake completes): show or log them, but never wipe a
 * device on one; the hub's authenticated HelloAck decides that.
 * A network failure returns the HAL's own code (SAT_ERR_CLOSED when the TCP
 * stream ended without close_notify, SAT_ERR_RESET, ...). After any error
 * other than SAT_ERR_WOULD_BLOCK the connection is dead: every later call on
 * it returns the same code; free it and close the socket.
 *
 * The server logs through hal_log, at warn level, why it refused each client
 * (no certificate, other CA, expired or not yet valid, revoked, version or
 * cipher suite), with the certificate's CN when it has one.
 */
#ifndef SATCHEL_TLS_H
#define SATCHEL_TLS_H

#include <stddef.h>

#include "hal.h"

/* A saved client session may need this much: it holds the server's
 * certificate and the server's ticket. */
#define TLS_SESSION_BYTES_MAX 4096
/* Longest peer common name, without its NUL (pki.h's PKI_CN_BYTES_MAX). */
#define TLS_PEER_CN_BYTES_MAX 64
/* A handshake not finished this long after its first step fails with
 * SAT_ERR_TIMEOUT (HAL monotonic clock): a silent peer cannot hold a
 * connection's memory for ever. */
#define TLS_HANDSHAKE_MS_MAX 30000u
/* How long a session can be resumed by ticket, counted from the full
 * handshake that made it (Mbed TLS keeps a session's start time through
 * resumptions, so a tablet that syncs every day still does a full handshake
 * this often), and the server's ticket key rotation period (Mbed TLS 2.28
 * counts both with time()). Seven days, the most TLS 1.3 allows a ticket
 * (RFC 8446, 4.6.1): a resumption still rechecks the certificate's validity
 * and, on the hub, the device's admission, so this bounds neither expiry
 * nor revocation, only how long one master secret is reused. */
#define TLS_TICKET_LIFETIME_S (7u * 86400u)

struct tls_config;
struct tls_conn;

/* A client's saved session: opaque bytes, len == 0 when empty. It holds the
 * session's master secret: keep it in RAM or in the encrypted store, never
 * in plain storage. The format belongs to this build of Mbed TLS; a session
 * saved by another build is ignored (a full handshake follows). */
struct tls_session {
    size_t len;
    unsigned char bytes[TLS_SESSION_BYTES_MAX];
};

/* Server's admission check, asked during every handshake (full or resumed)
 * once the client's certificate has passed every other check.
 * arg: the pointer given to tls_config_server. peer_cn: the client
 * certificate's subject CN (a device's id), NUL-terminated, only valid
 * during the call. Returns 0 to admit; anything else refuses the device as
 * revoked (SAT_ERR_TLS_REVOKED, alert certificate_revoked). It must not
 * block and must not call back into this module. */
typedef int (*tls_admit_fn)(void *arg, const char *peer_cn);

/* Makes a client (device) configuration.
 * h: the HAL (entropy, clocks, network, log); must outlive the config.
 * ca_pem: the fleet CA certificate(s), PEM. cert_pem / key_pem: the device's
 * certificate and its P-256 private key, PEM. All NUL-terminated; copied, so
 * the caller may wipe and free them on return.
 * *out: on SAT_OK, a config to release with tls_config_free.
 * Returns SAT_OK; SAT_ERR_INVALID (NULL argument); SAT_ERR_TLS_CONFIG (a PEM
 * does not parse, the key is not P-256 or does not match the certificate,
 * or the certificate is made for the other role: a device's must allow
 * clientAuth, the hub's serverAuth, both digitalSignature);
 * SAT_ERR_NO_MEMORY; SAT_ERR_TLS_CRYPTO; or the HAL's entropy error. */
SAT_CHECK int tls_config_client(struct tls_config **out, const struct hal *h, const char *ca_pem,
                      const char *cert_pem, const char *key_pem);

/* Makes a server (hub) configuration, as tls_config_client plus:
 * admit: the admission check (may be NULL: admit every client whose
 * certificate passes); arg: passed to it unchanged.
 * The session ticket key is random and lives in the config: restarting the
 * server makes clients fall back to one full handshake. */
SAT_CHECK int tls_config_server(struct tls_config **out, const struct hal *h, const char *ca_pem,
                      const char *cert_pem, const char *key_pem, tls_admit_fn admit, void *arg);

/* Releases a config and wipes its keys. NULL is a no-op. Free every
 * connection made from it first. */
void tls_config_free(struct tls_config *cfg);

/* Empties a saved session and wipes its bytes. */
void tls_session_clear(struct tls_session *s);

/* Starts a connection over sock (already connected, or still connecting:
 * the handshake waits for it). cfg: a client or server config. resume:
 * client only, may be NULL or empty: a session saved by
 * tls_conn_save_session to offer to the server; it is copied. A session that
 * does not load is ignored. The handshake starts with tls_conn_handshake.
 * *out: on SAT_OK, a connection to release with tls_conn_free.
 * Returns SAT_OK; SAT_ERR_INVALID (NULL argument, or resume on a server);
 * SAT_ERR_NO_MEMORY; SAT_ERR_TLS_CRYPTO. */
SAT_CHECK int tls_conn_new(struct tls_conn **out, struct tls_config *cfg, hal_sock *sock,
                 const struct tls_session *resume);

/* Advances the handshake as far as the network allows.
 * Returns SAT_OK once it is complete (and again on later calls);
 * SAT_ERR_WOULD_BLOCK: wait (tls_conn_wants) and call again; SAT_ERR_TIMEOUT
 * after TLS_HANDSHAKE_MS_MAX; or a refusal / failure code listed above. */
SAT_CHECK int tls_conn_handshake(struct tls_conn *c);

/* Sends application data, after the handshake. *sent (> 0 on SAT_OK) is how
 * many bytes of buf were taken; send the rest with another call. After
 * SAT_ERR_WOULD_BLOCK, call again with the same buf and len: part of them
 * may already be on their way. len == 0 sends nothing and returns SAT_OK
 * with *sent = 0. SAT_ERR_INVALID before the handshake is complete. */
SAT_CHECK int tls_conn_send(struct tls_conn *c, const void *buf, size_t len, size_t *sent);

/* Receives application data, after the handshake: up to len bytes into buf,
 * *got > 0 on SAT_OK. SAT_ERR_WOULD_BLOCK when nothing is there yet;
 * SAT_ERR_TLS_CLOSED when the peer sent close_notify; SAT_ERR_INVALID
 * before the handshake is complete (or len == 0). */
SAT_CHECK int tls_conn_recv(struct tls_conn *c, void *buf, size_t len, size_t *got);

/* 1 if decrypted or buffered input is waiting in the connection (call
 * tls_conn_recv before waiting on the socket, which may be idle), else 0. */
int tls_conn_pending(const struct tls_conn *c);

/* What the last SAT_ERR_WOULD_BLOCK waited for: HAL_NET_READABLE or
 * HAL_NET_WRITABLE, the `want` to give hal_net_wait for this socket. */
unsigned tls_conn_wants(const struct tls_conn *c);

/* Copies the peer certificate's CN (a device's id on the server, the hub's
 * name on a client) into out (cap bytes, NUL-terminated). After a complete
 * handshake only. Returns SAT_OK; SAT_ERR_INVALID (handshake not complete,
 * or cap too small: TLS_PEER_CN_BYTES_MAX + 1 always suffices). */
SAT_CHECK int tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t cap);

/* 1 if the completed handshake resumed an earlier session (no certificates
 * were exchanged), 0 if it was a full handshake or is not complete. */
int tls_conn_resumed(const struct tls_conn *c);

/* The negotiated cipher suite's IANA-style name, or "" before the handshake
 * completes. Static string. */
const char *tls_conn_suite(const struct tls_conn *c);

/* Client only, after a complete handshake: saves the session (including any
 * new ticket from the server) into *out for tls_conn_new's resume. Save after
 * every successful handshake: a resumed one may bring a fresh ticket.
 * Returns SAT_OK; SAT_ERR_INVALID (server, handshake not complete, or a
 * session larger than TLS_SESSION_BYTES_MAX); SAT_ERR_NO_MEMORY. On any
 * failure *out is left empty (len 0). */
SAT_CHECK int tls_conn_save_session(struct tls_conn *c, struct tls_session *out);

/* Sends close_notify. SAT_OK once it has been handed to the socket;
 * SAT_ERR_WOULD_BLOCK: call again when writable. Then the caller closes the
 * socket; the peer's own close_notify is not awaited. */
int tls_conn_close_notify(struct tls_conn *c);

/* Releases a connection and wipes its keys; does not close the socket.
 * NULL is a no-op. */
void tls_conn_free(struct tls_conn *c);

#endif
