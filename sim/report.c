/* report.c - see report.h. */
#include "report.h"

#include <string.h>

#define PLOT_W 900
#define ROW_H 16
#define LABEL_W 110
#define CHART_H 220

int report_ok(const struct report *r)
{
    for (unsigned i = 0; i < r->ninv; i++)
        if (!r->inv[i].ok)
            return 0;
    return 1;
}

static void fmt_bytes(uint64_t b, char *out, size_t cap)
{
    if (b >= 10u * 1024u * 1024u)
        snprintf(out, cap, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    else if (b >= 10u * 1024u)
        snprintf(out, cap, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(out, cap, "%llu B", (unsigned long long)b);
}

void report_print_summary(FILE *out, const struct report *r)
{
    fprintf(out, "satchel-sim: scenario %s, seed %llu, %u tablets in %u teams", r->scenario,
            (unsigned long long)r->seed, r->ndev, r->teams);
    if (r->days_run < r->days)
        fprintf(out, ", stopped after day %u of %u", r->days_run, r->days);
    else if (r->days > 1)
        fprintf(out, ", %u days", r->days);
    fputc('\n', out);
    fprintf(out, "%-10s %-8s %6s %6s %7s %9s %7s %9s %10s\n", "tablet", "team", "visits",
            "writes", "changes", "syncs", "resumed", "conflicts", "bytes");
    for (unsigned i = 0; i < r->ndev; i++) {
        const struct report_device *d = &r->dev[i];
        char syncs[24];
        char bytes[24];
        char cuts[32] = "";
        snprintf(syncs, sizeof syncs, "%u/%u", d->syncs_ok, d->syncs_ok + d->syncs_failed);
        fmt_bytes(d->bytes, bytes, sizeof bytes);
        if (d->power_cuts == 1)
            snprintf(cuts, sizeof cuts, "  (power cut)");
        else if (d->power_cuts > 1)
            snprintf(cuts, sizeof cuts, "  (%u power cuts)", d->power_cuts);
        fprintf(out, "%-10s %-8s %6u %6u %7u %9s %7u %9u %10s%s%s\n", d->name, d->team, d->visits,
                d->writes, d->changes, syncs, d->resumed, d->conflicts, bytes, cuts,
                d->revoked ? "  (lost, revoked, wiped)" : "");
    }
    fprintf(out, "hub: %u changes held, %u conflicts recorded, %u patients moved\n",
            r->hub_changes, r->hub_conflicts, r->moved);
    fprintf(out, "invariants:\n");
    for (unsigned i = 0; i < r->ninv; i++)
        fprintf(out, "  %s %s%s%s\n", r->inv[i].ok ? "\xE2\x9C\x93" : "\xE2\x9C\x97",
                r->inv[i].name, r->inv[i].detail[0] ? ": " : "", r->inv[i].detail);
    if (!report_ok(r))
        fprintf(out, "FAILED: replay with: %s\n", r->replay);
}

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *const palette[] = { "#1b6ca8", "#d1495b", "#00798c", "#edae49",
                                       "#66a182", "#8d5b4c", "#6c4f8c", "#2e4057" };

#define TIME_LABEL_BYTES 24

/* "07:00" on a one-day run, "day 3 07:00" on a longer one. */
static void time_label(const struct report *r, uint64_t ms, char out[TIME_LABEL_BYTES])
{
    if (r->days > 1)
        snprintf(out, TIME_LABEL_BYTES, "day %u %02u:%02u", (unsigned)(ms / 86400000u) + 1,
                 (unsigned)(ms / 3600000u) % 24u, (unsigned)(ms / 60000u) % 60u);
    else
        snprintf(out, TIME_LABEL_BYTES, "%02u:%02u", (unsigned)(ms / 3600000u) % 24u,
                 (unsigned)(ms / 60000u) % 60u);
}

static void x_axis(FILE *f, const struct report *r, int y)
{
    unsigned every = r->days > 1 ? 48 : 24; /* longer labels, further apart */
    for (unsigned s = 0; s < r->nsamples; s += every) {
        char t[TIME_LABEL_BYTES];
        double x = LABEL_W + (double)s * (PLOT_W - LABEL_W) / (r->nsamples ? r->nsamples : 1);
        time_label(r, r->sample_start_ms + s * r->sample_every_ms, t);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"ax\">%s</text>\n", x, y, t);
    }
}

static void connectivity(FILE *f, const struct report *r)
{
    static const char *const colour[] = { "#cccccc", "#f0b429", "#2f9e44" };
    double w = (double)(PLOT_W - LABEL_W) / (r->nsamples ? r->nsamples : 1);
    int h = (int)r->ndev * ROW_H + 24;
    fprintf(f, "<svg width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"signal per tablet\">\n",
            PLOT_W, h);
    for (unsigned i = 0; i < r->ndev; i++) {
        fprintf(f, "<text x=\"0\" y=\"%u\" class=\"lb\">", i * ROW_H + 12);
        html_escape(f, r->dev[i].name);
        fputs("</text>\n", f);
        for (unsigned s = 0; s < r->nsamples; s++)
            fprintf(f, "<rect x=\"%.1f\" y=\"%u\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>\n",
                    LABEL_W + s * w, i * ROW_H + 2, w + 0.05, ROW_H - 4,
                    colour[r->dev[i].link[s] <= 2 ? r->dev[i].link[s] : 0]);
    }
    x_axis(f, r, h - 6);
    fputs("</svg>\n", f);
}

/* A line chart of one series per tablet: which = 0 pending, 1 bytes. */
static void lines(FILE *f, const struct report *r, int which, const char *label)
{
    double max = 1;
    double w = (double)(PLOT_W - LABEL_W) / (r->nsamples > 1 ? r->nsamples - 1 : 1);
    for (unsigned i = 0; i < r->ndev; i++)
        for (unsigned s = 0; s < r->nsamples; s++) {
            double v = which ? (double)r->dev[i].bytes_cum[s] : r->dev[i].pending[s];
            if (v > max)
                max = v;
        }
    fprintf(f, "<svg width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"%s\">\n", PLOT_W,
            CHART_H + 30, label);
    fprintf(f, "<text x=\"0\" y=\"12\" class=\"ax\">%.0f%s</text>\n",
            which ? max / 1024.0 : max, which ? " KiB" : "");
    fprintf(f, "<text x=\"0\" y=\"%d\" class=\"ax\">0</text>\n", CHART_H);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", LABEL_W,
            CHART_H, PLOT_W, CHART_H);
    for (unsigned i = 0; i < r->ndev; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"%s\" points=\"",
                palette[i % (sizeof palette / sizeof palette[0])]);
        for (unsigned s = 0; s < r->nsamples; s++) {
            double v = which ? (double)r->dev[i].bytes_cum[s] : r->dev[i].pending[s];
            fprintf(f, "%.1f,%.1f ", LABEL_W + s * w, CHART_H - v * (CHART_H - 10) / max);
        }
        fputs("\"/>\n", f);
    }
    x_axis(f, r, CHART_H + 20);
    fputs("</svg>\n", f);
}

int report_write_html(const char *path, const struct report *r)
{
    FILE *f = fopen(path, "w");
    int ok;
    if (!f)
        return -1;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>Satchel simulation report</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;color:#222;max-width:960px}\n"
          "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
          "text-align:right}td:first-child,th:first-child,td:nth-child(2){text-align:left}\n"
          ".ok{color:#2f9e44}.bad{color:#c92a2a;font-weight:bold}\n"
          ".lb{font-size:11px}.ax{font-size:10px;fill:#555}\n"
          ".key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}\n"
          "</style></head><body>\n",
          f);
    fputs("<h1>Satchel simulation: ", f);
    html_escape(f, r->scenario);
    fprintf(f, ", seed %llu</h1>\n<p>%u tablets in %u teams and one hub, ", (unsigned long long)r->seed,
            r->ndev, r->teams);
    if (r->days_run < r->days)
        fprintf(f, "stopped after day %u of %u simulated days.", r->days_run, r->days);
    else if (r->days > 1)
        fprintf(f, "%u simulated days (plots: the whole run).", r->days);
    else
        fputs("one simulated day.", f);
    fputs(" Replay: <code>", f);
    html_escape(f, r->replay);
    fputs("</code></p>\n<h2>Invariants</h2>\n<ul>\n", f);
    for (unsigned i = 0; i < r->ninv; i++) {
        fprintf(f, "<li class=\"%s\">%s ", r->inv[i].ok ? "ok" : "bad",
                r->inv[i].ok ? "&#10003;" : "&#10007;");
        html_escape(f, r->inv[i].name);
        if (r->inv[i].detail[0]) {
            fputs(": ", f);
            html_escape(f, r->inv[i].detail);
        }
        fputs("</li>\n", f);
    }
    fputs("</ul>\n<h2>Tablets</h2>\n<table><tr><th>tablet</th><th>team</th><th>visits</th>"
          "<th>writes</th><th>changes</th><th>syncs ok</th><th>failed</th><th>resumed</th>"
          "<th>conflicts</th><th>bytes</th><th></th></tr>\n",
          f);
    for (unsigned i = 0; i < r->ndev; i++) {
        const struct report_device *d = &r->dev[i];
        char bytes[24];
        fmt_bytes(d->bytes, bytes, sizeof bytes);
        fputs("<tr><td>", f);
        html_escape(f, d->name);
        fputs("</td><td>", f);
        html_escape(f, d->team);
        fprintf(f, "</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
                   "<td>%u</td><td>%s</td><td>%s</td></tr>\n",
                d->visits, d->writes, d->changes, d->syncs_ok, d->syncs_failed, d->resumed,
                d->conflicts, bytes,
                d->revoked ? "lost, revoked, wiped" : d->power_cuts ? "power cut" : "");
    }
    fputs("</table>\n<h2>Signal per tablet over time</h2>\n<p class=\"key\">"
          "<span style=\"background:#2f9e44\"></span>good<span style=\"background:#f0b429\">"
          "</span>patchy<span style=\"background:#cccccc\"></span>none</p>\n",
          f);
    connectivity(f, r);
    fputs("<h2>Changes waiting to reach the hub, per tablet</h2>\n", f);
    lines(f, r, 0, "pending changes");
    fputs("<h2>Bytes on the wire, per tablet (cumulative)</h2>\n", f);
    lines(f, r, 1, "bytes on the wire");
    fputs("<p class=\"key\">", f);
    for (unsigned i = 0; i < r->ndev; i++) {
        fprintf(f, "<span style=\"background:%s\"></span>",
                palette[i % (sizeof palette / sizeof palette[0])]);
        html_escape(f, r->dev[i].name);
    }
    fputs("</p>\n</body></html>\n", f);
    ok = !ferror(f);
    return fclose(f) == 0 && ok ? 0 : -1;
}
