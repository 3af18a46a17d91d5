/*
 * cmd_export.c - `satchel export --json [--patient ID]`: the caseload, or
 * one patient, as one pretty-printed JSON document on stdout:
 *   { "format": "satchel-caseload/1", "device_id": "<32 hex>",
 *     "patients": [ { id, nhs_number, given_name, family_name,
 *       date_of_birth, address, postcode, team, visits, observations,
 *       care_notes, tasks }, ... ] }
 * Ids are full 32-digit hex; times are "YYYY-MM-DDTHH:MMZ" (UTC), null when
 * unset. Nothing is printed unless the whole document was read (a store
 * error: its reason on stderr and its exit status). The document is built
 * in memory with json-c and freed before the command returns.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>

#include "cli.h"
#include "news2.h"
#include "sat_err.h"

static json_object *json_id(const struct store_id *id)
{
    char hex[STORE_ID_HEX_BYTES];
    store_id_to_hex(id, hex);
    return json_object_new_string(hex);
}

static json_object *json_time(int64_t ms)
{
    char t[32];
    if (ms <= 0)
        return NULL;
    cli_format_time(ms, t);
    return json_object_new_string(t);
}

static int json_visit(void *arg, const struct store_visit *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_id(&v->id));
    json_object_object_add(o, "started", json_time(v->started_ms));
    json_object_object_add(o, "ended", json_time(v->ended_ms));
    json_object_object_add(o, "reason", json_object_new_string(v->reason));
    return json_object_array_add(arg, o);
}

static int json_obs(void *arg, const struct store_obs *o)
{
    static const char *const acvpu[] = { "", "A", "C", "V", "P", "U" };
    json_object *j = json_object_new_object();
    json_object *v = json_object_new_object();
    json_object_object_add(j, "id", json_id(&o->id));
    if (o->has_visit)
        json_object_object_add(j, "visit", json_id(&o->visit_id));
    if (o->has_amends)
        json_object_object_add(j, "amends", json_id(&o->amends));
    json_object_object_add(j, "taken", json_time(o->taken_ms));
    json_object_object_add(v, "respiration_rate", json_object_new_int(o->vitals.respiration_rate));
    json_object_object_add(v, "spo2_pct", json_object_new_int(o->vitals.spo2_pct));
    json_object_object_add(v, "spo2_scale", json_object_new_int(o->vitals.spo2_scale));
    json_object_object_add(v, "on_oxygen", json_object_new_boolean(o->vitals.on_oxygen));
    json_object_object_add(v, "systolic_bp", json_object_new_int(o->vitals.systolic_bp));
    json_object_object_add(v, "pulse", json_object_new_int(o->vitals.pulse));
    json_object_object_add(v, "consciousness",
                           json_object_new_string(o->vitals.consciousness >= 1 &&
                                                          o->vitals.consciousness <= 5
                                                      ? acvpu[o->vitals.consciousness]
                                                      : ""));
    json_object_object_add(v, "temperature_c",
                           json_object_new_double(o->vitals.temperature_dc / 10.0));
    json_object_object_add(j, "vital_signs", v);
    /* Computed here from the vital signs; an incomplete set has no score
     * (null), high risk and the name of what is missing. */
    json_object_object_add(j, "news2_score", o->news2_incomplete
                                                 ? NULL
                                                 : json_object_new_int(o->news2_score));
    json_object_object_add(j, "news2_risk", json_object_new_string(news2_risk_name(o->news2_risk)));
    if (o->news2_incomplete)
        json_object_object_add(j, "news2_incomplete",
                               json_object_new_string(news2_field_name(o->news2_incomplete)));
    if (o->news2_carried != o->news2_score)
        json_object_object_add(j, "news2_carried_score", json_object_new_int(o->news2_carried));
    return json_object_array_add(arg, j);
}

static int json_note(void *arg, const struct store_note *n)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_id(&n->id));
    if (n->has_visit)
        json_object_object_add(j, "visit", json_id(&n->visit_id));
    if (n->has_amends)
        json_object_object_add(j, "amends", json_id(&n->amends));
    json_object_object_add(j, "written", json_time(n->written_ms));
    json_object_object_add(j, "text", json_object_new_string(n->text));
    return json_object_array_add(arg, j);
}

static int json_task(void *arg, const struct store_task *t)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_id(&t->id));
    json_object_object_add(j, "title", json_object_new_string(t->title));
    json_object_object_add(j, "due", json_time(t->due_ms));
    json_object_object_add(j, "done", json_object_new_boolean(t->done));
    return json_object_array_add(arg, j);
}

struct export_ctx {
    struct store *s;
    json_object *patients;
    int err;
};

static int json_patient(void *arg, const struct store_patient *p)
{
    struct export_ctx *ec = arg;
    json_object *j = json_object_new_object();
    json_object *visits = json_object_new_array();
    json_object *obs = json_object_new_array();
    json_object *notes = json_object_new_array();
    json_object *tasks = json_object_new_array();
    json_object_object_add(j, "id", json_id(&p->id));
    json_object_object_add(j, "nhs_number", json_object_new_string(p->nhs_number));
    json_object_object_add(j, "given_name", json_object_new_string(p->given_name));
    json_object_object_add(j, "family_name", json_object_new_string(p->family_name));
    json_object_object_add(j, "date_of_birth", json_object_new_string(p->date_of_birth));
    json_object_object_add(j, "address", json_object_new_string(p->address));
    json_object_object_add(j, "postcode", json_object_new_string(p->postcode));
    json_object_object_add(j, "team", json_object_new_string(p->team));
    json_object_object_add(j, "visits", visits);
    json_object_object_add(j, "observations", obs);
    json_object_object_add(j, "care_notes", notes);
    json_object_object_add(j, "tasks", tasks);
    json_object_array_add(ec->patients, j);
    ec->err = store_visit_list(ec->s, &p->id, json_visit, visits);
    if (ec->err == SAT_OK)
        ec->err = store_obs_list(ec->s, &p->id, json_obs, obs);
    if (ec->err == SAT_OK)
        ec->err = store_note_list(ec->s, &p->id, json_note, notes);
    if (ec->err == SAT_OK)
        ec->err = store_task_list(ec->s, &p->id, json_task, tasks);
    return ec->err;
}

int cmd_export(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
                                          { "patient", required_argument, NULL, 'p' },
                                          { NULL, 0, NULL, 0 } };
    const char *patient = NULL;
    int json = 0;
    int c;
    int rc;
    int ret;
    json_object *root;
    struct export_ctx ec = { NULL, NULL, SAT_OK };
    struct store_id dev;
    cli_reset_getopt();
    while ((c = cli_next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'j')
            json = 1;
        else
            patient = optarg;
    }
    if (optind != argc)
        return cli_usage_error("'export' takes no argument '%s'", argv[optind]);
    if (!json)
        return cli_usage_error("'export' needs a format: --json%s", "");
    rc = cli_open_store(a);
    if (rc != EXIT_OK)
        return rc;
    root = json_object_new_object();
    ec.s = a->store;
    ec.patients = json_object_new_array();
    store_device_id(a->store, &dev);
    json_object_object_add(root, "format", json_object_new_string("satchel-caseload/1"));
    json_object_object_add(root, "device_id", json_id(&dev));
    json_object_object_add(root, "patients", ec.patients);
    if (patient) {
        struct store_id id;
        struct store_patient p;
        rc = cli_resolve(a, RECORD_KIND_PATIENT, patient, &id);
        if (rc == EXIT_OK) {
            ret = store_patient_get(a->store, &id, &p);
            ret = ret == SAT_OK ? json_patient(&ec, &p) : ret;
            rc = ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
        }
    } else {
        ret = store_patient_list(a->store, json_patient, &ec);
        rc = ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
    }
    if (rc == EXIT_OK)
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return rc;
}
