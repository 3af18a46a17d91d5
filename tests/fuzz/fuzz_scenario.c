/*
 * fuzz_scenario.c - a satchel-sim scenario file (JSON).
 *
 * Input: the file's bytes. They are parsed with scenario_parse (what
 * scenario_load does with a file's contents) over the built-in defaults;
 * a scenario that loads is then drawn as satchel-sim would: its first day,
 * and its second when it has one (events may name any day). Loading and
 * drawing either succeed or fail with a one-line reason; nothing else.
 */
#include "fuzz.h"
#include "scenario.h"

static struct scenario_params params;
static struct event extra[SCENARIO_EVENTS_MAX];

static void check_reason(const char *why)
{
    size_t n = strlen(why);
    if (fuzz_verbose())
        printf("scenario: %s\n", why);
    FUZZ_CHECK(n > 0, "a scenario failed without a reason");
    FUZZ_CHECK(strchr(why, '\n') == NULL, "a reason of more than one line: %s", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct scenario s;
    char why[SCENARIO_ERRMSG_BYTES];
    size_t nextra = 0;

    scenario_defaults(&params);
    why[0] = '\0';
    if (scenario_parse((const char *)data, size, &params, extra, &nextra, why, sizeof why) != 0) {
        check_reason(why);
        return 0;
    }
    FUZZ_CHECK(nextra <= SCENARIO_EVENTS_MAX, "%zu events loaded", nextra);
    if (scenario_build(&s, &params, 1, extra, nextra, why, sizeof why) != 0) {
        check_reason(why);
        return 0;
    }
    for (size_t i = 0; i < s.nactions; i++)
        FUZZ_CHECK(s.actions[i].nurse < s.p.nurses && (s.actions[i].kind == ACT_SYNC ||
                                                       s.actions[i].patient < s.npatients),
                   "action %zu names nurse %u, patient %u", i, s.actions[i].nurse,
                   s.actions[i].patient);
    for (uint32_t n = 0; n < s.p.nurses; n++)
        (void)scenario_link(&s, n, 12u * 3600000u);
    if (s.p.days > 1 && scenario_next_day(&s, why, sizeof why) != 0)
        check_reason(why);
    scenario_free(&s);
    return 0;
}
