/*
 * reel-inspect: looks inside a live store without disturbing it.
 *
 * It attaches with REEL_OPEN_OBSERVER (no client slot, no references), takes
 * one snapshot of the counters, the client table and the object table, and
 * prints them as tables or as one JSON object per line. --watch repeats the
 * snapshot every N seconds; --reclaim is the only option that changes the
 * store (it reclaims what dead clients held).
 *
 * `reel-inspect pipeline ...` is another program under the same name: the
 * live figures of a running pipeline (scheduler/inspect_pipeline.c).
 *
 * Exit codes: 0 success, 1 the store could not be opened or read, 2 bad
 * arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <reel/store.h>

#include "cli.h"
#include "status.h" /* reel__inspect_pipeline_main */

#define PROG "reel-inspect"

enum sort_field { SORT_AGE, SORT_ID, SORT_SIZE, SORT_REFS, SORT_STATE };

static const char *const sort_names[] = {
    [SORT_AGE] = "age",   [SORT_ID] = "id",       [SORT_SIZE] = "size",
    [SORT_REFS] = "refs", [SORT_STATE] = "state",
};

static const char *const sort_orders[] = {
    [SORT_AGE] = "newest first",     [SORT_ID] = "ascending",
    [SORT_SIZE] = "largest first",   [SORT_REFS] = "most references first",
    [SORT_STATE] = "unsealed first",
};

struct options {
    const char *store;
    enum sort_field sort;
    bool reverse;
    uint32_t state; /* 0: any */
    uint64_t min_size;
    size_t limit; /* 0: all */
    bool no_objects;
    bool json;
    double watch_s; /* 0: one snapshot */
    bool reclaim;
};

struct snapshot {
    uint64_t now_ns; /* CLOCK_REALTIME, as the store's timestamps */
    reel_store_stats st;
    const char *spill_dir; /* the store's, valid while it is open */
    reel_client_info *clients;
    size_t clients_cap;
    size_t clients_total; /* as the store reported */
    size_t clients_listed;
    reel_obj_info *objs;
    size_t objs_cap;
    size_t objs_total;   /* as the store reported */
    size_t objs_listed;  /* copied into objs */
    size_t objs_matched; /* after the filters */
    size_t objs_shown;   /* after --limit */
};

static void usage(FILE *f) {
    fputs("usage: " PROG " [options] STORE\n"
          "       " PROG " pipeline [NAME] [--json] [--watch S]\n"
          "\n"
          "Shows what a live reel store holds: space, objects, clients. It attaches as an\n"
          "observer, so it takes no client slot and holds no reference.\n"
          "\n"
          "With \"pipeline\" first, it shows instead the live figures of a running pipeline,\n"
          "stage by stage (" PROG " pipeline --help says more).\n"
          "\n"
          "  STORE               a store name (\"frames\" is /dev/shm/reel-<uid>/frames) or a file "
          "path;\n"
          "                      a store named \"pipeline\" is given by its path\n"
          "\n"
          "options:\n"
          "  --sort FIELD        order of the object table: age (newest first, the default),\n"
          "                      id (ascending), size (largest first), refs (most first),\n"
          "                      state (unsealed, sealed, deleting; newest first within)\n"
          "  --reverse           reverse that order\n"
          "  --state S           list only objects in state S: unsealed, sealed or deleting\n"
          "  --min-size BYTES    list only objects of at least BYTES (suffixes K, M, G, T:\n"
          "                      powers of 1024; \"1.5M\", \"64KiB\")\n"
          "  --limit N           show at most N objects (default 50; 0 shows all)\n"
          "  --no-objects        omit the object table\n"
          "  --json              print one JSON object {\"summary\", \"clients\", \"objects\"} on\n"
          "                      one line (with --watch, one line per refresh)\n"
          "  --watch N           refresh every N seconds (N > 0, fractions allowed) until\n"
          "                      interrupted (Ctrl-C); clears the screen on a terminal\n"
          "  --reclaim           first reclaim what dead clients hold (this changes the\n"
          "                      store), say how many were reclaimed, then report\n"
          "  -h, --help          show this text\n"
          "\n"
          "exit status: 0 success, 1 the store cannot be opened or read, 2 bad arguments\n",
          f);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...) {
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

/* Digits only: strtoull alone would accept signs and blanks. */
static bool parse_u64(const char *s, uint64_t *out) {
    if (s[0] < '0' || s[0] > '9')
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "4096", "100B", "64K", "64KiB", "1.5M", "2G". */
static bool parse_size(const char *s, uint64_t *out) {
    uint64_t whole = 0, frac = 0, frac_den = 1;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (whole > (UINT64_MAX - d) / 10)
            return false;
        whole = whole * 10 + d;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (frac_den < 1000000) { /* finer than that is below a byte at T */
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_den *= 10;
            }
        }
    }
    uint64_t mult = 1;
    switch (*p) {
    case 'k':
    case 'K':
        mult = 1ull << 10;
        break;
    case 'm':
    case 'M':
        mult = 1ull << 20;
        break;
    case 'g':
    case 'G':
        mult = 1ull << 30;
        break;
    case 't':
    case 'T':
        mult = 1ull << 40;
        break;
    default:
        break;
    }
    if (mult > 1) {
        p++;
        if (p[0] == 'i' && p[1] == 'B')
            p += 2;
        else if (p[0] == 'B')
            p++;
    } else if (p[0] == 'B') {
        p++;
    }
    if (*p != '\0')
        return false;
    if (frac_den > 1 && mult == 1)
        return false; /* a fraction of a byte */
    if (whole > UINT64_MAX / mult)
        return false;
    uint64_t v = whole * mult;
    uint64_t f = frac * mult / frac_den; /* frac < 1e6, mult <= 2^40: no overflow */
    if (v > UINT64_MAX - f)
        return false;
    *out = v + f;
    return true;
}

static void parse_args(int argc, char **argv, struct options *o) {
    char shown[256], shown2[256];
    bool only_operands = false;
    memset(o, 0, sizeof(*o));
    o->sort = SORT_AGE;
    o->limit = 50;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *v = NULL;
        if (only_operands || arg[0] != '-' || arg[1] == '\0') {
            if (o->store)
                usage_error("more than one store given ('%s' and '%s')",
                            cli_one_line(o->store, shown, sizeof(shown)),
                            cli_one_line(arg, shown2, sizeof(shown2)));
            if (arg[0] == '\0')
                usage_error("the store path is empty");
            o->store = arg;
        } else if (strcmp(arg, "--") == 0) {
            only_operands = true;
        } else if (strcmp(arg, "-h") == 0 ||
                   cli_match_option(argc, argv, &i, "--help", false, &v, usage_error)) {
            usage(stdout);
            exit(0);
        } else if (cli_match_option(argc, argv, &i, "--sort", true, &v, usage_error)) {
            size_t k = 0;
            for (; k < sizeof(sort_names) / sizeof(sort_names[0]); k++)
                if (strcmp(v, sort_names[k]) == 0)
                    break;
            if (k == sizeof(sort_names) / sizeof(sort_names[0]))
                usage_error("unknown sort field '%s' (id, size, age, refs or state)",
                            cli_one_line(v, shown, sizeof(shown)));
            o->sort = (enum sort_field)k;
        } else if (cli_match_option(argc, argv, &i, "--reverse", false, &v, usage_error)) {
            o->reverse = true;
        } else if (cli_match_option(argc, argv, &i, "--state", true, &v, usage_error)) {
            if (strcmp(v, "unsealed") == 0)
                o->state = REEL_OBJ_UNSEALED;
            else if (strcmp(v, "sealed") == 0)
                o->state = REEL_OBJ_SEALED;
            else if (strcmp(v, "deleting") == 0)
                o->state = REEL_OBJ_DELETING;
            else if (strcmp(v, "spilled") == 0)
                o->state = REEL_OBJ_SPILLED;
            else
                usage_error("unknown state '%s' (unsealed, sealed, deleting or spilled)",
                            cli_one_line(v, shown, sizeof(shown)));
        } else if (cli_match_option(argc, argv, &i, "--min-size", true, &v, usage_error)) {
            if (!parse_size(v, &o->min_size))
                usage_error("--min-size needs a byte count such as 4096, 64K or 1.5M, not '%s'",
                            cli_one_line(v, shown, sizeof(shown)));
        } else if (cli_match_option(argc, argv, &i, "--limit", true, &v, usage_error)) {
            uint64_t n;
            if (!parse_u64(v, &n))
                usage_error("--limit needs a whole number (0 for all), not '%s'",
                            cli_one_line(v, shown, sizeof(shown)));
            o->limit = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
        } else if (cli_match_option(argc, argv, &i, "--no-objects", false, &v, usage_error)) {
            o->no_objects = true;
        } else if (cli_match_option(argc, argv, &i, "--json", false, &v, usage_error)) {
            o->json = true;
        } else if (cli_match_option(argc, argv, &i, "--watch", true, &v, usage_error)) {
            if (!cli_parse_seconds(v, &o->watch_s))
                usage_error("--watch needs a positive number of seconds, not '%s'",
                            cli_one_line(v, shown, sizeof(shown)));
        } else if (cli_match_option(argc, argv, &i, "--reclaim", false, &v, usage_error)) {
            o->reclaim = true;
        } else {
            usage_error("unknown option '%s'", cli_one_line(arg, shown, sizeof(shown)));
        }
    }
    if (!o->store)
        usage_error("no store given");
}

/* ---- formatting ---------------------------------------------------------- */

static const char *fmt_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (b < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", b);
        return buf;
    }
    double v = (double)b / 1024;
    size_t u = 0;
    while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

static double pct(uint64_t part, uint64_t whole) {
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static double fragmentation_pct(const reel_store_stats *st) {
    if (st->free == 0 || st->largest_free >= st->free)
        return 0.0;
    return 100.0 * (1.0 - (double)st->largest_free / (double)st->free);
}

/* Seconds from then to now; 0 when then is unset or in the future. */
static double age_s(uint64_t now_ns, uint64_t then_ns) {
    if (then_ns == 0 || then_ns >= now_ns)
        return 0.0;
    return (double)(now_ns - then_ns) / 1e9;
}

static const char *fmt_age(uint64_t now_ns, uint64_t then_ns, char *buf, size_t cap) {
    if (then_ns == 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    return cli_format_duration(age_s(now_ns, then_ns), buf, cap);
}

static const char *state_name(uint32_t state) {
    switch (state) {
    case REEL_OBJ_UNSEALED:
        return "unsealed";
    case REEL_OBJ_SEALED:
        return "sealed";
    case REEL_OBJ_DELETING:
        return "deleting";
    case REEL_OBJ_SPILLED:
        return "spilled";
    default:
        return "?";
    }
}

static const char *kind_name(uint32_t kind) {
    switch (kind) {
    case REEL_META_BYTES:
        return "bytes";
    case REEL_META_ENCODED:
        return "encoded";
    case REEL_META_FRAME:
        return "frame";
    case REEL_META_TENSOR:
        return "tensor";
    default:
        return "?";
    }
}

/* Decodes an object's metadata when all of it was copied into the listing.
 * The decoder validates; this only makes the strings safe to print. */
static bool meta_decode(const reel_obj_info *o, reel_meta *m) {
    if (o->meta_size == 0 || o->meta_size > REEL_OBJ_INFO_META_MAX)
        return false;
    if (reel_meta_decode(o->meta, o->meta_size, m) != 0)
        return false;
    m->format[REEL_META_NAME_MAX - 1] = '\0';
    for (char *c = m->format; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    if (m->ndim > REEL_META_MAX_DIMS)
        m->ndim = REEL_META_MAX_DIMS;
    return true;
}

/* "frame yuv420p 1920x1080", "tensor f32[3,224,224]", "encoded h264", "bytes",
 * "<N bytes>" (not reel metadata), "-" (none). Frames are shaped [H, W, ...]. */
static const char *meta_summary(const reel_obj_info *o, char *buf, size_t cap) {
    reel_meta m;
    if (o->meta_size == 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    if (!meta_decode(o, &m)) {
        snprintf(buf, cap, "<%" PRIu32 " bytes>", o->meta_size);
        return buf;
    }
    size_t n = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);                                          \
        if (w_ > 0)                                                                                \
            n = (size_t)w_ < cap - n ? n + (size_t)w_ : cap - 1;                                   \
    } while (0)
    APPEND("%s", kind_name(m.kind));
    switch (m.kind) {
    case REEL_META_FRAME:
        if (m.format[0])
            APPEND(" %s", m.format);
        if (m.ndim >= 2)
            APPEND(" %" PRIu64 "x%" PRIu64, m.shape[1], m.shape[0]);
        break;
    case REEL_META_TENSOR:
        APPEND(" %s[", reel_dtype_name(m.dtype));
        for (uint32_t d = 0; d < m.ndim; d++)
            APPEND("%s%" PRIu64, d ? "," : "", m.shape[d]);
        APPEND("]");
        if (m.format[0])
            APPEND(" %s", m.format);
        break;
    case REEL_META_ENCODED:
        if (m.format[0])
            APPEND(" %s", m.format);
        break;
    default:
        break;
    }
#undef APPEND
    return buf;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_summary(FILE *f, const char *path, const reel_store_stats *st) {
    fputs("{\"path\":", f);
    cli_json_str(f, path);
    fprintf(f,
            ",\"capacity\":%" PRIu64 ",\"used\":%" PRIu64 ",\"peak_used\":%" PRIu64
            ",\"free\":%" PRIu64 ",\"used_pct\":%.2f,\"free_pct\":%.2f,\"largest_free\":%" PRIu64
            ",\"fragmentation_pct\":%.2f,\"free_blocks\":%" PRIu32,
            st->capacity, st->used, st->peak_used, st->free, pct(st->used, st->capacity),
            pct(st->free, st->capacity), st->largest_free, fragmentation_pct(st), st->free_blocks);
    fprintf(f,
            ",\"max_objects\":%" PRIu32 ",\"objects\":%" PRIu32 ",\"objects_unsealed\":%" PRIu32
            ",\"objects_sealed\":%" PRIu32 ",\"objects_deleting\":%" PRIu32
            ",\"objects_evictable\":%" PRIu32 ",\"objects_referenced\":%" PRIu32,
            st->max_objects, st->objects, st->objects_unsealed, st->objects_sealed,
            st->objects_deleting, st->objects_evictable, st->objects_referenced);
    fprintf(f,
            ",\"max_clients\":%" PRIu32 ",\"clients_alive\":%" PRIu32 ",\"clients_dead\":%" PRIu32
            ",\"evictions\":%" PRIu64 ",\"evicted_bytes\":%" PRIu64 ",\"reclaims\":%" PRIu64
            ",\"recoveries\":%" PRIu64 ",\"objects_owned\":%" PRIu32
            ",\"orphans_deleted\":%" PRIu64,
            st->max_clients, st->clients_alive, st->clients_dead, st->evictions, st->evicted_bytes,
            st->reclaims, st->recoveries, st->objects_owned, st->orphans_deleted);
    fprintf(f,
            ",\"objects_spilled\":%" PRIu32 ",\"spilled_bytes\":%" PRIu64
            ",\"spill_files\":%" PRIu32 ",\"spill_writes\":%" PRIu64
            ",\"spill_written_bytes\":%" PRIu64 ",\"restores\":%" PRIu64
            ",\"restored_bytes\":%" PRIu64 ",\"spill_failures\":%" PRIu64
            ",\"spill_dir_in_memory\":%s}",
            st->objects_spilled, st->spilled_bytes, st->spill_files, st->spill_writes,
            st->spill_written_bytes, st->restores, st->restored_bytes, st->spill_failures,
            st->spill_dir_in_memory ? "true" : "false");
}

static void json_object(FILE *f, const reel_obj_info *o, uint64_t now_ns) {
    char hex[REEL_ID_HEX_LEN + 1], sum[256];
    reel_meta m;
    reel_id_to_hex(&o->id, hex);
    fprintf(f, "{\"id\":\"%s\",\"size\":%" PRIu64 ",\"meta_size\":%" PRIu32 ",\"state\":", hex,
            o->size, o->meta_size);
    cli_json_str(f, state_name(o->state));
    fprintf(f,
            ",\"refs\":%" PRIu32 ",\"flags\":%" PRIu32 ",\"evictable\":%s,\"creator_pid\":%ld"
            ",\"owner_pid\":%ld,\"create_ns\":%" PRIu64 ",\"age_s\":%.3f,\"meta\":",
            o->refs, o->flags, (o->flags & REEL_OBJ_EVICTABLE) ? "true" : "false",
            (long)o->creator_pid, (long)o->owner_pid, o->create_ns, age_s(now_ns, o->create_ns));
    if (meta_decode(o, &m)) {
        fputs("{\"kind\":", f);
        cli_json_str(f, kind_name(m.kind));
        fputs(",\"format\":", f);
        cli_json_str(f, m.format);
        fputs(",\"dtype\":", f);
        cli_json_str(f, reel_dtype_name(m.dtype));
        fputs(",\"shape\":[", f);
        for (uint32_t d = 0; d < m.ndim; d++)
            fprintf(f, "%s%" PRIu64, d ? "," : "", m.shape[d]);
        fprintf(f, "],\"pts_us\":%" PRId64 ",\"duration_us\":%" PRId64 "}", m.pts_us,
                m.duration_us);
    } else {
        fputs("null", f);
    }
    fputs(",\"summary\":", f);
    cli_json_str(f, meta_summary(o, sum, sizeof(sum)));
    fputc('}', f);
}

static void print_json(FILE *f, const struct options *o, const char *path, const struct snapshot *s,
                       const uint32_t *reclaimed) {
    fprintf(f, "{\"time_ns\":%" PRIu64 ",", s->now_ns);
    if (reclaimed)
        fprintf(f, "\"reclaimed\":%" PRIu32 ",", *reclaimed);
    fputs("\"summary\":", f);
    json_summary(f, path, &s->st);
    fputs(",\"clients\":[", f);
    for (size_t i = 0; i < s->clients_listed; i++) {
        const reel_client_info *c = &s->clients[i];
        fprintf(f,
                "%s{\"slot\":%" PRIu32 ",\"pid\":%ld,\"alive\":%s,\"refs\":%" PRIu32
                ",\"unsealed\":%" PRIu32 ",\"attach_ns\":%" PRIu64 ",\"age_s\":%.3f}",
                i ? "," : "", c->slot, (long)c->pid, c->alive ? "true" : "false", c->refs,
                c->unsealed, c->attach_ns, age_s(s->now_ns, c->attach_ns));
    }
    fputc(']', f);
    if (!o->no_objects) {
        fputs(",\"objects\":[", f);
        for (size_t i = 0; i < s->objs_shown; i++) {
            if (i)
                fputc(',', f);
            json_object(f, &s->objs[i], s->now_ns);
        }
        fputs("],\"listing\":{\"sort\":", f);
        cli_json_str(f, sort_names[o->sort]);
        fprintf(f,
                ",\"reverse\":%s,\"total\":%zu,\"listed\":%zu,\"matched\":%zu,\"shown\":%zu"
                ",\"truncated\":%s}",
                o->reverse ? "true" : "false", s->objs_total, s->objs_listed, s->objs_matched,
                s->objs_shown, s->objs_listed < s->objs_total ? "true" : "false");
    }
    fputs("}\n", f);
}

/* ---- text ---------------------------------------------------------------- */

static void print_summary(FILE *f, const char *path, const reel_store_stats *st,
                          const char *spill_dir) {
    char a[32], b[32];
    fprintf(f, "store       %s\n", path);
    fprintf(f, "capacity    %s (%" PRIu64 " bytes)\n", fmt_bytes(st->capacity, a, sizeof(a)),
            st->capacity);
    fprintf(f, "used        %s (%.1f%%), peak %s (%.1f%%)\n", fmt_bytes(st->used, a, sizeof(a)),
            pct(st->used, st->capacity), fmt_bytes(st->peak_used, b, sizeof(b)),
            pct(st->peak_used, st->capacity));
    fprintf(f,
            "free        %s (%.1f%%), largest block %s, %" PRIu32 " free block%s, %.1f%% "
            "fragmented\n",
            fmt_bytes(st->free, a, sizeof(a)), pct(st->free, st->capacity),
            fmt_bytes(st->largest_free, b, sizeof(b)), st->free_blocks,
            st->free_blocks == 1 ? "" : "s", fragmentation_pct(st));
    fprintf(f,
            "objects     %" PRIu32 " of %" PRIu32 ": %" PRIu32 " unsealed, %" PRIu32
            " sealed, %" PRIu32 " deleting; %" PRIu32 " evictable, %" PRIu32 " referenced\n",
            st->objects, st->max_objects, st->objects_unsealed, st->objects_sealed,
            st->objects_deleting, st->objects_evictable, st->objects_referenced);
    fprintf(f, "clients     %" PRIu32 " alive, %" PRIu32 " dead of %" PRIu32 "%s\n",
            st->clients_alive, st->clients_dead, st->max_clients,
            st->clients_dead ? " (--reclaim frees what the dead hold)" : "");
    fprintf(f,
            "evictions   %" PRIu64 " (%s); reclaims %" PRIu64 "; lock recoveries %" PRIu64
            "; %" PRIu32 " objects owned, %" PRIu64 " deleted with their owner\n",
            st->evictions, fmt_bytes(st->evicted_bytes, a, sizeof(a)), st->reclaims, st->recoveries,
            st->objects_owned, st->orphans_deleted);
    fprintf(f,
            "spilled     %" PRIu32 " objects, %s in %" PRIu32 " file%s; since creation %" PRIu64
            " written (%s), %" PRIu64 " restored",
            st->objects_spilled, fmt_bytes(st->spilled_bytes, a, sizeof(a)), st->spill_files,
            st->spill_files == 1 ? "" : "s", st->spill_writes,
            fmt_bytes(st->spill_written_bytes, b, sizeof(b)), st->restores);
    fprintf(f, " (%s)", fmt_bytes(st->restored_bytes, a, sizeof(a)));
    if (st->spill_failures)
        fprintf(f, "; %" PRIu64 " spill failures", st->spill_failures);
    fputc('\n', f);
    if (st->spill_dir_in_memory)
        fprintf(f,
                "warning     the spill directory %s is on tmpfs or ramfs: spilling there frees no "
                "memory (create the store with a spill_dir on disk)\n",
                spill_dir);
}

static void print_clients(FILE *f, const struct snapshot *s) {
    char age[32];
    fprintf(f, "\nclients: %zu\n", s->clients_total);
    if (s->clients_listed == 0)
        return;
    fprintf(f, "%5s %9s %-5s %8s %8s %10s\n", "SLOT", "PID", "STATE", "REFS", "UNSEALED",
            "ATTACHED");
    for (size_t i = 0; i < s->clients_listed; i++) {
        const reel_client_info *c = &s->clients[i];
        fprintf(f, "%5" PRIu32 " %9ld %-5s %8" PRIu32 " %8" PRIu32 " %10s\n", c->slot, (long)c->pid,
                c->alive ? "alive" : "DEAD", c->refs, c->unsealed,
                fmt_age(s->now_ns, c->attach_ns, age, sizeof(age)));
    }
    if (s->clients_listed < s->clients_total)
        fprintf(f, "(%zu more not listed)\n", s->clients_total - s->clients_listed);
}

static void print_objects(FILE *f, const struct options *o, const struct snapshot *s) {
    char hex[REEL_ID_HEX_LEN + 1], size[32], age[32], sum[256], min[32];
    fprintf(f, "\nobjects: %zu", s->objs_total);
    if (o->state || o->min_size) {
        fprintf(f, ", %zu matching", s->objs_matched);
        if (o->state)
            fprintf(f, " state %s", state_name(o->state));
        if (o->min_size)
            fprintf(f, "%s size >= %s", o->state ? " and" : "",
                    fmt_bytes(o->min_size, min, sizeof(min)));
    }
    fprintf(f, "; sorted by %s, %s%s\n", sort_names[o->sort], sort_orders[o->sort],
            o->reverse ? ", reversed" : "");
    if (s->objs_shown == 0)
        return;
    fprintf(f, "%-32s %10s %-8s %5s %9s %9s %7s  %s\n", "ID", "SIZE", "STATE", "REFS", "CREATOR",
            "OWNER", "AGE", "META");
    for (size_t i = 0; i < s->objs_shown; i++) {
        const reel_obj_info *ob = &s->objs[i];
        reel_id_to_hex(&ob->id, hex);
        char owner[16] = "-";
        if (ob->owner_pid)
            snprintf(owner, sizeof owner, "%ld", (long)ob->owner_pid);
        fprintf(f, "%-32s %10s %-8s %5" PRIu32 " %9ld %9s %7s  %s\n", hex,
                fmt_bytes(ob->size, size, sizeof(size)), state_name(ob->state), ob->refs,
                (long)ob->creator_pid, owner, fmt_age(s->now_ns, ob->create_ns, age, sizeof(age)),
                meta_summary(ob, sum, sizeof(sum)));
    }
    if (s->objs_shown < s->objs_matched)
        fprintf(f, "(showing %zu of %zu; --limit 0 shows all)\n", s->objs_shown, s->objs_matched);
    if (s->objs_listed < s->objs_total)
        fprintf(f, "(the store grew while listing: %zu objects not listed)\n",
                s->objs_total - s->objs_listed);
}

/* ---- snapshot -------------------------------------------------------------- */

static int cmp_id(const reel_obj_info *a, const reel_obj_info *b) {
    return memcmp(a->id.bytes, b->id.bytes, sizeof(a->id.bytes));
}

#define CMP_DESC(x, y) ((x) > (y) ? -1 : (x) < (y) ? 1 : 0)
#define CMP_ASC(x, y)  ((x) < (y) ? -1 : (x) > (y) ? 1 : 0)

static int cmp_age(const void *pa, const void *pb) {
    const reel_obj_info *a = pa, *b = pb;
    int c = CMP_DESC(a->create_ns, b->create_ns);
    return c ? c : cmp_id(a, b);
}

static int cmp_idv(const void *pa, const void *pb) {
    return cmp_id(pa, pb);
}

static int cmp_size(const void *pa, const void *pb) {
    const reel_obj_info *a = pa, *b = pb;
    int c = CMP_DESC(a->size, b->size);
    return c ? c : cmp_age(a, b);
}

static int cmp_refs(const void *pa, const void *pb) {
    const reel_obj_info *a = pa, *b = pb;
    int c = CMP_DESC(a->refs, b->refs);
    return c ? c : cmp_age(a, b);
}

static int cmp_state(const void *pa, const void *pb) {
    const reel_obj_info *a = pa, *b = pb;
    int c = CMP_ASC(a->state, b->state);
    return c ? c : cmp_age(a, b);
}

/* Grows *buf to hold want elements of size elem (never shrinks). When want
 * cannot be had, tries fallback (a smaller count) before giving up. */
static int reserve(void **buf, size_t *cap, size_t want, size_t fallback, size_t elem) {
    if (want == 0)
        want = 1;
    if (*cap >= want)
        return 0;
    size_t tries[2] = {want, fallback};
    for (int t = 0; t < 2; t++) {
        size_t n = tries[t];
        if (n <= *cap || n > SIZE_MAX / elem)
            continue;
        void *p = realloc(*buf, n * elem);
        if (p) {
            *buf = p;
            *cap = n;
            return 0;
        }
    }
    return *cap ? 0 : -ENOMEM;
}

static int take_snapshot(reel_store *store, const struct options *o, struct snapshot *s,
                         const char **what) {
    struct timespec ts;
    int rc;

    *what = "cannot read the statistics of";
    rc = reel_store_stats_get(store, &s->st);
    if (rc)
        return rc;
    s->spill_dir = reel_store_spill_dir(store);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;

    *what = "cannot list the clients of";
    rc = reserve((void **)&s->clients, &s->clients_cap, s->st.max_clients, 64, sizeof(*s->clients));
    if (rc)
        return rc;
    rc = reel_store_clients(store, s->clients, s->clients_cap, &s->clients_total);
    if (rc)
        return rc;
    s->clients_listed = s->clients_total < s->clients_cap ? s->clients_total : s->clients_cap;

    s->objs_total = s->objs_listed = s->objs_matched = s->objs_shown = 0;
    if (o->no_objects)
        return 0;
    *what = "cannot list the objects of";
    /* max_objects bounds the count; the buffer is only touched as far as it is
     * filled, so a large table costs address space rather than memory. */
    size_t some = (size_t)s->st.objects + s->st.objects / 4 + 1024;
    rc = reserve((void **)&s->objs, &s->objs_cap, s->st.max_objects, some, sizeof(*s->objs));
    if (rc)
        return rc;
    rc = reel_store_objects(store, s->objs, s->objs_cap, &s->objs_total);
    if (rc)
        return rc;
    if (s->objs_total > s->objs_cap) { /* grew past the fallback: one more try */
        size_t want = s->objs_total + s->objs_total / 8;
        if (reserve((void **)&s->objs, &s->objs_cap, want, want, sizeof(*s->objs)) == 0) {
            rc = reel_store_objects(store, s->objs, s->objs_cap, &s->objs_total);
            if (rc)
                return rc;
        }
    }
    s->objs_listed = s->objs_total < s->objs_cap ? s->objs_total : s->objs_cap;

    size_t n = 0;
    for (size_t i = 0; i < s->objs_listed; i++) {
        const reel_obj_info *ob = &s->objs[i];
        if ((o->state && ob->state != o->state) || ob->size < o->min_size)
            continue;
        if (n != i)
            s->objs[n] = *ob;
        n++;
    }
    s->objs_matched = n;

    static int (*const cmps[])(const void *, const void *) = {
        [SORT_AGE] = cmp_age,   [SORT_ID] = cmp_idv,      [SORT_SIZE] = cmp_size,
        [SORT_REFS] = cmp_refs, [SORT_STATE] = cmp_state,
    };
    qsort(s->objs, n, sizeof(*s->objs), cmps[o->sort]);
    if (o->reverse) {
        for (size_t i = 0; i < n / 2; i++) {
            reel_obj_info t = s->objs[i];
            s->objs[i] = s->objs[n - 1 - i];
            s->objs[n - 1 - i] = t;
        }
    }
    s->objs_shown = (o->limit && o->limit < n) ? o->limit : n;
    return 0;
}

static void print_report(const struct options *o, const char *path, const struct snapshot *s,
                         const uint32_t *reclaimed) {
    if (o->json) {
        print_json(stdout, o, path, s, reclaimed);
        return;
    }
    if (reclaimed)
        printf("reclaimed %" PRIu32 " dead client%s\n\n", *reclaimed, *reclaimed == 1 ? "" : "s");
    print_summary(stdout, path, &s->st, s->spill_dir);
    print_clients(stdout, s);
    if (!o->no_objects)
        print_objects(stdout, o, s);
}

static void fail(const char *what, const char *path, int rc) {
    char p[512];
    cli_print_reel_error(PROG, rc, "%s %s", what, cli_one_line(path, p, sizeof(p)));
}

int main(int argc, char **argv) {
    struct options o;
    struct snapshot s;
    reel_store *store = NULL;
    const char *what = "";
    char shm_path[4096];
    uint32_t reclaimed = 0;
    int rc, status = 0;

    if (argc > 1 && strcmp(argv[1], "pipeline") == 0)
        return reel__inspect_pipeline_main(argc - 1, argv + 1);
    parse_args(argc, argv, &o);
    memset(&s, 0, sizeof(s));

    /* The path reel_store_open() resolves a bare name to, for messages before
     * there is a handle to ask. */
    const char *path = o.store;
    if (!strchr(o.store, '/')) {
        snprintf(shm_path, sizeof(shm_path), "/dev/shm/reel-%u/%s", (unsigned)geteuid(), o.store);
        path = shm_path;
    }

    rc = reel_store_open(o.store, REEL_OPEN_OBSERVER, &store);
    if (rc) {
        fail("cannot open", path, rc);
        return 1;
    }
    path = reel_store_path(store);

    if (o.reclaim) {
        rc = reel_store_reclaim(store, &reclaimed);
        if (rc) {
            fail("cannot reclaim dead clients of", path, rc);
            reel_store_close(store);
            return 1;
        }
    }

    sigset_t stop;
    sigemptyset(&stop);
    if (o.watch_s > 0)
        cli_watch_block_signals(&stop); /* never while a listing holds the store's lock */
    bool tty = isatty(STDOUT_FILENO);

    for (bool first = true;; first = false) {
        rc = take_snapshot(store, &o, &s, &what);
        if (rc) {
            fail(what, path, rc);
            status = 1;
            break;
        }
        if (o.watch_s > 0 && !o.json)
            cli_print_watch_banner(stdout, o.watch_s, PROG, o.store, s.now_ns, first, tty);
        print_report(&o, path, &s, (o.reclaim && first) ? &reclaimed : NULL);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, PROG ": cannot write the report: %s\n", strerror(errno));
            status = 1;
            break;
        }
        if (o.watch_s <= 0)
            break;
        if (cli_watch_sleep(&stop, o.watch_s))
            break; /* interrupted: a clean stop */
    }

    rc = reel_store_close(store);
    if (rc && status == 0) {
        fail("error detaching from", o.store, rc);
        status = 1;
    }
    free(s.clients);
    free(s.objs);
    return status;
}
