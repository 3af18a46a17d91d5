/*
 * cmd_records.c - the record commands of `satchel`: the caseload a nurse
 * keeps and reads on her rounds.
 *
 *   patient add|update|show|list|delete   who is on the caseload
 *   visit start|end                       a home visit, open until ended
 *   obs add                               vital signs; the store scores
 *                                         NEWS2 and the score is printed
 *   note add|amend                        care notes; an amendment is a new
 *                                         note pointing at the one it corrects
 *   task add|done                         things to do, with an optional due
 *
 * Each one checks all of its options before it asks for the PIN, so a
 * mistyped command fails without unlocking anything (exit 2; a text too
 * long for its field, 4). A command that creates a record prints its full
 * id on the first line; listings show an id's first 8 hex digits. An id is
 * given as 6 or more leading hex digits (cli_resolve): unknown or
 * ambiguous, exit 5. Bad record data is exit 4 and nothing is written. The
 * store (store.h) validates and owns the records; these commands parse,
 * resolve ids and print.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "news2.h"
#include "sat_date.h"
#include "sat_err.h"

/* ---- option parsing ----------------------------------------------------- */

/* Copies src into a text field, or fails with a usage-style message. */
static int set_text(char *dst, size_t cap, const char *src, const char *what)
{
    if (strlen(src) >= cap) {
        fprintf(stderr, "satchel: %s is too long (at most %zu characters)\n", what, cap - 1);
        return EXIT_INVALID;
    }
    memcpy(dst, src, strlen(src) + 1);
    return EXIT_OK;
}

/* "37.2" -> 372 tenths, "37" -> 370: decimal digits with at most one after
 * the point, read as an integer (no floating point: strtod took "0x25" as
 * 37 and "nan" into an undefined conversion). */
static int parse_temp(const char *s, int *out)
{
    char whole[8];
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    int ok = n < sizeof whole && (!dot || (dot[1] >= '0' && dot[1] <= '9' && dot[2] == '\0'));
    long tenths = 0;
    if (ok) {
        memcpy(whole, s, n);
        whole[n] = '\0';
        ok = cli_decimal(whole, 3);
    }
    if (ok) {
        tenths = strtol(whole, NULL, 10) * 10;
        if (dot)
            tenths += (whole[0] == '-' ? -1 : 1) * (dot[1] - '0');
        ok = tenths >= -1000 && tenths <= 1000;
    }
    if (!ok) {
        fprintf(stderr, "satchel: --temp must be degrees Celsius like 37.2, not '%s'\n", s);
        return EXIT_USAGE;
    }
    *out = (int)tenths;
    return EXIT_OK;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (UTC) → Unix ms. */
static int parse_due(const char *s, int64_t *out)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0;
    int n = 0;
    if ((sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || (s[n] && s[n] != 'T')) ||
        (s[n] == 'T' && (sscanf(s + n, "T%2d:%2d", &h, &mi) != 2 || strlen(s + n) != 6)) ||
        y < 1970 || y > 9999 || !sat_date_valid(y, mo, d) || h > 23 || mi > 59) {
        fprintf(stderr, "satchel: --due must be YYYY-MM-DD or YYYY-MM-DDTHH:MM, not '%s'\n", s);
        return EXIT_USAGE;
    }
    *out = sat_date_unix_ms(y, mo, d, h, mi, 0);
    return EXIT_OK;
}

static int read_text_file(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "re");
    size_t n;
    if (!fp) {
        fprintf(stderr, "satchel: cannot read '%s'\n", path);
        return EXIT_FAIL;
    }
    n = fread(out, 1, cap, fp);
    fclose(fp);
    if (n == cap) {
        fprintf(stderr, "satchel: '%s' is too long for a note (at most %zu characters)\n", path,
                cap - 1);
        return EXIT_INVALID;
    }
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return EXIT_OK;
}

/* ---- patients ----------------------------------------------------------- */

enum patient_opt { PO_NHS = 1, PO_GIVEN, PO_FAMILY, PO_DOB, PO_ADDRESS, PO_POSTCODE, PO_TEAM };

static const struct option patient_opts[] = {
    { "nhs", required_argument, NULL, PO_NHS },
    { "given", required_argument, NULL, PO_GIVEN },
    { "family", required_argument, NULL, PO_FAMILY },
    { "dob", required_argument, NULL, PO_DOB },
    { "address", required_argument, NULL, PO_ADDRESS },
    { "postcode", required_argument, NULL, PO_POSTCODE },
    { "team", required_argument, NULL, PO_TEAM },
    { NULL, 0, NULL, 0 },
};

/* Applies --nhs/--given/... options to p. */
static int patient_fields(int argc, char **argv, struct store_patient *p)
{
    int c;
    while ((c = cli_next_opt(argc, argv, patient_opts)) != -1) {
        int rc = EXIT_OK;
        switch (c) {
        case PO_NHS: {
            /* Printed numbers have spaces ("943 476 5919"): drop them here. */
            char digits[32];
            size_t n = 0;
            for (const char *s = optarg; *s && n < sizeof digits - 1; s++)
                if (*s != ' ')
                    digits[n++] = *s;
            digits[n] = '\0';
            rc = set_text(p->nhs_number, sizeof p->nhs_number, digits, "NHS number");
            if (rc != EXIT_OK)
                fprintf(stderr, "satchel: an NHS number has 10 digits\n");
            break;
        }
        case PO_GIVEN: rc = set_text(p->given_name, sizeof p->given_name, optarg, "given name"); break;
        case PO_FAMILY: rc = set_text(p->family_name, sizeof p->family_name, optarg, "family name"); break;
        case PO_DOB: rc = set_text(p->date_of_birth, sizeof p->date_of_birth, optarg, "date of birth"); break;
        case PO_ADDRESS: rc = set_text(p->address, sizeof p->address, optarg, "address"); break;
        case PO_POSTCODE: rc = set_text(p->postcode, sizeof p->postcode, optarg, "postcode"); break;
        case PO_TEAM: rc = set_text(p->team, sizeof p->team, optarg, "team"); break;
        default: return EXIT_USAGE;
        }
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

static int print_patient_row(void *arg, const struct store_patient *p)
{
    char hex[STORE_ID_HEX_BYTES];
    char name[300];
    (void)arg;
    store_id_to_hex(&p->id, hex);
    snprintf(name, sizeof name, "%s, %s", p->family_name, p->given_name);
    printf("%.8s  %-30.30s %s  %.3s %.3s %.4s  %s\n", hex, name, p->date_of_birth,
           p->nhs_number, p->nhs_number + 3, p->nhs_number + 6, p->team[0] ? p->team : "-");
    return 0;
}

static int print_visit(void *arg, const struct store_visit *v)
{
    char hex[STORE_ID_HEX_BYTES];
    char t0[32];
    char t1[32];
    (void)arg;
    store_id_to_hex(&v->id, hex);
    cli_format_time(v->started_ms, t0);
    cli_format_time(v->ended_ms, t1);
    printf("  visit %.8s  %s .. %s  %s\n", hex, t0, v->ended_ms ? t1 : "(open)", v->reason);
    return 0;
}

static int print_obs(void *arg, const struct store_obs *o)
{
    static const char acvpu[] = "?ACVPU";
    char hex[STORE_ID_HEX_BYTES];
    char t[32];
    (void)arg;
    store_id_to_hex(&o->id, hex);
    cli_format_time(o->taken_ms, t);
    char score[CLI_NEWS2_TEXT_BYTES];
    printf("  obs %.8s  %s  RR %d SpO2 %d%% (scale %d, %s) BP %d HR %d %c T %d.%d"
           "  NEWS2 %s%s\n",
           hex, t, o->vitals.respiration_rate, o->vitals.spo2_pct, o->vitals.spo2_scale,
           o->vitals.on_oxygen ? "oxygen" : "air", o->vitals.systolic_bp, o->vitals.pulse,
           acvpu[o->vitals.consciousness >= 1 && o->vitals.consciousness <= 5
                     ? o->vitals.consciousness
                     : 0],
           o->vitals.temperature_dc / 10, o->vitals.temperature_dc % 10,
           cli_news2_text(o, score), o->has_amends ? "  (amends an earlier one)" : "");
    return 0;
}

static int print_note(void *arg, const struct store_note *n)
{
    char hex[STORE_ID_HEX_BYTES];
    char amended[STORE_ID_HEX_BYTES];
    char t[32];
    (void)arg;
    store_id_to_hex(&n->id, hex);
    store_id_to_hex(&n->amends, amended);
    cli_format_time(n->written_ms, t);
    if (n->has_amends)
        printf("  note %.8s  %s  (amends %.8s) %s\n", hex, t, amended, n->text);
    else
        printf("  note %.8s  %s  %s\n", hex, t, n->text);
    return 0;
}

static int print_task(void *arg, const struct store_task *t)
{
    char hex[STORE_ID_HEX_BYTES];
    char due[32];
    (void)arg;
    store_id_to_hex(&t->id, hex);
    cli_format_time(t->due_ms, due);
    printf("  task %.8s  [%c] %s%s%s\n", hex, t->done ? 'x' : ' ', t->title,
           t->due_ms ? "  due " : "", t->due_ms ? due : "");
    return 0;
}

int cmd_patient(struct app *a, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    struct store_patient p;
    struct store_id id;
    char hex[STORE_ID_HEX_BYTES];
    int rc;
    int ret;
    memset(&p, 0, sizeof p);
    if (strcmp(sub, "add") == 0) {
        rc = patient_fields(argc - 1, argv + 1, &p);
        if (rc != EXIT_OK)
            return rc;
        if (optind != argc - 1)
            return cli_usage_error("'patient add' takes no argument '%s'", argv[optind + 1]);
        rc = cli_open_store(a);
        if (rc != EXIT_OK)
            return rc;
        ret = store_patient_add(a->store, &p);
        if (ret != SAT_OK)
            return cli_store_failed(a, ret);
        store_id_to_hex(&p.id, hex);
        printf("%s\n", hex);
        return EXIT_OK;
    }
    if (strcmp(sub, "list") == 0) {
        if (argc != 2)
            return cli_usage_error("'patient list' takes no argument '%s'", argv[2]);
        rc = cli_open_store(a);
        if (rc != EXIT_OK)
            return rc;
        ret = store_patient_list(a->store, print_patient_row, NULL);
        return ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0 || strcmp(sub, "update") == 0) {
        if (argc < 3)
            return cli_usage_error("'patient %s' needs a patient id", sub);
        if (strcmp(sub, "update") == 0) {
            /* Options first, so a bad one fails before asking for the PIN. */
            struct store_patient change;
            memset(&change, 0, sizeof change);
            rc = patient_fields(argc - 2, argv + 2, &change);
            if (rc != EXIT_OK)
                return rc;
            if (optind != argc - 2)
                return cli_usage_error("'patient update' takes no argument '%s'", argv[optind + 2]);
            rc = cli_open_store(a);
            if (rc == EXIT_OK)
                rc = cli_resolve(a, RECORD_KIND_PATIENT, argv[2], &id);
            if (rc != EXIT_OK)
                return rc;
            ret = store_patient_get(a->store, &id, &p);
            if (ret != SAT_OK)
                return cli_store_failed(a, ret);
#define TAKE(field) \
    if (change.field[0]) \
        memcpy(p.field, change.field, sizeof p.field)
            TAKE(nhs_number);
            TAKE(given_name);
            TAKE(family_name);
            TAKE(date_of_birth);
            TAKE(address);
            TAKE(postcode);
            TAKE(team);
#undef TAKE
            ret = store_patient_update(a->store, &p);
            if (ret != SAT_OK)
                return cli_store_failed(a, ret);
            printf("updated\n");
            return EXIT_OK;
        }
        if (argc != 3)
            return cli_usage_error("'patient %s' takes one id", sub);
        rc = cli_open_store(a);
        if (rc == EXIT_OK)
            rc = cli_resolve(a, RECORD_KIND_PATIENT, argv[2], &id);
        if (rc != EXIT_OK)
            return rc;
        if (strcmp(sub, "delete") == 0) {
            ret = store_delete(a->store, RECORD_KIND_PATIENT, &id);
            if (ret != SAT_OK)
                return cli_store_failed(a, ret);
            printf("deleted\n");
            return EXIT_OK;
        }
        ret = store_patient_get(a->store, &id, &p);
        if (ret != SAT_OK)
            return cli_store_failed(a, ret);
        store_id_to_hex(&p.id, hex);
        printf("patient %s%s\n", hex, p.deleted ? "  (deleted)" : "");
        printf("  name: %s %s\n  born: %s\n  NHS number: %.3s %.3s %.4s\n", p.given_name,
               p.family_name, p.date_of_birth, p.nhs_number, p.nhs_number + 3,
               p.nhs_number + 6);
        printf("  address: %s%s%s\n  team: %s\n", p.address, p.postcode[0] ? ", " : "",
               p.postcode, p.team[0] ? p.team : "-");
        ret = store_visit_list(a->store, &id, print_visit, NULL);
        if (ret == SAT_OK)
            ret = store_obs_list(a->store, &id, print_obs, NULL);
        if (ret == SAT_OK)
            ret = store_note_list(a->store, &id, print_note, NULL);
        if (ret == SAT_OK)
            ret = store_task_list(a->store, &id, print_task, NULL);
        return ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
    }
    return cli_usage_error("unknown patient command '%s' (add, update, show, list, delete)", sub);
}

/* ---- visits, observations, notes, tasks --------------------------------- */

int cmd_visit(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "reason", required_argument, NULL, 'r' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    const char *reason = "";
    struct store_id id;
    struct store_visit v;
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc;
    int ret;
    if (strcmp(sub, "start") != 0 && strcmp(sub, "end") != 0)
        return cli_usage_error("unknown visit command '%s' (start, end)", sub);
    cli_reset_getopt();
    while ((c = cli_next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?' || strcmp(sub, "end") == 0)
            return c == '?' ? EXIT_USAGE : cli_usage_error("'visit end' takes no options%s", "");
        reason = optarg;
    }
    if (optind != argc - 2)
        return cli_usage_error("'visit %s' needs exactly one id", sub);
    rc = cli_open_store(a);
    if (rc == EXIT_OK)
        rc = cli_resolve(a, strcmp(sub, "start") == 0 ? RECORD_KIND_PATIENT : RECORD_KIND_VISIT,
                     argv[optind + 1], &id);
    if (rc != EXIT_OK)
        return rc;
    ret = strcmp(sub, "start") == 0 ? store_visit_start(a->store, &id, reason, &v)
                                    : store_visit_end(a->store, &id, &v);
    if (ret != SAT_OK)
        return cli_store_failed(a, ret);
    store_id_to_hex(&v.id, hex);
    printf("%s\n", hex);
    return EXIT_OK;
}

int cmd_obs(struct app *a, int argc, char **argv)
{
    enum { O_RESP = 1, O_SPO2, O_SCALE, O_AIR, O_OXYGEN, O_SBP, O_PULSE, O_ACVPU, O_TEMP,
           O_VISIT, O_AMENDS };
    static const struct option opts[] = {
        { "resp", required_argument, NULL, O_RESP },   { "spo2", required_argument, NULL, O_SPO2 },
        { "scale", required_argument, NULL, O_SCALE }, { "air", no_argument, NULL, O_AIR },
        { "oxygen", no_argument, NULL, O_OXYGEN },     { "sbp", required_argument, NULL, O_SBP },
        { "pulse", required_argument, NULL, O_PULSE }, { "acvpu", required_argument, NULL, O_ACVPU },
        { "temp", required_argument, NULL, O_TEMP },   { "visit", required_argument, NULL, O_VISIT },
        { "amends", required_argument, NULL, O_AMENDS }, { NULL, 0, NULL, 0 },
    };
    struct store_obs o;
    const char *visit = NULL;
    const char *amends = NULL;
    int air_or_oxygen = -1;
    int have[O_AMENDS + 1] = { 0 };
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc = EXIT_OK;
    int ret;
    if (argc < 2 || strcmp(argv[1], "add") != 0)
        return cli_usage_error("unknown obs command '%s' (add)", argc > 1 ? argv[1] : "");
    memset(&o, 0, sizeof o);
    o.vitals.spo2_scale = 1;
    cli_reset_getopt();
    while (rc == EXIT_OK && (c = cli_next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        have[c] = 1;
        switch (c) {
        case O_RESP: rc = cli_parse_int(optarg, "--resp", &o.vitals.respiration_rate); break;
        case O_SPO2: rc = cli_parse_int(optarg, "--spo2", &o.vitals.spo2_pct); break;
        case O_SCALE: rc = cli_parse_int(optarg, "--scale", &o.vitals.spo2_scale); break;
        case O_AIR: air_or_oxygen = 0; break;
        case O_OXYGEN: air_or_oxygen = 1; break;
        case O_SBP: rc = cli_parse_int(optarg, "--sbp", &o.vitals.systolic_bp); break;
        case O_PULSE: rc = cli_parse_int(optarg, "--pulse", &o.vitals.pulse); break;
        case O_ACVPU: {
            const char *p = strchr("ACVPU", optarg[0]);
            if (!p || optarg[0] == '\0' || optarg[1] != '\0')
                return cli_usage_error("--acvpu must be one of A, C, V, P, U, not '%s'", optarg);
            o.vitals.consciousness = (int)(p - "ACVPU") + 1;
            break;
        }
        case O_TEMP: rc = parse_temp(optarg, &o.vitals.temperature_dc); break;
        case O_VISIT: visit = optarg; break;
        case O_AMENDS: amends = optarg; break;
        default: return EXIT_USAGE;
        }
    }
    if (rc != EXIT_OK)
        return rc;
    if (optind != argc - 2)
        return cli_usage_error("'obs add' needs exactly one patient id%s", "");
    {
        static const struct { int opt; const char *name; } required[] = {
            { O_RESP, "--resp" }, { O_SPO2, "--spo2" }, { O_SBP, "--sbp" },
            { O_PULSE, "--pulse" }, { O_ACVPU, "--acvpu" }, { O_TEMP, "--temp" },
        };
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
            if (!have[required[i].opt])
                return cli_usage_error("'obs add' needs %s (all NEWS2 vital signs)",
                                       required[i].name);
        if (air_or_oxygen < 0)
            return cli_usage_error("'obs add' needs --air or --oxygen%s", "");
    }
    o.vitals.on_oxygen = air_or_oxygen;
    rc = cli_open_store(a);
    if (rc == EXIT_OK)
        rc = cli_resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &o.patient_id);
    if (rc == EXIT_OK && visit) {
        rc = cli_resolve(a, RECORD_KIND_VISIT, visit, &o.visit_id);
        o.has_visit = 1;
    }
    if (rc == EXIT_OK && amends) {
        rc = cli_resolve(a, RECORD_KIND_OBSERVATION, amends, &o.amends);
        o.has_amends = 1;
    }
    if (rc != EXIT_OK)
        return rc;
    ret = store_obs_add(a->store, &o);
    if (ret != SAT_OK)
        return cli_store_failed(a, ret);
    store_id_to_hex(&o.id, hex);
    printf("%s\nNEWS2 score: %d (%s risk)\n", hex, o.news2_score, news2_risk_name(o.news2_risk));
    /* (o passed the store's checks: complete, and scored by this tablet.) */
    return EXIT_OK;
}

int cmd_note(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "text", required_argument, NULL, 't' },
                                          { "text-file", required_argument, NULL, 'f' },
                                          { "visit", required_argument, NULL, 'v' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    const char *text = NULL;
    const char *text_file = NULL;
    const char *visit = NULL;
    struct store_note *n;
    char hex[STORE_ID_HEX_BYTES];
    int amend = strcmp(sub, "amend") == 0;
    int c;
    int rc;
    int ret;
    if (!amend && strcmp(sub, "add") != 0)
        return cli_usage_error("unknown note command '%s' (add, amend)", sub);
    cli_reset_getopt();
    while ((c = cli_next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 't')
            text = optarg;
        else if (c == 'f')
            text_file = optarg;
        else if (amend)
            return cli_usage_error("'note amend' keeps the visit of the note it amends%s", "");
        else
            visit = optarg;
    }
    if (optind != argc - 2)
        return cli_usage_error("'note %s' needs exactly one id", sub);
    if (!text == !text_file)
        return cli_usage_error("'note %s' needs --text TEXT or --text-file FILE", sub);
    n = calloc(1, sizeof *n);
    if (!n)
        return EXIT_FAIL;
    rc = text ? set_text(n->text, sizeof n->text, text, "note text")
              : read_text_file(text_file, n->text, sizeof n->text);
    if (rc == EXIT_OK)
        rc = cli_open_store(a);
    if (rc == EXIT_OK && amend) {
        struct store_note *old = calloc(1, sizeof *old);
        rc = old ? cli_resolve(a, RECORD_KIND_CARE_NOTE, argv[optind + 1], &n->amends) : EXIT_FAIL;
        if (rc == EXIT_OK) {
            ret = store_note_get(a->store, &n->amends, old);
            rc = ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
        }
        if (rc == EXIT_OK) {
            n->has_amends = 1;
            n->patient_id = old->patient_id;
            n->has_visit = old->has_visit;
            n->visit_id = old->visit_id;
        }
        free(old);
    } else if (rc == EXIT_OK) {
        rc = cli_resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &n->patient_id);
        if (rc == EXIT_OK && visit) {
            rc = cli_resolve(a, RECORD_KIND_VISIT, visit, &n->visit_id);
            n->has_visit = 1;
        }
    }
    if (rc == EXIT_OK) {
        ret = store_note_add(a->store, n);
        rc = ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
    }
    if (rc == EXIT_OK) {
        store_id_to_hex(&n->id, hex);
        printf("%s\n", hex);
    }
    free(n);
    return rc;
}

int cmd_task(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "title", required_argument, NULL, 't' },
                                          { "due", required_argument, NULL, 'd' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    struct store_task t;
    struct store_id id;
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc = EXIT_OK;
    int ret;
    int have_title = 0;
    memset(&t, 0, sizeof t);
    if (strcmp(sub, "add") != 0 && strcmp(sub, "done") != 0)
        return cli_usage_error("unknown task command '%s' (add, done)", sub);
    cli_reset_getopt();
    while (rc == EXIT_OK && (c = cli_next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (strcmp(sub, "done") == 0)
            return cli_usage_error("'task done' takes no options%s", "");
        if (c == 't') {
            rc = set_text(t.title, sizeof t.title, optarg, "task title");
            have_title = 1;
        } else {
            rc = parse_due(optarg, &t.due_ms);
        }
    }
    if (rc != EXIT_OK)
        return rc;
    if (optind != argc - 2)
        return cli_usage_error("'task %s' needs exactly one id", sub);
    if (strcmp(sub, "add") == 0 && !have_title)
        return cli_usage_error("'task add' needs --title TEXT%s", "");
    rc = cli_open_store(a);
    if (rc != EXIT_OK)
        return rc;
    if (strcmp(sub, "add") == 0) {
        rc = cli_resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &t.patient_id);
        if (rc != EXIT_OK)
            return rc;
        ret = store_task_add(a->store, &t);
        if (ret != SAT_OK)
            return cli_store_failed(a, ret);
        store_id_to_hex(&t.id, hex);
        printf("%s\n", hex);
        return EXIT_OK;
    }
    rc = cli_resolve(a, RECORD_KIND_TASK, argv[optind + 1], &id);
    if (rc != EXIT_OK)
        return rc;
    ret = store_task_done(a->store, &id);
    if (ret != SAT_OK)
        return cli_store_failed(a, ret);
    printf("done\n");
    return EXIT_OK;
}
