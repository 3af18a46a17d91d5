/* scenario.c - see scenario.h. */
#include "scenario.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_MIN 60000u
#define MS_PER_HOUR (60u * MS_PER_MIN)

static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + next_rand(state) % (hi - lo + 1);
}

static int say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    n = strlen(why); /* one line, even when a library's message ends in one */
    while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
        why[--n] = '\0';
    /* and when it quotes the file (a name or a kind with a line break or a
     * terminal escape in it): one printable line, whatever the input */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
            why[i] = '?';
    return -1;
}

void scenario_defaults(struct scenario_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "day-of-visits");
    p->nurses = 8;
    p->teams = 2;
    snprintf(p->team_names[0], SCENARIO_TEAM_BYTES, "north");
    snprintf(p->team_names[1], SCENARIO_TEAM_BYTES, "south");
    p->visits_min = 6;
    p->visits_max = 10;
    p->shared_patients = 2;
    p->day_start_ms = 7u * MS_PER_HOUR;
    p->day_end_ms = 19u * MS_PER_HOUR;
    p->base_minutes = 60;
    p->patchy_up_pct = 60;
    p->rural_pct = 40;
    p->latency_ms = 80;
    p->jitter_ms = 40;
    p->sync_every_min = 20;
    p->clock_skew_max_ms = 5 * 60 * 1000;
    p->drift_max_ppm = 50;
    p->builtin_faults = 1;
    p->days = 1;
}

const char *scenario_event_name(enum event_kind k)
{
    switch (k) {
    case EV_POWER_CUT: return "power_cut";
    case EV_TRANSFER: return "transfer";
    case EV_LOSE_TABLET: return "lose_tablet";
    case EV_REVOKE: return "revoke";
    case EV_THIEF_SYNC: return "thief_sync";
    }
    return "?";
}

/* ---- loading a scenario file ----------------------------------------------- */

static int parse_hhmm(const char *s, uint64_t *ms)
{
    unsigned h = 0;
    unsigned m = 0;
    char tail = 0;
    if (!s || sscanf(s, "%2u:%2u%c", &h, &m, &tail) != 2 || h > 23 || m > 59)
        return -1;
    *ms = (uint64_t)h * MS_PER_HOUR + (uint64_t)m * MS_PER_MIN;
    return 0;
}

static int get_uint(json_object *o, const char *key, uint32_t lo, uint32_t hi, uint32_t *out,
                    char *why, size_t len)
{
    json_object *v;
    int64_t x;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return say(why, len, "\"%s\" must be a whole number", key);
    x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return say(why, len, "\"%s\" must be between %u and %u, not %lld", key, lo, hi,
                   (long long)x);
    *out = (uint32_t)x;
    return 0;
}

/* The text of a JSON string, or NULL for any other value: json-c gives a
 * number's or a boolean's text for it, and a JSON null is a NULL object
 * whose "string" is NULL, which no caller may pass on to strcmp or "%s". */
static const char *get_text(json_object *v)
{
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int team_index(const struct scenario_params *p, const char *name)
{
    for (uint32_t i = 0; i < p->teams; i++)
        if (strcmp(p->team_names[i], name) == 0)
            return (int)i;
    return -1;
}

static int load_events(json_object *arr, const struct scenario_params *p, struct event *extra,
                       size_t *nextra, char *why, size_t len)
{
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        json_object *v;
        struct event ev;
        const char *kind;
        memset(&ev, 0, sizeof ev);
        if (*nextra >= SCENARIO_EVENTS_MAX)
            return say(why, len, "too many events (at most %d)", SCENARIO_EVENTS_MAX);
        if (!json_object_is_type(e, json_type_object) ||
            !json_object_object_get_ex(e, "at", &v) ||
            parse_hhmm(get_text(v), &ev.at_ms) != 0)
            return say(why, len, "event %zu needs \"at\": \"HH:MM\"", i);
        if (!json_object_object_get_ex(e, "kind", &v) || (kind = get_text(v)) == NULL)
            return say(why, len, "event %zu needs a \"kind\"", i);
        if (strcmp(kind, "power_cut") == 0)
            ev.kind = EV_POWER_CUT;
        else if (strcmp(kind, "transfer") == 0)
            ev.kind = EV_TRANSFER;
        else if (strcmp(kind, "lose_tablet") == 0)
            ev.kind = EV_LOSE_TABLET;
        else if (strcmp(kind, "revoke") == 0)
            ev.kind = EV_REVOKE;
        else if (strcmp(kind, "thief_sync") == 0)
            ev.kind = EV_THIEF_SYNC;
        else
            return say(why, len, "event %zu: unknown kind \"%s\"", i, kind);
        ev.day = 1;
        if (get_uint(e, "nurse", 0, p->nurses - 1, &ev.nurse, why, len) != 0 ||
            get_uint(e, "patient", 0, UINT32_MAX, &ev.patient, why, len) != 0 ||
            get_uint(e, "day", 1, SCENARIO_DAYS_MAX, &ev.day, why, len) != 0)
            return -1;
        ev.day--;
        if (ev.kind == EV_TRANSFER) {
            const char *team;
            int t;
            if (!json_object_object_get_ex(e, "team", &v) || (team = get_text(v)) == NULL ||
                (t = team_index(p, team)) < 0)
                return say(why, len, "event %zu: transfer needs a known \"team\"", i);
            ev.team = (uint32_t)t;
        }
        extra[(*nextra)++] = ev;
    }
    return 0;
}

/* Reads the parsed scenario over p; releases root. */
static int load_root(json_object *root, struct scenario_params *p, struct event *extra,
                     size_t *nextra, char *why, size_t why_len)
{
    json_object *v;
    int ret = 0;
    uint32_t skew_s = (uint32_t)(p->clock_skew_max_ms / 1000);
    uint32_t drift = (uint32_t)p->drift_max_ppm;
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return say(why, why_len, "a scenario must be a JSON object");
    }
    if (json_object_object_get_ex(root, "name", &v)) {
        if (get_text(v))
            snprintf(p->name, sizeof p->name, "%s", get_text(v));
        else
            ret = say(why, why_len, "\"name\" must be text");
    }
    if (ret == 0 && json_object_object_get_ex(root, "teams", &v)) {
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
        if (n < 1 || n > SCENARIO_TEAMS_MAX)
            ret = say(why, why_len, "\"teams\" must list 1 to %d team names", SCENARIO_TEAMS_MAX);
        for (size_t i = 0; ret == 0 && i < n; i++) {
            const char *name = get_text(json_object_array_get_idx(v, i));
            /* Not cut to fit: two names cut to one would be one team. */
            if (!name || !name[0] || strlen(name) >= SCENARIO_TEAM_BYTES)
                ret = say(why, why_len, "team %zu must be a name of 1 to %d characters", i + 1,
                          SCENARIO_TEAM_BYTES - 1);
            for (size_t j = 0; ret == 0 && j < i; j++)
                if (strcmp(p->team_names[j], name) == 0)
                    ret = say(why, why_len, "team \"%s\" is listed twice", name);
            if (ret == 0)
                snprintf(p->team_names[i], SCENARIO_TEAM_BYTES, "%s", name);
        }
        if (ret == 0)
            p->teams = (uint32_t)n;
    }
    if (ret == 0)
        ret = get_uint(root, "nurses", 1, SCENARIO_NURSES_MAX, &p->nurses, why, why_len);
    if (ret == 0 && json_object_object_get_ex(root, "visits", &v)) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2)
            ret = say(why, why_len, "\"visits\" must be [min, max]");
        else {
            int64_t lo = json_object_get_int64(json_object_array_get_idx(v, 0));
            int64_t hi = json_object_get_int64(json_object_array_get_idx(v, 1));
            if (lo < 1 || hi < lo || hi > 40)
                ret = say(why, why_len, "\"visits\" must be [min, max] with 1 <= min <= max <= 40");
            p->visits_min = (uint32_t)lo;
            p->visits_max = (uint32_t)hi;
        }
    }
    if (ret == 0 && json_object_object_get_ex(root, "day", &v)) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2 ||
            parse_hhmm(get_text(json_object_array_get_idx(v, 0)),
                       &p->day_start_ms) != 0 ||
            parse_hhmm(get_text(json_object_array_get_idx(v, 1)),
                       &p->day_end_ms) != 0 ||
            p->day_end_ms < p->day_start_ms + 4u * MS_PER_HOUR)
            ret = say(why, why_len, "\"day\" must be [\"HH:MM\", \"HH:MM\"], at least 4 h long");
    }
    if (ret == 0)
        ret = get_uint(root, "shared_patients", 0, 100, &p->shared_patients, why, why_len);
    if (ret == 0)
        ret = get_uint(root, "base_minutes", 10, 240, &p->base_minutes, why, why_len);
    if (ret == 0)
        ret = get_uint(root, "sync_every_min", 1, 600, &p->sync_every_min, why, why_len);
    if (ret == 0)
        ret = get_uint(root, "clock_skew_max_s", 0, 86400, &skew_s, why, why_len);
    if (ret == 0)
        ret = get_uint(root, "drift_max_ppm", 0, 1000, &drift, why, why_len);
    if (ret == 0)
        ret = get_uint(root, "days", 1, SCENARIO_DAYS_MAX, &p->days, why, why_len);
    if (ret == 0 && json_object_object_get_ex(root, "signal", &v)) {
        ret = get_uint(v, "visit_up_pct", 0, 100, &p->patchy_up_pct, why, why_len);
        if (ret == 0)
            ret = get_uint(v, "rural_pct", 0, 100, &p->rural_pct, why, why_len);
        if (ret == 0)
            ret = get_uint(v, "latency_ms", 0, 10000, &p->latency_ms, why, why_len);
        if (ret == 0)
            ret = get_uint(v, "jitter_ms", 0, 10000, &p->jitter_ms, why, why_len);
    }
    if (ret == 0 && json_object_object_get_ex(root, "builtin_faults", &v))
        p->builtin_faults = json_object_get_boolean(v);
    if (ret == 0 && json_object_object_get_ex(root, "events", &v)) {
        if (!json_object_is_type(v, json_type_array))
            ret = say(why, why_len, "\"events\" must be a list");
        else
            ret = load_events(v, p, extra, nextra, why, why_len);
    }
    p->clock_skew_max_ms = (int64_t)skew_s * 1000;
    p->drift_max_ppm = (int32_t)drift;
    json_object_put(root);
    return ret;
}

int scenario_load(const char *path, struct scenario_params *p, struct event *extra,
                  size_t *nextra, char *why, size_t why_len)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    int ret;
    if (!f)
        return say(why, why_len, "cannot read scenario '%s': %s", path, strerror(errno));
    text = malloc(SCENARIO_FILE_BYTES_MAX + 1);
    if (!text) {
        fclose(f);
        return say(why, why_len, "out of memory for scenario '%s'", path);
    }
    len = fread(text, 1, SCENARIO_FILE_BYTES_MAX + 1, f);
    if (ferror(f))
        ret = say(why, why_len, "cannot read scenario '%s': %s", path, strerror(errno));
    else if (len > SCENARIO_FILE_BYTES_MAX)
        ret = say(why, why_len, "scenario '%s' is larger than %d bytes", path,
                  SCENARIO_FILE_BYTES_MAX);
    else if ((ret = scenario_parse(text, len, p, extra, nextra, why, why_len)) != 0) {
        char reason[SCENARIO_ERRMSG_BYTES];
        snprintf(reason, sizeof reason, "%s", why);
        ret = say(why, why_len, "scenario '%s': %s", path, reason);
    }
    fclose(f);
    free(text);
    return ret;
}

int scenario_parse(const char *text, size_t len, struct scenario_params *p, struct event *extra,
                   size_t *nextra, char *why, size_t why_len)
{
    json_tokener *tok;
    json_object *root;
    enum json_tokener_error err;
    size_t end;
    if (len > SCENARIO_FILE_BYTES_MAX)
        return say(why, why_len, "a scenario is at most %d bytes", SCENARIO_FILE_BYTES_MAX);
    tok = json_tokener_new();
    if (!tok)
        return say(why, why_len, "out of memory for a scenario");
    root = json_tokener_parse_ex(tok, text, (int)len);
    err = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    /* One JSON value and only white space after it: an unfinished value,
     * or a second one, is not a scenario. */
    while (root && end < len && strchr(" \t\r\n", text[end]) && text[end] != '\0')
        end++;
    if (root && (err != json_tokener_success || end != len)) {
        json_object_put(root);
        root = NULL;
        if (err == json_tokener_success)
            err = json_tokener_error_parse_unexpected;
    }
    if (err == json_tokener_continue) /* the text ended inside the value */
        err = json_tokener_error_parse_eof;
    if (!root)
        return say(why, why_len, "a scenario must be one JSON object: %s",
                   json_tokener_error_desc(err));
    return load_root(root, p, extra, nextra, why, why_len);
}

/* ---- drawing the day ----------------------------------------------------- */

static int add_action(struct scenario *s, uint64_t at, uint32_t nurse, enum action_kind kind,
                      uint32_t patient, uint64_t *rng)
{
    struct action *a;
    if (s->nactions >= SCENARIO_ACTIONS_MAX)
        return -1;
    a = &s->actions[s->nactions++];
    a->at_ms = at;
    a->nurse = nurse;
    a->kind = kind;
    a->patient = patient;
    a->value = next_rand(rng);
    return 0;
}

static void set_link(struct scenario *s, uint32_t nurse, uint64_t from, uint64_t to,
                     enum link_quality q)
{
    for (uint64_t t = from; t < to && t / SCENARIO_SLOT_MS < SCENARIO_SLOTS_PER_DAY;
         t += SCENARIO_SLOT_MS)
        s->links[nurse * SCENARIO_SLOTS_PER_DAY + t / SCENARIO_SLOT_MS] = (uint8_t)q;
}

enum link_quality scenario_link(const struct scenario *s, uint32_t nurse, uint64_t at_ms)
{
    uint64_t slot = at_ms / SCENARIO_SLOT_MS;
    if (nurse >= s->p.nurses || slot >= SCENARIO_SLOTS_PER_DAY)
        return LINK_NONE;
    return (enum link_quality)s->links[nurse * SCENARIO_SLOTS_PER_DAY + slot];
}

static int cmp_action(const void *a, const void *b)
{
    const struct action *x = a;
    const struct action *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->nurse != y->nurse)
        return x->nurse < y->nurse ? -1 : 1;
    return 0;
}

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a;
    const struct event *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return (int)x->kind - (int)y->kind;
}

/* The nurses of team t, in order. */
static uint32_t team_nurses(const struct scenario_params *p, uint32_t t, uint32_t *out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->nurses; i++)
        if (i % p->teams == t)
            out[n++] = i;
    return n;
}

static int caseload_add(struct caseload *c, uint32_t patient)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        uint32_t *p = realloc(c->patient, cap * sizeof *p);
        if (!p)
            return -1;
        c->patient = p;
        c->cap = cap;
    }
    c->patient[c->n++] = patient;
    return 0;
}

/* A new patient of nurse n's team; unshared ones join her caseload.
 * Returns the patient's index, or UINT32_MAX when out of memory. */
static uint32_t admit(struct scenario *s, uint32_t n, uint32_t team, int shared)
{
    struct patient_plan *pp;
    if (s->npatients == s->patients_cap) {
        size_t cap = s->patients_cap ? 2 * s->patients_cap : 64;
        struct patient_plan *np = realloc(s->patients, cap * sizeof *np);
        if (!np)
            return UINT32_MAX;
        s->patients = np;
        s->patients_cap = cap;
    }
    pp = &s->patients[s->npatients];
    memset(pp, 0, sizeof *pp);
    pp->team = team;
    pp->home_nurse = n;
    pp->shared = shared;
    if (!shared && caseload_add(&s->caseload[n], (uint32_t)s->npatients) != 0)
        return UINT32_MAX;
    return (uint32_t)s->npatients++;
}

void scenario_transfer(struct scenario *s, uint32_t patient, uint32_t team)
{
    struct patient_plan *pp;
    uint32_t to = UINT32_MAX;
    if (patient >= s->npatients || team >= s->p.teams)
        return;
    pp = &s->patients[patient];
    if (!pp->shared) {
        struct caseload *c = &s->caseload[pp->home_nurse];
        for (size_t i = 0; i < c->n; i++)
            if (c->patient[i] == patient) {
                c->patient[i] = c->patient[--c->n];
                break;
            }
    }
    pp->team = team;
    for (uint32_t i = team; i < s->p.nurses; i += s->p.teams)
        if (to == UINT32_MAX || s->caseload[i].n < s->caseload[to].n)
            to = i;
    if (to == UINT32_MAX)
        return;
    pp->home_nurse = to;
    if (!pp->shared && caseload_add(&s->caseload[to], patient) != 0)
        pp->home_nurse = UINT32_MAX; /* out of memory: nobody visits them */
}

/* Whom nurse n visits next: on the first day (or one visit in
 * SCENARIO_ADMIT_ONE_IN, or when her caseload has no one left to see
 * today) a new patient, else one of her own not yet seen today. */
static uint32_t next_patient(struct scenario *s, uint32_t n, uint32_t team, const uint32_t *seen,
                             uint32_t nseen)
{
    struct caseload *c = &s->caseload[n];
    if (s->day > 0 && c->n > 0 && rand_range(&s->rng, 1, SCENARIO_ADMIT_ONE_IN) > 1) {
        for (int tries = 0; tries < 8; tries++) {
            uint32_t pick = c->patient[rand_range(&s->rng, 0, c->n - 1)];
            int again = 0;
            for (uint32_t i = 0; i < nseen && !again; i++)
                again = seen[i] == pick;
            if (!again)
                return pick;
        }
    }
    return admit(s, n, team, 0);
}

/* Draws day s->day (actions, events, links) over the day before's. */
static int build_day(struct scenario *s, char *why, size_t why_len)
{
    const struct scenario_params *p = &s->p;
    uint64_t visit_from = p->day_start_ms + (uint64_t)p->base_minutes * MS_PER_MIN;
    uint64_t visit_to = p->day_end_ms - (uint64_t)p->base_minutes * MS_PER_MIN;
    uint32_t *members = calloc(p->nurses, sizeof *members);
    uint32_t seen[64];
    if (!members)
        return say(why, why_len, "out of memory for %u nurses", p->nurses);
    s->nactions = 0;
    s->nevents = 0;
    memset(s->links, 0, (size_t)p->nurses * SCENARIO_SLOTS_PER_DAY);

    for (uint32_t n = 0; n < p->nurses; n++) {
        /* Good signal at the base, morning and evening. */
        set_link(s, n, p->day_start_ms, visit_from, LINK_GOOD);
        set_link(s, n, visit_to, p->day_end_ms + MS_PER_HOUR, LINK_GOOD);
    }

    /* Each team's shared patients are created by its first nurse on the
     * first day; the second nurse of the team visits them too. */
    for (uint32_t t = 0; s->day == 0 && t < p->teams; t++) {
        uint32_t k = team_nurses(p, t, members);
        for (uint32_t j = 0; k > 0 && j < p->shared_patients; j++) {
            uint32_t pi = admit(s, members[0], t, k > 1);
            /* ACT_VISIT_START on a patient not yet on the tablet creates it. */
            if (pi == UINT32_MAX ||
                add_action(s, p->day_start_ms + MS_PER_MIN * (1 + j), members[0], ACT_VISIT_START,
                           pi, &s->rng) != 0)
                goto too_many;
        }
    }

    for (uint32_t n = 0; n < p->nurses; n++) {
        uint32_t team = n % p->teams;
        uint32_t visits = (uint32_t)rand_range(&s->rng, p->visits_min, p->visits_max);
        uint64_t t = visit_from;
        uint32_t k = team_nurses(p, team, members);
        uint32_t nseen = 0;
        for (uint32_t v = 0; v < visits; v++) {
            uint64_t travel = rand_range(&s->rng, 10, 40) * MS_PER_MIN;
            uint64_t stay = rand_range(&s->rng, 20, 60) * MS_PER_MIN;
            uint32_t patient;
            if (t + travel + stay > visit_to)
                break;
            /* Travel: rural stretches lose the signal. */
            set_link(s, n, t, t + travel,
                     rand_range(&s->rng, 1, 100) <= p->rural_pct ? LINK_NONE : LINK_PATCHY);
            t += travel;
            for (uint64_t slot = t; slot < t + stay; slot += SCENARIO_SLOT_MS)
                set_link(s, n, slot, slot + SCENARIO_SLOT_MS,
                         rand_range(&s->rng, 1, 100) <= p->patchy_up_pct ? LINK_PATCHY
                                                                          : LINK_NONE);
            /* The second nurse of a team visits one of the shared patients
             * on her first visit; otherwise a patient of her own. */
            patient = UINT32_MAX;
            if (v == 0 && k > 1 && members[1] == n)
                for (size_t i = 0; i < s->npatients && patient == UINT32_MAX; i++)
                    if (s->patients[i].shared && s->patients[i].team == team)
                        patient = (uint32_t)i;
            if (patient == UINT32_MAX)
                patient = next_patient(s, n, team, seen, nseen);
            if (patient == UINT32_MAX)
                goto too_many;
            if (nseen < sizeof seen / sizeof seen[0])
                seen[nseen++] = patient;
            if (add_action(s, t, n, ACT_VISIT_START, patient, &s->rng) != 0 ||
                add_action(s, t + 5 * MS_PER_MIN, n, ACT_OBS, patient, &s->rng) != 0 ||
                add_action(s, t + 10 * MS_PER_MIN, n, ACT_NOTE, patient, &s->rng) != 0 ||
                (rand_range(&s->rng, 0, 1) &&
                 add_action(s, t + 12 * MS_PER_MIN, n, ACT_TASK, patient, &s->rng) != 0) ||
                ((s->patients[patient].shared || rand_range(&s->rng, 1, 10) == 1) &&
                 add_action(s, t + 15 * MS_PER_MIN, n, ACT_EDIT_ADDRESS, patient, &s->rng) != 0) ||
                add_action(s, t + stay, n, ACT_VISIT_END, patient, &s->rng) != 0)
                goto too_many;
            t += stay;
        }
        /* The tablet tries to sync this often (it only gets through with a
         * signal). */
        for (uint64_t at = p->day_start_ms + 5u * MS_PER_MIN; at < p->day_end_ms;
             at += (uint64_t)p->sync_every_min * MS_PER_MIN)
            if (add_action(s, at, n, ACT_SYNC, 0, &s->rng) != 0)
                goto too_many;
    }
    /* The home nurse of each shared patient edits its address mid-morning,
     * offline from her colleague: a concurrent edit of one field. */
    for (size_t i = 0; i < s->npatients; i++)
        if (s->patients[i].shared && s->patients[i].home_nurse < p->nurses &&
            add_action(s, visit_from + 30u * MS_PER_MIN, s->patients[i].home_nurse,
                       ACT_EDIT_ADDRESS, (uint32_t)i, &s->rng) != 0)
            goto too_many;

    if (p->builtin_faults && p->nurses >= 3) {
        uint32_t victim = (uint32_t)rand_range(&s->rng, 0, p->nurses - 2);
        uint32_t lost = p->nurses - 1;
        uint32_t from = s->day % p->teams;
        struct event evs[5];
        size_t nev = 2;
        memset(evs, 0, sizeof evs);
        evs[0] = (struct event){ 11u * MS_PER_HOUR + 7u * MS_PER_MIN, EV_POWER_CUT, victim, 0, 0,
                                 s->day };
        /* A patient of one team moves to the next (the first unshared
         * one on the first day, any unshared one later). */
        evs[1] = (struct event){ 13u * MS_PER_HOUR, EV_TRANSFER, 0, UINT32_MAX,
                                 p->teams > 1 ? (from + 1) % p->teams : 0, s->day };
        if (s->day == 0) {
            for (size_t i = 0; i < s->npatients && evs[1].patient == UINT32_MAX; i++)
                if (s->patients[i].team == from && !s->patients[i].shared)
                    evs[1].patient = (uint32_t)i;
        } else if (s->npatients > 0) {
            for (int tries = 0; tries < 16 && evs[1].patient == UINT32_MAX; tries++) {
                uint32_t pick = (uint32_t)rand_range(&s->rng, 0, s->npatients - 1);
                if (s->patients[pick].team == from && !s->patients[pick].shared)
                    evs[1].patient = pick;
            }
        }
        if (evs[1].patient == UINT32_MAX)
            nev = 1; /* nobody to move today */
        /* The tablet is lost on the run's last day. */
        if (s->day + 1 == p->days) {
            evs[nev++] = (struct event){ 14u * MS_PER_HOUR, EV_LOSE_TABLET, lost, 0, 0, s->day };
            evs[nev++] = (struct event){ 14u * MS_PER_HOUR + 30u * MS_PER_MIN, EV_REVOKE, lost, 0,
                                         0, s->day };
            evs[nev++] = (struct event){ 16u * MS_PER_HOUR, EV_THIEF_SYNC, lost, 0, 0, s->day };
        }
        for (size_t i = 0; i < nev && s->nevents < SCENARIO_EVENTS_MAX; i++)
            s->events[s->nevents++] = evs[i];
    }
    for (size_t i = 0; i < s->nextra && s->nevents < SCENARIO_EVENTS_MAX; i++) {
        if (s->extra[i].day != s->day)
            continue;
        if (s->extra[i].kind == EV_TRANSFER && s->extra[i].patient >= s->npatients) {
            free(members);
            return say(why, why_len, "transfer event on day %u names patient %u; there are %zu",
                       s->day + 1, s->extra[i].patient, s->npatients);
        }
        s->events[s->nevents++] = s->extra[i];
    }
    qsort(s->actions, s->nactions, sizeof *s->actions, cmp_action);
    qsort(s->events, s->nevents, sizeof *s->events, cmp_event);
    free(members);
    return 0;
too_many:
    free(members);
    return say(why, why_len, "day %u has more than %d actions, or memory ran out", s->day + 1,
               SCENARIO_ACTIONS_MAX);
}

int scenario_build(struct scenario *s, const struct scenario_params *p, uint64_t seed,
                   const struct event *extra, size_t nextra, char *why, size_t why_len)
{
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->seed = seed;
    s->rng = seed ^ 0x5A7C4E1B3E7C4D01ull;
    if (p->nurses == 0 || p->teams == 0 || p->nurses > SCENARIO_NURSES_MAX)
        return say(why, why_len, "a scenario needs 1 to %d nurses and at least one team",
                   SCENARIO_NURSES_MAX);
    if (p->days < 1 || p->days > SCENARIO_DAYS_MAX)
        return say(why, why_len, "a run lasts 1 to %d days, not %u", SCENARIO_DAYS_MAX, p->days);
    for (size_t i = 0; i < nextra; i++)
        if (extra[i].day >= p->days)
            return say(why, why_len, "an event is on day %u; the run has %u day%s",
                       extra[i].day + 1, p->days, p->days == 1 ? "" : "s");
    s->actions = calloc(SCENARIO_ACTIONS_MAX, sizeof *s->actions);
    s->links = calloc((size_t)p->nurses * SCENARIO_SLOTS_PER_DAY, 1);
    s->skew_ms = calloc(p->nurses, sizeof *s->skew_ms);
    s->drift_ppm = calloc(p->nurses, sizeof *s->drift_ppm);
    s->caseload = calloc(p->nurses, sizeof *s->caseload);
    s->extra = calloc(nextra + 1, sizeof *s->extra);
    if (!s->actions || !s->links || !s->skew_ms || !s->drift_ppm || !s->caseload || !s->extra) {
        scenario_free(s);
        return say(why, why_len, "out of memory for %u nurses", p->nurses);
    }
    if (nextra)
        memcpy(s->extra, extra, nextra * sizeof *extra);
    s->nextra = nextra;
    for (uint32_t n = 0; n < p->nurses; n++) {
        s->skew_ms[n] = p->clock_skew_max_ms
                            ? (int64_t)rand_range(&s->rng, 0, 2u * (uint64_t)p->clock_skew_max_ms) -
                                  p->clock_skew_max_ms
                            : 0;
        s->drift_ppm[n] = p->drift_max_ppm
                              ? (int32_t)rand_range(&s->rng, 0, 2u * (uint32_t)p->drift_max_ppm) -
                                    p->drift_max_ppm
                              : 0;
    }
    if (build_day(s, why, why_len) != 0) {
        scenario_free(s);
        return -1;
    }
    return 0;
}

int scenario_next_day(struct scenario *s, char *why, size_t why_len)
{
    if (s->day + 1 >= s->p.days)
        return say(why, why_len, "the run has only %u days", s->p.days);
    s->day++;
    return build_day(s, why, why_len);
}

void scenario_free(struct scenario *s)
{
    for (uint32_t n = 0; s->caseload && n < s->p.nurses; n++)
        free(s->caseload[n].patient);
    free(s->caseload);
    free(s->extra);
    s->caseload = NULL;
    s->extra = NULL;
    free(s->patients);
    free(s->actions);
    free(s->links);
    free(s->skew_ms);
    free(s->drift_ppm);
    s->patients = NULL;
    s->actions = NULL;
    s->links = NULL;
    s->skew_ms = NULL;
    s->drift_ppm = NULL;
}
