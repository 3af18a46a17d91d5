/* fuzz_world.c - see fuzz_world.h. */
#include "fuzz_world.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "pki.h"
#include "store_fixture.h"
#include "vfs_crypt.h"

#define ID16(b) { b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b }

const uint8_t fuzz_dev_id[HUB_ID_BYTES] = ID16(0xd1);
const uint8_t fuzz_colleague_id[HUB_ID_BYTES] = ID16(0xc2);
const uint8_t fuzz_south_id[HUB_ID_BYTES] = ID16(0x53);
const uint8_t fuzz_patient_north[HUB_ID_BYTES] = ID16(0x4e);
const uint8_t fuzz_patient_moved[HUB_ID_BYTES] = ID16(0x6d);
const uint8_t fuzz_patient_south[HUB_ID_BYTES] = ID16(0x73);
static const uint8_t obs_north[HUB_ID_BYTES] = ID16(0x0b);

static void change_head(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                        uint32_t field, uint64_t wall_ms, const uint8_t origin[HUB_ID_BYTES],
                        uint64_t seq)
{
    memset(c, 0, sizeof *c);
    memcpy(c->record_id, record, HUB_ID_BYTES);
    c->kind = (satchel_RecordKind)kind;
    c->field = field;
    c->has_value = true;
    c->has_stamp = true;
    c->stamp.wall_ms = wall_ms;
    memcpy(c->origin_device, origin, HUB_ID_BYTES);
    c->origin_seq = seq;
}

void fuzz_change_text(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                      uint32_t field, const char *text, uint64_t wall_ms,
                      const uint8_t origin[HUB_ID_BYTES], uint64_t seq)
{
    change_head(c, record, kind, field, wall_ms, origin, seq);
    c->value.which_value = satchel_FieldValue_text_tag;
    snprintf(c->value.value.text, sizeof c->value.value.text, "%s", text);
}

void fuzz_change_int(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                     uint32_t field, int64_t value, uint64_t wall_ms,
                     const uint8_t origin[HUB_ID_BYTES], uint64_t seq)
{
    change_head(c, record, kind, field, wall_ms, origin, seq);
    c->value.which_value = satchel_FieldValue_integer_tag;
    c->value.value.integer = value;
}

void fuzz_change_blob(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                      uint32_t field, const uint8_t blob[HUB_ID_BYTES], uint64_t wall_ms,
                      const uint8_t origin[HUB_ID_BYTES], uint64_t seq)
{
    change_head(c, record, kind, field, wall_ms, origin, seq);
    c->value.which_value = satchel_FieldValue_blob_tag;
    memcpy(c->value.value.blob.bytes, blob, HUB_ID_BYTES);
    c->value.value.blob.size = HUB_ID_BYTES;
}

/* A patient's text fields as `origin` writes them, from sequence *seq on. */
static size_t patient_changes(satchel_FieldChange *c, const uint8_t id[HUB_ID_BYTES],
                              const char *nhs, const char *family, const char *team,
                              const uint8_t origin[HUB_ID_BYTES], uint64_t *seq)
{
    static const int fields[] = { satchel_Patient_nhs_number_tag, satchel_Patient_given_name_tag,
                                  satchel_Patient_family_name_tag,
                                  satchel_Patient_date_of_birth_tag, satchel_Patient_address_tag,
                                  satchel_Patient_postcode_tag, satchel_Patient_team_tag };
    const char *values[] = { nhs, "Cerys", family, "1948-03-09", "4 Heol y Nant", "SA1 1AA",
                             team };
    uint64_t wall = (uint64_t)FUZZ_WALL_START_MS - 60000;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        fuzz_change_text(&c[i], id, satchel_RecordKind_RECORD_KIND_PATIENT, (uint32_t)fields[i],
                         values[i], wall, origin, *seq);
        c[i].stamp.counter = (uint32_t)i;
        (*seq)++;
    }
    return sizeof fields / sizeof fields[0];
}

void fuzz_sqlite_reseed(void)
{
    sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, (int)FUZZ_TABLET_SEED, NULL);
}

int64_t fuzz_hub_clock(void *arg)
{
    (void)arg;
    return FUZZ_HUB_TIME_MS;
}

int fuzz_hub_open(struct hub_store **out)
{
    satchel_FieldChange c[16];
    struct hub_push_result r;
    struct hub_store *hub = NULL;
    satchel_Hlc moved_at = { (uint64_t)FUZZ_WALL_START_MS, 9 };
    uint64_t wall = (uint64_t)FUZZ_WALL_START_MS - 30000;
    uint64_t seq = 1;
    size_t n;
    int ret;
    fuzz_sqlite_reseed();
    ret = hub_store_open(":memory:", &hub, NULL);
    if (ret == SAT_OK)
        ret = hub_store_device_register(hub, fuzz_dev_id, "north");
    if (ret == SAT_OK)
        ret = hub_store_device_register(hub, fuzz_colleague_id, "north");
    if (ret == SAT_OK)
        ret = hub_store_device_register(hub, fuzz_south_id, "south");
    /* The colleague's patient, with an observation; and one that moves. */
    n = patient_changes(c, fuzz_patient_north, "9434765919", "Pryce", "north",
                        fuzz_colleague_id, &seq);
    fuzz_change_blob(&c[n], obs_north, satchel_RecordKind_RECORD_KIND_OBSERVATION,
                     satchel_Observation_patient_id_tag, fuzz_patient_north, wall,
                     fuzz_colleague_id, seq++);
    n++;
    fuzz_change_int(&c[n], obs_north, satchel_RecordKind_RECORD_KIND_OBSERVATION,
                    satchel_Observation_taken_ms_tag, (int64_t)wall, wall, fuzz_colleague_id,
                    seq++);
    n++;
    fuzz_change_int(&c[n], obs_north, satchel_RecordKind_RECORD_KIND_OBSERVATION,
                    500 + satchel_VitalSigns_pulse_tag, 88, wall, fuzz_colleague_id, seq++);
    n++;
    if (ret == SAT_OK)
        ret = hub_store_push(hub, fuzz_colleague_id, 1, c, n, &r);
    n = patient_changes(c, fuzz_patient_moved, "4010232137", "Lloyd", "north",
                        fuzz_colleague_id, &seq);
    if (ret == SAT_OK)
        ret = hub_store_push(hub, fuzz_colleague_id, c[0].origin_seq, c, n, &r);
    if (ret == SAT_OK)
        ret = hub_store_patient_assign(hub, fuzz_patient_moved, "south", &moved_at);
    seq = 1;
    n = patient_changes(c, fuzz_patient_south, "9876543210", "Vaughan", "south", fuzz_south_id,
                        &seq);
    if (ret == SAT_OK)
        ret = hub_store_push(hub, fuzz_south_id, 1, c, n, &r);
    if (ret != SAT_OK) {
        hub_store_close(hub);
        return ret;
    }
    *out = hub;
    return SAT_OK;
}

/* ---- flash ----------------------------------------------------------------- */

struct list_ctx {
    struct sim_hal *sim;
    struct fuzz_flash *out;
    int ret;
};

static int save_one(void *arg, const char *name)
{
    struct list_ctx *lc = arg;
    struct fuzz_flash *f = lc->out;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (f->n >= FUZZ_FLASH_FILES_MAX) {
        lc->ret = SAT_ERR_NO_SPACE;
        return 1;
    }
    lc->ret = sim_hal_file_bytes(lc->sim, name, &bytes, &len);
    if (lc->ret != SAT_OK)
        return 1;
    f->bytes[f->n] = malloc(len ? len : 1);
    if (!f->bytes[f->n]) {
        lc->ret = SAT_ERR_NO_MEMORY;
        return 1;
    }
    memcpy(f->bytes[f->n], bytes, len);
    f->len[f->n] = len;
    snprintf(f->name[f->n], sizeof f->name[f->n], "%s", name);
    f->n++;
    return 0;
}

int fuzz_flash_save(struct sim_hal *sim, struct fuzz_flash *out)
{
    struct list_ctx lc = { sim, out, SAT_OK };
    int ret;
    memset(out, 0, sizeof *out);
    ret = hal_storage_list(sim_hal_hal(sim), save_one, &lc);
    if (ret == SAT_OK)
        ret = lc.ret;
    if (ret != SAT_OK)
        fuzz_flash_free(out);
    return ret;
}

int fuzz_file_write(const struct hal *h, const char *name, const uint8_t *bytes, size_t len)
{
    hal_file *f = NULL;
    int ret = hal_storage_open(h, name, HAL_OPEN_CREATE, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_truncate(h, f, 0);
    if (ret == SAT_OK && len > 0)
        ret = hal_storage_write(h, f, 0, bytes, len);
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
    if (hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    return ret;
}

int fuzz_flash_load(const struct hal *h, const struct fuzz_flash *f)
{
    int ret = SAT_OK;
    for (size_t i = 0; ret == SAT_OK && i < f->n; i++)
        ret = fuzz_file_write(h, f->name[i], f->bytes[i], f->len[i]);
    return ret;
}

void fuzz_flash_free(struct fuzz_flash *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->bytes[i]);
    memset(f, 0, sizeof *f);
}

/* ---- keys ------------------------------------------------------------------ */

int fuzz_keys_device(struct sim_hal **out)
{
    uint8_t secret[HAL_DEVICE_SECRET_BYTES];
    int ret = sim_hal_new(out, FUZZ_KEYS_SEED, FUZZ_WALL_START_MS);
    if (ret != SAT_OK)
        return ret;
    ret = hal_keystore_device_secret(sim_hal_hal(*out), secret);
    memset(secret, 0, sizeof secret);
    if (ret != SAT_OK) {
        sim_hal_free(*out);
        *out = NULL;
    }
    return ret;
}

int fuzz_recovery_key(uint8_t pub[KEYS_RECOVERY_PUB_BYTES],
                      uint8_t priv[KEYS_RECOVERY_PRIV_BYTES])
{
    struct sim_hal *sim = NULL;
    int ret = sim_hal_new(&sim, FUZZ_KEYS_SEED + 1, FUZZ_WALL_START_MS);
    if (ret == SAT_OK)
        ret = pki_recovery_keygen(sim_hal_hal(sim), pub, priv);
    sim_hal_free(sim);
    return ret;
}

/* ---- the tablet ------------------------------------------------------------ */

static int tablet_records(struct store *s)
{
    struct store_patient p;
    struct store_visit v;
    struct store_obs o;
    struct store_note *n = calloc(1, sizeof *n);
    struct store_task t;
    struct store_id dev;
    uint64_t rng = 11;
    int ret = n ? SAT_OK : SAT_ERR_NO_MEMORY;
    memcpy(dev.b, fuzz_dev_id, HUB_ID_BYTES);
    if (ret == SAT_OK)
        ret = store_adopt_device_id(s, &dev);
    fixture_patient(&rng, &p, "");
    snprintf(p.team, sizeof p.team, "north");
    if (ret == SAT_OK)
        ret = store_patient_add(s, &p);
    if (ret == SAT_OK)
        ret = store_visit_start(s, &p.id, "wound care", &v);
    memset(&o, 0, sizeof o);
    o.patient_id = p.id;
    o.has_visit = 1;
    o.visit_id = v.id;
    fixture_vitals(&rng, &o.vitals);
    if (ret == SAT_OK)
        ret = store_obs_add(s, &o);
    if (ret == SAT_OK) {
        n->patient_id = p.id;
        n->has_visit = 1;
        n->visit_id = v.id;
        snprintf(n->text, sizeof n->text, "Dressing changed; healing well.");
        ret = store_note_add(s, n);
    }
    memset(&t, 0, sizeof t);
    t.patient_id = p.id;
    snprintf(t.title, sizeof t.title, "Review in a week");
    t.due_ms = FUZZ_WALL_START_MS + 7 * 86400000LL;
    if (ret == SAT_OK)
        ret = store_task_add(s, &t);
    if (ret == SAT_OK)
        ret = store_visit_end(s, &v.id, NULL);
    free(n);
    return ret;
}

int fuzz_tablet_template(struct fuzz_flash *out)
{
    struct fuzz_tablet t;
    struct fuzz_flash none = { 0 };
    int ret = fuzz_tablet_open(&t, &none);
    if (ret != SAT_OK)
        return ret;
    ret = tablet_records(t.s);
    store_close(t.s);
    t.s = NULL;
    if (ret == SAT_OK)
        ret = fuzz_flash_save(t.sim, out);
    fuzz_tablet_close(&t);
    return ret;
}

int fuzz_tablet_open(struct fuzz_tablet *t, const struct fuzz_flash *flash)
{
    int ret;
    memset(t, 0, sizeof *t);
    fuzz_sqlite_reseed();
    ret = sim_hal_new(&t->sim, FUZZ_TABLET_SEED, FUZZ_WALL_START_MS);
    if (ret != SAT_OK)
        return ret;
    fixture_keys(&t->k, sim_hal_hal(t->sim), FUZZ_TABLET_SEED);
    ret = fuzz_flash_load(sim_hal_hal(t->sim), flash);
    if (ret == SAT_OK)
        ret = store_open(sim_hal_hal(t->sim), &t->k, &t->s, NULL);
    if (ret != SAT_OK) {
        t->s = NULL;
        fuzz_tablet_close(t);
        return ret;
    }
    t->glue.hal = sim_hal_hal(t->sim);
    t->glue.keys = &t->k;
    t->glue.store = &t->s;
    sync_glue_replica(&t->glue, &t->replica);
    return SAT_OK;
}

void fuzz_tablet_close(struct fuzz_tablet *t)
{
    store_close(t->s);
    t->s = NULL;
    keys_lock(&t->k);
    sim_hal_free(t->sim);
    t->sim = NULL;
}

/* ---- reading a whole store ---------------------------------------------------- */

/* Records listed per kind and patient: enough to read every row of the
 * corpus's stores, bounded for a store an input made huge. */
#define ROWS_MAX 64

struct reader {
    struct store *s;
    unsigned rows;
};

/* Every store call answers SAT_OK or a SAT_ERR code; a listing the reader
 * stopped answers its callback's 1. */
static void answer(int ret)
{
    FUZZ_CHECK(ret <= 0 || ret == 1, "a store call answered %d", ret);
}

static int count_row(void *arg)
{
    struct reader *r = arg;
    return ++r->rows >= ROWS_MAX;
}

static int visit_cb(void *arg, const struct store_visit *v)
{
    (void)v;
    return count_row(arg);
}

static int obs_cb(void *arg, const struct store_obs *o)
{
    (void)o;
    return count_row(arg);
}

static int note_cb(void *arg, const struct store_note *n)
{
    (void)n;
    return count_row(arg);
}

static int task_cb(void *arg, const struct store_task *t)
{
    (void)t;
    return count_row(arg);
}

static int patient_cb(void *arg, const struct store_patient *p)
{
    struct reader *r = arg;
    struct reader each = { r->s, 0 };
    struct store_patient again;
    answer(store_patient_get(r->s, &p->id, &again));
    answer(store_visit_list(r->s, &p->id, visit_cb, &each));
    answer(store_obs_list(r->s, &p->id, obs_cb, &each));
    answer(store_note_list(r->s, &p->id, note_cb, &each));
    answer(store_task_list(r->s, &p->id, task_cb, &each));
    return count_row(arg);
}

static int change_cb(void *arg, const struct store_change *c)
{
    (void)c;
    return count_row(arg);
}

static int conflict_cb(void *arg, const struct store_conflict *c)
{
    (void)c;
    return count_row(arg);
}

void fuzz_store_read_all(struct store *s)
{
    struct reader r = { s, 0 };
    struct store_sync_state st;
    struct store_id id;
    uint8_t hash[32];

    answer(store_sync_state(s, &st));
    answer(store_patient_list(s, patient_cb, &r));
    r.rows = 0;
    answer(store_changes(s, 0, ROWS_MAX, change_cb, &r));
    r.rows = 0;
    answer(store_conflicts(s, conflict_cb, &r));
    answer(store_content_hash(s, hash));
    answer(store_resolve_id(s, RECORD_KIND_PATIENT, "000000", &id));
}

/* ---- store files as SQLite sees them ------------------------------------------ */

struct vfs_file {
    struct vfs_crypt *v;
    sqlite3_vfs *vfs;
    sqlite3_file *f;
    int open;
};

static int vfs_file_open(struct vfs_file *vf, const struct hal *h, const struct keys *k,
                         const char *name, int flags)
{
    uint8_t key[VFS_CRYPT_KEY_BYTES];
    int ret = store_file_key(k, key);
    memset(vf, 0, sizeof *vf);
    if (ret == SAT_OK)
        ret = vfs_crypt_register(h, key, k->store_id, &vf->v);
    memset(key, 0, sizeof key);
    if (ret != SAT_OK)
        return ret;
    vf->vfs = sqlite3_vfs_find(vfs_crypt_name(vf->v));
    vf->f = vf->vfs ? calloc(1, (size_t)vf->vfs->szOsFile) : NULL;
    if (!vf->f ||
        vf->vfs->xOpen(vf->vfs, name, vf->f, flags | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                       NULL) != SQLITE_OK) {
        free(vf->f);
        vfs_crypt_unregister(vf->v);
        return SAT_ERR_IO;
    }
    vf->open = 1;
    return SAT_OK;
}

static void vfs_file_close(struct vfs_file *vf)
{
    if (vf->open)
        vf->f->pMethods->xClose(vf->f);
    free(vf->f);
    vfs_crypt_unregister(vf->v);
    memset(vf, 0, sizeof *vf);
}

/* The length of the unit that starts at `off`. */
static size_t unit_at(int flags, size_t off)
{
    if (flags & SQLITE_OPEN_WAL)
        return off == 0 ? VFS_CRYPT_WAL_HEADER_BYTES : VFS_CRYPT_WAL_FRAME_BYTES;
    return VFS_CRYPT_BLOCK_BYTES;
}

int fuzz_store_file_read(const struct hal *h, const struct keys *k, const char *name, int flags,
                         uint8_t **out, size_t *len)
{
    struct vfs_file vf;
    sqlite3_int64 size = 0;
    uint8_t *buf = NULL;
    int ret = vfs_file_open(&vf, h, k, name, flags);
    if (ret != SAT_OK)
        return ret;
    if (vf.f->pMethods->xFileSize(vf.f, &size) != SQLITE_OK || size < 0)
        ret = SAT_ERR_IO;
    if (ret == SAT_OK && !(buf = malloc(size ? (size_t)size : 1)))
        ret = SAT_ERR_NO_MEMORY;
    for (size_t off = 0; ret == SAT_OK && off < (size_t)size;) {
        size_t n = unit_at(flags, off);
        if (n > (size_t)size - off)
            n = (size_t)size - off;
        if (vf.f->pMethods->xRead(vf.f, buf + off, (int)n, (sqlite3_int64)off) != SQLITE_OK)
            ret = SAT_ERR_STORE_CORRUPT;
        off += n;
    }
    vfs_file_close(&vf);
    if (ret != SAT_OK) {
        free(buf);
        return ret;
    }
    *out = buf;
    *len = (size_t)size;
    return SAT_OK;
}

int fuzz_store_file_seal(const struct hal *h, const struct keys *k, const char *name, int flags,
                         const uint8_t *plain, size_t len)
{
    struct vfs_file vf;
    int ret = vfs_file_open(&vf, h, k, name, flags);
    if (ret != SAT_OK)
        return ret;
    for (size_t off = 0; ret == SAT_OK && off < len;) {
        size_t n = unit_at(flags, off);
        if (n > len - off)
            n = len - off;
        if (vf.f->pMethods->xWrite(vf.f, plain + off, (int)n, (sqlite3_int64)off) != SQLITE_OK)
            ret = SAT_ERR_IO;
        off += n;
    }
    if (ret == SAT_OK && vf.f->pMethods->xSync(vf.f, SQLITE_SYNC_FULL) != SQLITE_OK)
        ret = SAT_ERR_IO;
    vfs_file_close(&vf);
    return ret;
}
