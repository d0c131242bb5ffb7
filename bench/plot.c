/*
 * plot.c - reel-bench --plot DIR: the reports as charts, drawn by gnuplot.
 *
 * For each section with something to plot, this writes into DIR the numbers
 * (SECTION-WHAT.dat, one block per line of the chart, "index" in gnuplot's
 * terms) and one gnuplot script (SECTION.gp) that reads them from its own
 * directory and names its outputs (SECTION-WHAT.png); then it runs gnuplot
 * once, in DIR, on every script written. The files stay, so that a chart can
 * be redrawn or restyled by hand ("cd DIR && gnuplot store.gp").
 *
 * What comes from where:
 *   store     every rate row (GB/s, op/s) whose figure names an object size
 *             ("put 1 MiB bandwidth": the line "put bandwidth", x = 1 MiB),
 *             one chart per unit; a row that is Ray's (its figure or group
 *             begins with "Ray") is a line of its own, and so is a baseline
 *             whose name begins with "Ray" ("Ray, this machine: put")
 *   actors    calls per second: every op/s row, and every round trip as
 *             1 / its mean; reel's spin and sleep rows (the figure's ", spin"
 *             or ", sleep") and every Ray source side by side per figure
 *   any       every bench_series of the report, one chart each (pipeline:
 *             the autoscaler's trace, which bench_pipeline.c keeps in numbers)
 *
 * Nothing is parsed from printed text: names come from the rows, numbers from
 * their fields. Titles are written into the scripts with '"' and '\' replaced,
 * and the terminal is "noenhanced", so no name can break a script.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LINES  32 /* lines of one chart */
#define MAX_POINTS 64 /* points of one line */
#define MAX_CATS   64 /* figures of the actors chart */
#define MAX_COLS   8  /* sources of the actors chart: reel spin, reel sleep, Ray... */
#define MAX_FILES  32 /* PNGs of one call */

typedef struct plot_ctx {
    const char *dir;
    char *msg;
    size_t cap;
    char scripts[8][64]; /* SECTION.gp written */
    size_t nscripts;
    char pngs[MAX_FILES][64]; /* PNGs the scripts make */
    size_t npngs;
} plot_ctx;

/* ---- Files ---------------------------------------------------------------- */

static FILE *open_out(plot_ctx *pc, const char *name, int *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", pc->dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        *err = -errno;
        snprintf(pc->msg, pc->cap, "%s: %s", path, strerror(errno));
    }
    return f;
}

static int close_out(plot_ctx *pc, FILE *f, const char *name) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(pc->msg, pc->cap, "%s/%s: write failed", pc->dir, name);
        return -EIO;
    }
    return 0;
}

/* A string for a gnuplot script or data file, in double quotes. */
static void put_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch == '"' ? '\'' : ch == '\\' ? '/' : ch < 0x20 ? ' ' : ch, f);
    }
    fputc('"', f);
}

/* pngcairo where gnuplot has it (gnuplot-nox does), else libgd's png. */
static void put_terminal(FILE *f, int w, int h) {
    fprintf(f,
            "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
            "    set terminal pngcairo size %d,%d noenhanced font \",10\"\n"
            "} else {\n"
            "    set terminal png size %d,%d noenhanced\n"
            "}\n",
            w, h, w, h);
}

static void add_png(plot_ctx *pc, const char *name) {
    if (pc->npngs < MAX_FILES)
        snprintf(pc->pngs[pc->npngs++], sizeof(pc->pngs[0]), "%s", name);
}

static int begins(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- Names -------------------------------------------------------------------- */

/* Finds an object size in a figure ("put 1 MiB bandwidth": a number, a space,
 * B/KiB/MiB/GiB/TiB, then the end, a space or a comma) and copies the figure
 * without it into rest ("put bandwidth"). Returns the size in bytes, or 0
 * where there is none. */
static double figure_size(const char *fig, char *rest, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    for (const char *p = fig; *p; p++) {
        if ((p != fig && p[-1] != ' ') || *p < '0' || *p > '9')
            continue;
        char *end;
        double v = strtod(p, &end);
        if (end == p || *end != ' ')
            continue;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t ul = strlen(units[u]);
            const char *after = end + 1 + ul;
            if (strncmp(end + 1, units[u], ul) != 0 || (*after && *after != ' ' && *after != ','))
                continue;
            /* the figure before the size, trimmed, then what follows it */
            size_t head = (size_t)(p - fig);
            while (head && fig[head - 1] == ' ')
                head--;
            while (*after == ' ')
                after++;
            /* "memcpy 16 MiB, 2 threads" -> "memcpy, 2 threads" */
            snprintf(rest, cap, "%.*s%s%s", (int)head, fig,
                     head && *after && *after != ',' ? " " : "", after);
            return v * pow(1024.0, (double)u);
        }
    }
    return 0;
}

/* A group's source name: what comes before " (": "Ray, this machine (2.60.0)"
 * -> "Ray, this machine". */
static void group_source(const char *group, char *buf, size_t cap) {
    const char *paren = strstr(group, " (");
    size_t len = paren ? (size_t)(paren - group) : strlen(group);
    snprintf(buf, cap, "%.*s", (int)len, group);
}

/* ---- Lines against a numeric x (store) ------------------------------------------ */

typedef struct line {
    char title[160];
    double x[MAX_POINTS], y[MAX_POINTS];
    size_t n;
} line;

typedef struct chart {
    line lines[MAX_LINES];
    size_t n;
} chart;

/* Adds (x, y) to the line titled title, made if new; a second point at the
 * same x, or one that a log axis cannot show, is dropped. */
static void chart_add(chart *ch, const char *title, double x, double y) {
    if (!(x > 0) || !(y > 0) || !isfinite(x) || !isfinite(y))
        return;
    line *l = NULL;
    for (size_t i = 0; i < ch->n && !l; i++)
        if (strcmp(ch->lines[i].title, title) == 0)
            l = &ch->lines[i];
    if (!l) {
        if (ch->n == MAX_LINES)
            return;
        l = &ch->lines[ch->n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->title, sizeof(l->title), "%s", title);
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->x[i] == x)
            return;
    if (l->n == MAX_POINTS)
        return;
    /* kept sorted by x: rows come in size order, Ray's may come later */
    size_t i = l->n++;
    while (i && l->x[i - 1] > x) {
        l->x[i] = l->x[i - 1];
        l->y[i] = l->y[i - 1];
        i--;
    }
    l->x[i] = x;
    l->y[i] = y;
}

/* The store's rows of one unit, as lines against the object size. */
static void store_chart(const bench_report *rep, const char *unit, chart *ch) {
    ch->n = 0;
    for (size_t i = 0; i < rep->n; i++) {
        const bench_row *r = &rep->rows[i];
        char rest[BENCH_NAME_MAX], title[160], src[64];
        if (r->kind != BENCH_RATE || strcmp(r->unit, unit) != 0)
            continue;
        double size = figure_size(r->figure, rest, sizeof(rest));
        if (size <= 0)
            continue;
        if (begins(r->figure, "Ray")) {
            snprintf(title, sizeof(title), "%s", rest);
        } else if (begins(r->group, "Ray")) {
            group_source(r->group, src, sizeof(src));
            snprintf(title, sizeof(title), "%s: %s", src, rest);
        } else {
            snprintf(title, sizeof(title), "%s%s", begins(rest, "memcpy") ? "" : "reel ", rest);
        }
        chart_add(ch, title, size, r->value);
        if (!begins(title, "Ray") && r->has_baseline && begins(r->baseline_name, "Ray")) {
            snprintf(title, sizeof(title), "%s: %s", r->baseline_name, rest);
            chart_add(ch, title, size, r->baseline);
        }
    }
}

static int write_store_chart(plot_ctx *pc, FILE *gp, const chart *ch, const char *stem,
                             const char *what, const char *ylabel) {
    char dat[64], png[64];
    snprintf(dat, sizeof(dat), "%s.dat", stem);
    snprintf(png, sizeof(png), "%s.png", stem);
    int err = 0;
    FILE *f = open_out(pc, dat, &err);
    if (!f)
        return err;
    /* every size on the chart, for the x tics */
    double xs[MAX_LINES * MAX_POINTS];
    size_t nx = 0;
    for (size_t i = 0; i < ch->n; i++) {
        const line *l = &ch->lines[i];
        fprintf(f, "# %s\n# size_bytes value\n", l->title);
        for (size_t k = 0; k < l->n; k++) {
            fprintf(f, "%.17g %.17g\n", l->x[k], l->y[k]);
            int seen = 0;
            for (size_t j = 0; j < nx; j++)
                seen |= xs[j] == l->x[k];
            if (!seen)
                xs[nx++] = l->x[k];
        }
        fputs("\n\n", f);
    }
    if ((err = close_out(pc, f, dat)))
        return err;

    fputs("\nreset\nset output ", gp);
    put_str(gp, png);
    fputs("\nset title ", gp);
    put_str(gp, what);
    fputs("\nset xlabel \"object size\"\nset ylabel ", gp);
    put_str(gp, ylabel);
    fputs("\nset logscale xy\nset offsets graph 0.03, graph 0.03, 0, 0\nset grid\n"
          "set key outside right top\nset xtics (",
          gp);
    for (size_t j = 0; j < nx; j++) {
        char sz[32];
        bench_format_size((uint64_t)xs[j], sz, sizeof(sz));
        if (j)
            fputs(", ", gp);
        put_str(gp, sz);
        fprintf(gp, " %.17g", xs[j]);
    }
    fputs(")\n", gp);
    if (nx == 1) /* one size: gnuplot would warn of an empty range */
        fprintf(gp, "set xrange [%.17g:%.17g]\n", xs[0] / 2, xs[0] * 2);
    fputs("plot ", gp);
    for (size_t i = 0; i < ch->n; i++) {
        fputs(i ? ", \\\n     " : "", gp);
        put_str(gp, dat);
        /* Ray's lines dashed */
        fprintf(gp, " index %zu using 1:2 with linespoints lw 2 pt 7 ps 0.8%s title ", i,
                begins(ch->lines[i].title, "Ray") ? " dt 2" : "");
        put_str(gp, ch->lines[i].title);
    }
    fputs("\nunset output\n", gp);
    add_png(pc, png);
    return 0;
}

static int plot_store(plot_ctx *pc, const bench_report *rep, FILE *gp, int *made) {
    static const struct {
        const char *unit, *stem, *what, *ylabel;
    } charts[] = {
        {"GB/s", "store-bandwidth", "reel-bench store: bytes per second against object size",
         "GB/s (10^9 bytes per second)"},
        {"op/s", "store-ops", "reel-bench store: operations per second against object size",
         "operations per second"},
    };
    chart *ch = malloc(sizeof(*ch));
    if (!ch) {
        snprintf(pc->msg, pc->cap, "out of memory");
        return -ENOMEM;
    }
    int err = 0;
    for (size_t c = 0; !err && c < sizeof(charts) / sizeof(charts[0]); c++) {
        store_chart(rep, charts[c].unit, ch);
        if (ch->n == 0)
            continue;
        err = write_store_chart(pc, gp, ch, charts[c].stem, charts[c].what, charts[c].ylabel);
        *made += !err;
    }
    free(ch);
    return err;
}

/* ---- Calls per second, by figure and source (actors) --------------------------- */

typedef struct table {
    char cat[MAX_CATS][96];
    size_t ncat;
    char col[MAX_COLS][64];
    size_t ncol;
    double v[MAX_CATS][MAX_COLS]; /* NAN: none */
} table;

static size_t find_or_add(char (*names)[96], size_t *n, size_t max, size_t width, const char *s) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    if (*n == max)
        return max;
    snprintf(names[*n], width, "%s", s);
    return (*n)++;
}

static void table_set(table *t, const char *cat, const char *col, double v) {
    if (!(v > 0) || !isfinite(v))
        return;
    size_t i = find_or_add(t->cat, &t->ncat, MAX_CATS, sizeof(t->cat[0]), cat);
    size_t j = MAX_COLS;
    for (size_t k = 0; k < t->ncol && j == MAX_COLS; k++)
        if (strcmp(t->col[k], col) == 0)
            j = k;
    if (j == MAX_COLS && t->ncol < MAX_COLS) {
        j = t->ncol++;
        snprintf(t->col[j], sizeof(t->col[j]), "%s", col);
        for (size_t k = 0; k < MAX_CATS; k++)
            t->v[k][j] = NAN;
    }
    if (i < MAX_CATS && j < MAX_COLS && isnan(t->v[i][j]))
        t->v[i][j] = v;
}

/* Strips ", spin" or ", sleep" off the end of fig into base; the mode into
 * mode ("" where there is none). */
static void split_mode(const char *fig, char *base, size_t cap, const char **mode) {
    static const char *const modes[] = {"spin", "sleep"};
    size_t len = strlen(fig);
    *mode = "";
    for (size_t m = 0; m < 2; m++) {
        size_t ml = strlen(modes[m]) + 2;
        if (len > ml && strncmp(fig + len - ml, ", ", 2) == 0 &&
            strcmp(fig + len - ml + 2, modes[m]) == 0) {
            *mode = modes[m];
            len -= ml;
            break;
        }
    }
    snprintf(base, cap, "%.*s", (int)len, fig);
}

static void actors_table(const bench_report *rep, table *t) {
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < rep->n; i++) {
        const bench_row *r = &rep->rows[i];
        int lat = r->kind == BENCH_LATENCY && strcmp(r->unit, "us") == 0;
        if (!lat && !(r->kind == BENCH_RATE && strcmp(r->unit, "op/s") == 0))
            continue;
        int ray_fig = begins(r->figure, "Ray "), ray_group = begins(r->group, "Ray");
        char base[BENCH_NAME_MAX], cat[96], col[64];
        const char *mode;
        split_mode(ray_fig ? r->figure + 4 : r->figure, base, sizeof(base), &mode);
        /* a round trip is one synchronous call: calls/s = 1 / its mean; the
         * limits (no mode: the ping-pongs, the ring hand-off) are no calls */
        if (!ray_fig && !ray_group && (!mode[0] || strstr(r->group, "the limits")))
            continue;
        snprintf(cat, sizeof(cat), "%s%s", base, lat ? " (1/mean)" : "");
        if (ray_fig)
            snprintf(col, sizeof(col), "Ray");
        else if (ray_group)
            group_source(r->group, col, sizeof(col));
        else
            snprintf(col, sizeof(col), "reel%s%s", mode[0] ? ", " : "", mode);
        table_set(t, cat, col, lat ? 1e6 / r->value : r->value);
        if (!ray_fig && !ray_group && r->has_baseline && begins(r->baseline_name, "Ray"))
            table_set(t, cat, r->baseline_name, lat ? 1e6 / r->baseline : r->baseline);
    }
}

static int plot_actors(plot_ctx *pc, const bench_report *rep, FILE *gp, int *made) {
    table *t = malloc(sizeof(*t));
    if (!t) {
        snprintf(pc->msg, pc->cap, "out of memory");
        return -ENOMEM;
    }
    actors_table(rep, t);
    int err = 0;
    if (t->ncat == 0 || t->ncol == 0) {
        free(t);
        return 0;
    }
    /* reel's columns first, then the references, each in the order met */
    size_t order[MAX_COLS], no = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < t->ncol; j++)
            if (begins(t->col[j], "reel") == !pass)
                order[no++] = j;
    const char *dat = "actors-calls.dat", *png = "actors-calls.png";
    FILE *f = open_out(pc, dat, &err);
    if (f) {
        fputs("# calls per second; ? where a source has no figure\n# figure", f);
        for (size_t j = 0; j < t->ncol; j++) {
            fputc(' ', f);
            put_str(f, t->col[order[j]]);
        }
        fputc('\n', f);
        for (size_t i = 0; i < t->ncat; i++) {
            put_str(f, t->cat[i]);
            for (size_t j = 0; j < t->ncol; j++) {
                double v = t->v[i][order[j]];
                if (isnan(v))
                    fputs(" ?", f);
                else
                    fprintf(f, " %.17g", v);
            }
            fputc('\n', f);
        }
        err = close_out(pc, f, dat);
    }
    if (!err) {
        fputs("\nreset\nset output ", gp);
        put_str(gp, png);
        fputs("\nset title \"reel-bench actors: no-op actor calls per second (log scale)\"\n"
              "set ylabel \"calls per second\"\nunset xlabel\n"
              "set datafile missing \"?\"\n"
              "set style data histograms\nset style histogram clustered gap 1\n"
              "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
              "set logscale y\nset yrange [100:*]\nset grid ytics\n"
              "set key outside right top\nset xtics rotate by 30 right nomirror\n"
              "set bmargin 9\nplot ",
              gp);
        for (size_t j = 0; j < t->ncol; j++) {
            fputs(j ? ", \\\n     " : "", gp);
            put_str(gp, dat);
            fprintf(gp, " using %zu%s title ", j + 2, j ? "" : ":xtic(1)");
            put_str(gp, t->col[order[j]]);
        }
        fputs("\nunset output\n", gp);
        add_png(pc, png);
        (*made)++;
    }
    free(t);
    return err;
}

/* ---- Series (pipeline) ------------------------------------------------------------- */

static int plot_series(plot_ctx *pc, const bench_series *s, FILE *gp) {
    if (s->n == 0 || s->ncols < 2)
        return 0;
    char dat[64], png[64];
    snprintf(dat, sizeof(dat), "%s.dat", s->name);
    snprintf(png, sizeof(png), "%s.png", s->name);
    int err = 0;
    FILE *f = open_out(pc, dat, &err);
    if (!f)
        return err;
    fputs("#", f);
    for (size_t k = 0; k < s->ncols; k++) {
        fputc(' ', f);
        put_str(f, s->col[k]);
    }
    fputs("\n#", f);
    for (size_t k = 0; k < s->ncols; k++) {
        fputc(' ', f);
        put_str(f, s->unit[k]);
    }
    fputc('\n', f);
    for (size_t i = 0; i < s->n; i++) {
        for (size_t k = 0; k < s->ncols; k++) {
            double v = s->v[i * s->ncols + k];
            if (isfinite(v))
                fprintf(f, "%s%.17g", k ? " " : "", v);
            else
                fprintf(f, "%s?", k ? " " : "");
        }
        fputc('\n', f);
    }
    if ((err = close_out(pc, f, dat)))
        return err;

    /* one panel per unit, in the order the units first appear */
    const char *units[BENCH_SERIES_COLS];
    size_t np = 0;
    for (size_t k = 1; k < s->ncols; k++) {
        int seen = 0;
        for (size_t p = 0; p < np; p++)
            seen |= strcmp(units[p], s->unit[k]) == 0;
        if (!seen)
            units[np++] = s->unit[k];
    }
    char xl[96];
    snprintf(xl, sizeof(xl), "%s (%s)", s->col[0], s->unit[0]);
    fputs("\nreset\nset output ", gp);
    put_str(gp, png);
    /* fixed margins, so that the panels' x axes line up; x from the run's start */
    fputs("\nset datafile missing \"?\"\nset grid\nset key outside right top\n"
          "set lmargin at screen 0.08\nset rmargin at screen 0.78\nset xrange [0:*]\n",
          gp);
    fprintf(gp, "set multiplot layout %zu,1 title ", np);
    put_str(gp, s->title);
    fputc('\n', gp);
    for (size_t p = 0; p < np; p++) {
        /* counts (every value whole, at most 20) get a tic per unit */
        int whole = 1;
        double top = 0;
        for (size_t k = 1; k < s->ncols; k++) {
            if (strcmp(s->unit[k], units[p]) != 0)
                continue;
            for (size_t i = 0; i < s->n; i++) {
                double v = s->v[i * s->ncols + k];
                whole &= v == floor(v);
                top = v > top ? v : top;
            }
        }
        fputs("set ylabel ", gp);
        put_str(gp, units[p]);
        fputs("\nset xlabel ", gp);
        put_str(gp, p + 1 == np ? xl : "");
        if (whole && top <= 20)
            fprintf(gp, "\nset yrange [0:%g]\nset ytics 1\nplot ", top + 1);
        else
            fputs("\nset yrange [0:*]\nset ytics autofreq\nplot ", gp);
        int first = 1;
        for (size_t k = 1; k < s->ncols; k++) {
            if (strcmp(s->unit[k], units[p]) != 0)
                continue;
            fputs(first ? "" : ", \\\n     ", gp);
            first = 0;
            put_str(gp, dat);
            fprintf(gp, " using 1:%zu with %s lw 2 title ", k + 1,
                    s->steps[k] ? "steps" : "linespoints pt 7 ps 0.6");
            put_str(gp, s->col[k]);
        }
        fputc('\n', gp);
    }
    fputs("unset multiplot\nunset output\n", gp);
    add_png(pc, png);
    return 0;
}

/* ---- Running gnuplot ----------------------------------------------------------------- */

/* gnuplot's path in $PATH, or 0 where it is not there. */
static int find_gnuplot(char *path, size_t cap) {
    const char *env = getenv("PATH");
    char *list = strdup(env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
    if (!list)
        return 0;
    int found = 0;
    char *save = NULL;
    for (char *d = strtok_r(list, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, cap, "%s/gnuplot", *d ? d : ".");
        struct stat st;
        found = stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
    }
    free(list);
    return found;
}

static int run_gnuplot(plot_ctx *pc, const char *gnuplot) {
    const char *argv[8 + 2];
    size_t argc = 0;
    argv[argc++] = "gnuplot";
    for (size_t i = 0; i < pc->nscripts && argc < 9; i++)
        argv[argc++] = pc->scripts[i];
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        snprintf(pc->msg, pc->cap, "fork: %s", strerror(-err));
        return err;
    }
    if (pid == 0) {
        /* the scripts name their files relative to DIR; stdout stays the report's */
        if (chdir(pc->dir) != 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        execv(gnuplot, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            int err = -errno;
            snprintf(pc->msg, pc->cap, "waitpid(gnuplot): %s", strerror(-err));
            return err;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            snprintf(pc->msg, pc->cap, "%s was killed by signal %d", gnuplot, WTERMSIG(status));
        else
            snprintf(pc->msg, pc->cap, "%s exited with status %d (its messages are above)", gnuplot,
                     WEXITSTATUS(status));
        return -ECHILD;
    }
    for (size_t i = 0; i < pc->npngs; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", pc->dir, pc->pngs[i]);
        if (stat(path, &st) != 0 || st.st_size == 0) {
            snprintf(pc->msg, pc->cap, "gnuplot ran but did not write %s", path);
            return -EIO;
        }
    }
    return 0;
}

/* ---- The calls ------------------------------------------------------------------------- */

int bench_plot_prepare(const char *dir, char *why, size_t cap) {
    struct stat st;
    if (!dir[0]) {
        snprintf(why, cap, "the directory name is empty");
        return -EINVAL;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        int err = -errno;
        snprintf(why, cap, "cannot make the directory %s: %s", dir, strerror(-err));
        return err;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, cap, "%s is not a directory", dir);
        return -ENOTDIR;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        int err = -errno;
        snprintf(why, cap, "cannot write into %s: %s", dir, strerror(-err));
        return err;
    }
    return 0;
}

int bench_plot(const char *dir, const bench_report *reports, size_t n, int *rendered, char *msg,
               size_t cap) {
    plot_ctx pc = {.dir = dir, .msg = msg, .cap = cap};
    *rendered = 0;
    if (cap)
        msg[0] = '\0';
    int err = 0;
    for (size_t s = 0; !err && s < n; s++) {
        const bench_report *rep = &reports[s];
        char gpname[64];
        snprintf(gpname, sizeof(gpname), "%s.gp", rep->section);
        FILE *gp = open_out(&pc, gpname, &err);
        if (!gp)
            break;
        fprintf(gp, "# reel-bench %s --plot: run in this directory (gnuplot %s)\n", rep->section,
                gpname);
        put_terminal(gp, 1200, 650);
        int made = 0;
        if (strcmp(rep->section, "store") == 0)
            err = plot_store(&pc, rep, gp, &made);
        else if (strcmp(rep->section, "actors") == 0)
            err = plot_actors(&pc, rep, gp, &made);
        for (size_t i = 0; !err && i < rep->nseries; i++) {
            size_t before = pc.npngs;
            err = plot_series(&pc, &rep->series[i], gp);
            made += pc.npngs > before;
        }
        int cerr = close_out(&pc, gp, gpname);
        err = err ? err : cerr;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, gpname);
        if (!err && made && pc.nscripts < sizeof(pc.scripts) / sizeof(pc.scripts[0]))
            snprintf(pc.scripts[pc.nscripts++], sizeof(pc.scripts[0]), "%s", gpname);
        else if (!err)
            unlink(path); /* nothing to draw for this section */
    }
    if (err)
        return err;
    if (pc.nscripts == 0) {
        *rendered = 1;
        snprintf(msg, cap, "nothing to plot in %s", n == 1 ? reports[0].section : "these sections");
        return 0;
    }
    char gnuplot[4096];
    if (!find_gnuplot(gnuplot, sizeof(gnuplot))) {
        snprintf(msg, cap,
                 "gnuplot is not installed, no PNG made (apt-get install gnuplot-nox, then: "
                 "cd %s && gnuplot %s%s)",
                 dir, pc.scripts[0], pc.nscripts > 1 ? " ..." : "");
        return 0;
    }
    if ((err = run_gnuplot(&pc, gnuplot)))
        return err;
    *rendered = 1;
    size_t len = (size_t)snprintf(msg, cap, "wrote");
    for (size_t i = 0; i < pc.npngs && len < cap; i++)
        len += (size_t)snprintf(msg + len, cap - len, "%s %s/%s", i ? "," : "", dir, pc.pngs[i]);
    return 0;
}
