/* The executor configuration (scheduler/config.h): one table of keys drives
 * the code, JSON and flag paths, so that the three agree on names, types,
 * ranges and error sentences. */
#include "config.h"
#include "store_internal.h" /* reel__fail */

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum key_type { T_NUMBER, T_BOOL, T_MODE } key_type;

typedef struct key_def {
    const char *name; /* as in NeMo Curator and the JSON file */
    const char *flag; /* the flag's spelling, without "--" */
    key_type type;
    size_t off;
    double hi; /* numbers: valid in (0, hi] */
} key_def;

#define NKEYS 5u

static const key_def keys[NKEYS] = {
    {"logging_interval", "logging-interval", T_NUMBER,
     offsetof(reel_executor_config, logging_interval), REEL_CONFIG_MAX_INTERVAL},
    {"ignore_failures", "ignore-failures", T_BOOL, offsetof(reel_executor_config, ignore_failures),
     0},
    {"execution_mode", "execution-mode", T_MODE, offsetof(reel_executor_config, execution_mode), 0},
    {"cpu_allocation_percentage", "cpu-allocation-percentage", T_NUMBER,
     offsetof(reel_executor_config, cpu_allocation_percentage), 1.0},
    {"autoscale_interval_s", "autoscale-interval-s", T_NUMBER,
     offsetof(reel_executor_config, autoscale_interval_s), REEL_CONFIG_MAX_INTERVAL},
};

#define WHY_CAP  256
#define SHOW_CAP 100 /* user's text echoed in a sentence, escaped, with its NUL */

static double *num_field(reel_executor_config *cfg, const key_def *k) {
    return (double *)(void *)((char *)cfg + k->off);
}

static double num_get(const reel_executor_config *cfg, const key_def *k) {
    return *(const double *)(const void *)((const char *)cfg + k->off);
}

static const char *expected(const key_def *k) {
    switch (k->type) {
    case T_NUMBER:
        return "a number";
    case T_BOOL:
        return "true or false";
    default:
        return "\"streaming\" or \"batch\"";
    }
}

/* Copies len bytes of user text into out for a sentence: control bytes,
 * quotes and backslashes escaped, cut with "..." where it does not fit. */
static const char *show(const char *s, size_t len, char *out, size_t cap) {
    size_t o = 0;
    for (size_t j = 0; j < len; j++) {
        unsigned char c = (unsigned char)s[j];
        if (o + 11 > cap) { /* room for one escape, "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        else if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* ---- keys ----------------------------------------------------------------------------------- */

static const key_def *find_key(const char *name, size_t len, bool flag) {
    for (size_t j = 0; j < NKEYS; j++) {
        const char *kn = flag ? keys[j].flag : keys[j].name;
        if (strlen(kn) == len && memcmp(kn, name, len) == 0)
            return &keys[j];
    }
    return NULL;
}

/* Edit distance, '-' counting as '_'; strings longer than 64 bytes get
 * UINT32_MAX (no suggestion for them). */
static unsigned distance(const char *a, size_t la, const char *b) {
    size_t lb = strlen(b);
    unsigned row[66];
    if (la > 64 || lb > 64)
        return UINT32_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t x = 1; x <= la; x++) {
        unsigned diag = row[0];
        row[0] = (unsigned)x;
        char ca = a[x - 1] == '-' ? '_' : a[x - 1];
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (ca == b[j - 1] ? 0u : 1u);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The sentence for an unknown key, with the nearest key when it is close. */
static void unknown_key(const char *name, size_t len, char *out, size_t cap) {
    char shown[SHOW_CAP];
    const char *best = NULL;
    unsigned bestd = UINT32_MAX;
    for (size_t j = 0; j < NKEYS; j++) {
        unsigned d = distance(name, len, keys[j].name);
        unsigned limit = (unsigned)strlen(keys[j].name) / 4;
        if (d <= (limit > 2 ? limit : 2) && d < bestd) {
            bestd = d;
            best = keys[j].name;
        }
    }
    show(name, len, shown, sizeof shown);
    if (best)
        snprintf(out, cap, "unknown key \"%s\" (did you mean %s?)", shown, best);
    else
        snprintf(out, cap,
                 "unknown key \"%s\" (the keys are logging_interval, ignore_failures, "
                 "execution_mode, cpu_allocation_percentage, autoscale_interval_s)",
                 shown);
}

/* ---- values --------------------------------------------------------------------------------- */

/* Range check of a number; shown is the value as the user wrote it. */
static int check_number(const key_def *k, double v, const char *shown, char *why) {
    if (isnan(v)) {
        snprintf(why, WHY_CAP, "%s is not a finite number", shown);
        return -EINVAL;
    }
    if (!(v > 0 && v <= k->hi)) { /* infinities land here too */
        snprintf(why, WHY_CAP, "%s is out of range (0 < x <= %.17g)", shown, k->hi);
        return -EINVAL;
    }
    return 0;
}

static bool nonfinite_word(const char *s, size_t len) {
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        s++;
        len--;
    }
    return (len == 3 && strncasecmp(s, "nan", 3) == 0) ||
           (len == 3 && strncasecmp(s, "inf", 3) == 0) ||
           (len == 8 && strncasecmp(s, "infinity", 8) == 0);
}

/* strtod in the C locale whatever the program's LC_NUMERIC; s is
 * NUL-terminated. Returns 0 if all of s was one number. */
static int c_strtod(const char *s, double *out) {
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    char *end = NULL;
    if (c == (locale_t)0)
        return -ENOMEM;
    *out = strtod_l(s, &end, c);
    freelocale(c);
    return end && end != s && *end == '\0' ? 0 : -EINVAL;
}

/* A number from a flag or reel__config_set(): decimal only. */
static int parse_number_text(const key_def *k, const char *s, double *out, char *why) {
    char shown[SHOW_CAP];
    size_t len = strlen(s);
    show(s, len, shown, sizeof shown);
    if (nonfinite_word(s, len)) {
        snprintf(why, WHY_CAP, "\"%s\" is not a finite number", shown);
        return -EINVAL;
    }
    if (len == 0 || len > 128 || strspn(s, "0123456789+-.eE") != len || c_strtod(s, out) != 0) {
        snprintf(why, WHY_CAP, "\"%s\" is not a number", shown);
        return -EINVAL;
    }
    return check_number(k, *out, shown, why);
}

static int parse_bool_text(const char *s, bool *out, char *why) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char shown[SHOW_CAP];
    for (size_t j = 0; j < 4; j++) {
        if (strcmp(s, yes[j]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[j]) == 0) {
            *out = false;
            return 0;
        }
    }
    snprintf(why, WHY_CAP, "\"%s\" is not a boolean (true or false)",
             show(s, strlen(s), shown, sizeof shown));
    return -EINVAL;
}

static int parse_mode(const char *s, size_t len, reel_execution_mode *out, char *why) {
    char shown[SHOW_CAP];
    if (len == 9 && memcmp(s, "streaming", 9) == 0) {
        *out = REEL_EXEC_STREAMING;
        return 0;
    }
    if (len == 5 && memcmp(s, "batch", 5) == 0) {
        *out = REEL_EXEC_BATCH;
        return 0;
    }
    snprintf(why, WHY_CAP, "\"%s\" is not streaming or batch", show(s, len, shown, sizeof shown));
    return -EINVAL;
}

/* Sets k in cfg from text; cfg is the caller's scratch copy. */
static int set_from_text(reel_executor_config *cfg, const key_def *k, const char *value,
                         char *why) {
    switch (k->type) {
    case T_NUMBER:
        return parse_number_text(k, value, num_field(cfg, k), why);
    case T_BOOL:
        return parse_bool_text(value, &cfg->ignore_failures, why);
    default:
        return parse_mode(value, strlen(value), &cfg->execution_mode, why);
    }
}

/* ---- code ----------------------------------------------------------------------------------- */

void reel__config_defaults(reel_executor_config *cfg) {
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->logging_interval = 60.0;
    cfg->ignore_failures = false;
    cfg->execution_mode = REEL_EXEC_STREAMING;
    cfg->cpu_allocation_percentage = 0.95;
    cfg->autoscale_interval_s = 180.0;
}

int reel__config_validate(const reel_executor_config *cfg) {
    char why[WHY_CAP];
    if (!cfg)
        return reel__fail(-EINVAL, "executor configuration: NULL");
    for (size_t j = 0; j < NKEYS; j++) {
        const key_def *k = &keys[j];
        if (k->type == T_NUMBER) {
            char shown[40];
            double v = num_get(cfg, k);
            snprintf(shown, sizeof shown, "%.17g", v);
            if (check_number(k, v, shown, why) != 0)
                return reel__fail(-EINVAL, "%s: %s", k->name, why);
        }
    }
    if (cfg->execution_mode != REEL_EXEC_STREAMING && cfg->execution_mode != REEL_EXEC_BATCH)
        return reel__fail(-EINVAL, "execution_mode: %d is not streaming or batch",
                          (int)cfg->execution_mode);
    return 0;
}

int reel__config_set(reel_executor_config *cfg, const char *key, const char *value) {
    char why[WHY_CAP];
    if (!cfg || !key)
        return reel__fail(-EINVAL, "reel__config_set: NULL configuration or key");
    const key_def *k = find_key(key, strlen(key), false);
    if (!k) {
        unknown_key(key, strlen(key), why, sizeof why);
        return reel__fail(-EINVAL, "%s", why);
    }
    if (!value)
        return reel__fail(-EINVAL, "%s: no value (expected %s)", k->name, expected(k));
    reel_executor_config tmp = *cfg;
    if (set_from_text(&tmp, k, value, why) != 0)
        return reel__fail(-EINVAL, "%s: %s", k->name, why);
    *cfg = tmp;
    return 0;
}

const char *reel__execution_mode_name(reel_execution_mode mode) {
    switch (mode) {
    case REEL_EXEC_STREAMING:
        return "streaming";
    case REEL_EXEC_BATCH:
        return "batch";
    default:
        return "unknown";
    }
}

/* ---- JSON ----------------------------------------------------------------------------------- */

typedef struct jp {
    const unsigned char *s;
    size_t n, pos;
    unsigned line, col;
    const char *name;
} jp;

#define JSTR_MAX 255 /* longest key or string value kept */

typedef struct jstr {
    char b[JSTR_MAX + 1];
    size_t len;
} jstr;

static int peek(const jp *p) {
    return p->pos < p->n ? p->s[p->pos] : -1;
}

static void adv(jp *p) {
    if (p->s[p->pos] == '\n') {
        p->line++;
        p->col = 1;
    } else {
        p->col++;
    }
    p->pos++;
}

static void skip_ws(jp *p) {
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p))
        adv(p);
}

/* What sits at the cursor, for "found ..." */
static const char *found(const jp *p, char *out, size_t cap) {
    int c = peek(p);
    if (c < 0)
        snprintf(out, cap, "end of file");
    else if (c > 0x20 && c < 0x7f)
        snprintf(out, cap, "'%c'", c);
    else
        snprintf(out, cap, "byte 0x%02x", (unsigned)c);
    return out;
}

__attribute__((format(printf, 4, 5))) static int jfail(const jp *p, unsigned line, unsigned col,
                                                       const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reel__fail(-EINVAL, "%s:%u:%u: %s", p->name, line, col, msg);
}

static int hex4(jp *p, unsigned *out) {
    unsigned v = 0;
    for (int j = 0; j < 4; j++) {
        int c = peek(p);
        char f[24];
        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (unsigned)(c - 'A' + 10);
        else
            return jfail(p, p->line, p->col, "expected a hex digit in \\u escape, found %s",
                         found(p, f, sizeof f));
        adv(p);
    }
    *out = v;
    return 0;
}

static int put(jp *p, jstr *out, unsigned line, unsigned col, const char *bytes, size_t n) {
    if (out->len + n > JSTR_MAX)
        return jfail(p, line, col, "string longer than %d bytes", JSTR_MAX);
    memcpy(out->b + out->len, bytes, n);
    out->len += n;
    out->b[out->len] = '\0';
    return 0;
}

/* Length of the valid UTF-8 sequence at the cursor, or 0. */
static size_t utf8_len(const jp *p) {
    const unsigned char *s = p->s + p->pos;
    size_t left = p->n - p->pos;
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t j = 2; j < n; j++)
        if (s[j] < 0x80 || s[j] > 0xbf)
            return 0;
    return n;
}

static int parse_string(jp *p, jstr *out) {
    unsigned line = p->line, col = p->col;
    out->len = 0;
    out->b[0] = '\0';
    adv(p); /* the opening quote */
    for (;;) {
        int c = peek(p);
        unsigned cl = p->line, cc = p->col;
        if (c < 0)
            return jfail(p, line, col, "unterminated string");
        if (c == '"') {
            adv(p);
            return 0;
        }
        if (c < 0x20)
            return jfail(p, cl, cc, "control character 0x%02x in a string (write it as \\u%04x)",
                         (unsigned)c, (unsigned)c);
        if (c >= 0x80) {
            size_t n = utf8_len(p);
            if (n == 0)
                return jfail(p, cl, cc, "invalid UTF-8 in a string");
            int rc = put(p, out, line, col, (const char *)p->s + p->pos, n);
            if (rc)
                return rc;
            for (size_t j = 0; j < n; j++)
                adv(p);
            continue;
        }
        if (c != '\\') {
            char ch = (char)c;
            int rc = put(p, out, line, col, &ch, 1);
            if (rc)
                return rc;
            adv(p);
            continue;
        }
        adv(p);
        c = peek(p);
        char e;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            e = (char)c;
            break;
        case 'b':
            e = '\b';
            break;
        case 'f':
            e = '\f';
            break;
        case 'n':
            e = '\n';
            break;
        case 'r':
            e = '\r';
            break;
        case 't':
            e = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            char u8[4];
            size_t n;
            adv(p);
            int rc = hex4(p, &cp);
            if (rc)
                return rc;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return jfail(p, cl, cc, "\\u%04x is a lone low surrogate", cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (peek(p) != '\\' || p->pos + 1 >= p->n || p->s[p->pos + 1] != 'u')
                    return jfail(p, cl, cc, "\\u%04x is a high surrogate without its low half", cp);
                adv(p);
                adv(p);
                rc = hex4(p, &lo);
                if (rc)
                    return rc;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return jfail(p, cl, cc, "\\u%04x is a high surrogate without its low half", cp);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp < 0x80) {
                u8[0] = (char)cp;
                n = 1;
            } else if (cp < 0x800) {
                u8[0] = (char)(0xc0 | (cp >> 6));
                u8[1] = (char)(0x80 | (cp & 0x3f));
                n = 2;
            } else if (cp < 0x10000) {
                u8[0] = (char)(0xe0 | (cp >> 12));
                u8[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u8[2] = (char)(0x80 | (cp & 0x3f));
                n = 3;
            } else {
                u8[0] = (char)(0xf0 | (cp >> 18));
                u8[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                u8[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u8[3] = (char)(0x80 | (cp & 0x3f));
                n = 4;
            }
            rc = put(p, out, line, col, u8, n);
            if (rc)
                return rc;
            continue;
        }
        default: {
            char f[24];
            return jfail(p, cl, cc, "invalid escape: '\\' followed by %s", found(p, f, sizeof f));
        }
        }
        adv(p);
        int rc = put(p, out, line, col, &e, 1);
        if (rc)
            return rc;
    }
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number(const char *s) {
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

#define WORD_MAX 128

/* One value for key k, applied to cfg (the caller's scratch copy). */
static int parse_value(jp *p, const key_def *k, reel_executor_config *cfg) {
    unsigned line = p->line, col = p->col;
    char why[WHY_CAP], f[24];
    int c = peek(p);
    if (c == '"') {
        jstr v;
        char shown[SHOW_CAP];
        int rc = parse_string(p, &v);
        if (rc)
            return rc;
        if (k->type != T_MODE)
            return jfail(p, line, col, "%s: expected %s, found the string \"%s\"", k->name,
                         expected(k), show(v.b, v.len, shown, sizeof shown));
        if (parse_mode(v.b, v.len, &cfg->execution_mode, why) != 0)
            return jfail(p, line, col, "%s: %s", k->name, why);
        return 0;
    }
    if (c == '{' || c == '[')
        return jfail(p, line, col, "%s: expected %s, found %s (nested values are not allowed)",
                     k->name, expected(k), c == '{' ? "an object" : "an array");
    char w[WORD_MAX + 1];
    size_t n = 0;
    for (c = peek(p); c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9') ||
                      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
         c = peek(p)) {
        if (n == WORD_MAX)
            return jfail(p, line, col, "%s: value longer than %d characters", k->name, WORD_MAX);
        w[n++] = (char)c;
        adv(p);
    }
    w[n] = '\0';
    if (n == 0)
        return jfail(p, line, col, "%s: expected a value, found %s", k->name,
                     found(p, f, sizeof f));
    if (strcmp(w, "true") == 0 || strcmp(w, "false") == 0) {
        if (k->type != T_BOOL)
            return jfail(p, line, col, "%s: expected %s, found %s", k->name, expected(k), w);
        cfg->ignore_failures = w[0] == 't';
        return 0;
    }
    if (strcmp(w, "null") == 0)
        return jfail(p, line, col, "%s: expected %s, found null", k->name, expected(k));
    if (nonfinite_word(w, n))
        return jfail(p, line, col, "%s: %s is not a finite number (JSON has no NaN or Infinity)",
                     k->name, w);
    if (!json_number(w)) {
        if (strchr("+-.0123456789", w[0]))
            return jfail(p, line, col, "%s: %s is not a valid JSON number", k->name, w);
        return jfail(p, line, col, "%s: expected %s, found %s", k->name, expected(k), w);
    }
    if (k->type != T_NUMBER)
        return jfail(p, line, col, "%s: expected %s, found the number %s", k->name, expected(k), w);
    double v;
    int rc = c_strtod(w, &v);
    if (rc == -ENOMEM)
        return reel__fail(rc, "%s: no memory for the C locale", p->name);
    if (rc)
        return jfail(p, line, col, "%s: %s is not a number", k->name, w);
    if (check_number(k, v, w, why) != 0)
        return jfail(p, line, col, "%s: %s", k->name, why);
    *num_field(cfg, k) = v;
    return 0;
}

int reel__config_parse_json(reel_executor_config *cfg, const char *text, size_t len,
                            const char *name) {
    jp p = {(const unsigned char *)text, len, 0, 1, 1, name ? name : "<config>"};
    struct {
        unsigned line, col;
    } seen[NKEYS] = {{0, 0}};
    char f[24], why[WHY_CAP];
    int rc;
    if (!cfg || (!text && len))
        return reel__fail(-EINVAL, "%s: NULL configuration or text", p.name);
    if (len > REEL_CONFIG_MAX_BYTES)
        return reel__fail(-EFBIG, "%s: %zu bytes, more than the %u a configuration may have",
                          p.name, len, REEL_CONFIG_MAX_BYTES);
    reel_executor_config tmp = *cfg;
    bool seen_any = false;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        p.pos = 3; /* a byte order mark: not a column */
    skip_ws(&p);
    if (peek(&p) != '{')
        return jfail(&p, p.line, p.col, "expected '{' (a JSON object), found %s",
                     found(&p, f, sizeof f));
    adv(&p);
    skip_ws(&p);
    if (peek(&p) == '}') {
        adv(&p);
        goto end;
    }
    for (;;) {
        jstr key;
        unsigned kl = p.line, kc = p.col;
        if (peek(&p) != '"')
            return jfail(&p, kl, kc, "expected a key (a string)%s, found %s",
                         seen_any ? " after ',' (no trailing comma)" : "", found(&p, f, sizeof f));
        if ((rc = parse_string(&p, &key)) != 0)
            return rc;
        const key_def *k = find_key(key.b, key.len, false);
        if (!k) {
            unknown_key(key.b, key.len, why, sizeof why);
            return jfail(&p, kl, kc, "%s", why);
        }
        size_t idx = (size_t)(k - keys);
        if (seen[idx].line)
            return jfail(&p, kl, kc, "duplicate key \"%s\" (first at %u:%u)", k->name,
                         seen[idx].line, seen[idx].col);
        seen[idx].line = kl;
        seen[idx].col = kc;
        seen_any = true;
        skip_ws(&p);
        if (peek(&p) != ':')
            return jfail(&p, p.line, p.col, "expected ':' after \"%s\", found %s", k->name,
                         found(&p, f, sizeof f));
        adv(&p);
        skip_ws(&p);
        if ((rc = parse_value(&p, k, &tmp)) != 0)
            return rc;
        skip_ws(&p);
        if (peek(&p) == '}') {
            adv(&p);
            break;
        }
        if (peek(&p) != ',')
            return jfail(&p, p.line, p.col, "expected ',' or '}' after the value of %s, found %s",
                         k->name, found(&p, f, sizeof f));
        adv(&p);
        skip_ws(&p);
    }
end:
    skip_ws(&p);
    if (peek(&p) >= 0)
        return jfail(&p, p.line, p.col, "unexpected %s after the object", found(&p, f, sizeof f));
    *cfg = tmp;
    return 0;
}

int reel__config_load_json(reel_executor_config *cfg, const char *path) {
    struct stat st;
    if (!cfg || !path)
        return reel__fail(-EINVAL, "reel__config_load_json: NULL configuration or path");
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below
     * refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int err = -errno;
        return reel__fail(err, "%s: cannot open: %s", path, reel_strerror(err));
    }
    if (fstat(fd, &st) != 0) {
        int err = -errno;
        close(fd);
        return reel__fail(err, "%s: cannot stat: %s", path, reel_strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return reel__fail(-EINVAL, "%s: not a regular file", path);
    }
    if (st.st_size > (off_t)REEL_CONFIG_MAX_BYTES) {
        close(fd);
        return reel__fail(-EFBIG, "%s: %lld bytes, more than the %u a configuration may have", path,
                          (long long)st.st_size, REEL_CONFIG_MAX_BYTES);
    }
    /* Read up to one byte past the limit: the file may have grown since fstat. */
    char *buf = malloc(REEL_CONFIG_MAX_BYTES + 1);
    size_t len = 0;
    if (!buf) {
        close(fd);
        return reel__fail(-ENOMEM, "%s: no memory for the read buffer", path);
    }
    while (len <= REEL_CONFIG_MAX_BYTES) {
        ssize_t r = read(fd, buf + len, REEL_CONFIG_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = -errno;
            free(buf);
            close(fd);
            return reel__fail(err, "%s: cannot read: %s", path, reel_strerror(err));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    int rc = len > REEL_CONFIG_MAX_BYTES
                 ? reel__fail(-EFBIG, "%s: more than the %u bytes a configuration may have", path,
                              REEL_CONFIG_MAX_BYTES)
                 : reel__config_parse_json(cfg, buf, len, path);
    free(buf);
    return rc;
}

/* Shortest "%.*g" that reads back to v, in the C locale. */
static int format_number(double v, char *out, size_t cap) {
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c == (locale_t)0)
        return -ENOMEM;
    locale_t old = uselocale(c);
    if (v == floor(v) && fabs(v) < 1e15) { /* whole seconds read better as 180 than 1.8e+02 */
        snprintf(out, cap, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
    uselocale(old);
    freelocale(c);
    return 0;
}

int reel__config_to_json(const reel_executor_config *cfg, char *buf, size_t cap) {
    char nums[NKEYS][32];
    int rc;
    if (!buf)
        return reel__fail(-EINVAL, "reel__config_to_json: NULL buffer");
    if (cap)
        buf[0] = '\0';
    if ((rc = reel__config_validate(cfg)) != 0)
        return rc;
    for (size_t j = 0; j < NKEYS; j++)
        if (keys[j].type == T_NUMBER &&
            (rc = format_number(num_get(cfg, &keys[j]), nums[j], sizeof nums[j])) != 0)
            return reel__fail(rc, "reel__config_to_json: no memory for the C locale");
    int n = snprintf(buf, cap,
                     "{\"logging_interval\": %s, \"ignore_failures\": %s, \"execution_mode\": "
                     "\"%s\", \"cpu_allocation_percentage\": %s, \"autoscale_interval_s\": %s}",
                     nums[0], cfg->ignore_failures ? "true" : "false",
                     reel__execution_mode_name(cfg->execution_mode), nums[3], nums[4]);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return reel__fail(-ENOSPC, "reel__config_to_json: %d bytes do not fit in %zu", n + 1, cap);
    }
    return 0;
}

/* ---- flags ---------------------------------------------------------------------------------- */

int reel__config_parse_flag(reel_executor_config *cfg, int argc, char **argv, int *i) {
    char why[WHY_CAP], norm[64];
    if (!cfg || !argv || !i)
        return reel__fail(-EINVAL, "reel__config_parse_flag: NULL argument");
    if (*i < 0 || *i >= argc)
        return reel__fail(-EINVAL, "reel__config_parse_flag: index %d outside [0, %d)", *i, argc);
    const char *arg = argv[*i];
    if (!arg || strncmp(arg, "--", 2) != 0)
        return 0;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    if (nlen == 0 || nlen >= sizeof norm)
        return 0;
    for (size_t j = 0; j < nlen; j++)
        norm[j] = name[j] == '_' ? '-' : name[j];
    norm[nlen] = '\0';
    bool negated = false;
    const key_def *k = find_key(norm, nlen, true);
    if (!k && nlen > 3 && memcmp(norm, "no-", 3) == 0) {
        k = find_key(norm + 3, nlen - 3, true);
        if (k && k->type != T_BOOL)
            k = NULL;
        negated = k != NULL;
    }
    if (!k)
        return 0;
    reel_executor_config tmp = *cfg;
    int used = *i;
    int flen = (int)nlen + 2;
    if (k->type == T_BOOL && negated) {
        if (eq)
            return reel__fail(-EINVAL, "%.*s (%s) takes no value", flen, arg, k->name);
        tmp.ignore_failures = false;
    } else if (k->type == T_BOOL && !eq) {
        tmp.ignore_failures = true;
    } else {
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (*i + 1 >= argc || !argv[*i + 1] || strncmp(argv[*i + 1], "--", 2) == 0)
                return reel__fail(-EINVAL, "%.*s (%s) needs a value (%s)", flen, arg, k->name,
                                  expected(k));
            value = argv[*i + 1];
            used = *i + 1;
        }
        if (set_from_text(&tmp, k, value, why) != 0)
            return reel__fail(-EINVAL, "%.*s (%s): %s", flen, arg, k->name, why);
    }
    *cfg = tmp;
    *i = used;
    return 1;
}

const char *reel__config_flags_help(void) {
    return "  --logging-interval S              seconds between status lines (default 60)\n"
           "  --ignore-failures                 record a task that fails for good and go on\n"
           "  --no-ignore-failures              stop at the first failure (the default)\n"
           "  --execution-mode streaming|batch  all stages at once, or one after another\n"
           "                                    (default streaming)\n"
           "  --cpu-allocation-percentage X     share of the node's CPUs to use, 0 < X <= 1\n"
           "                                    (default 0.95)\n"
           "  --autoscale-interval-s S          seconds between autoscaler decisions\n"
           "                                    (default 180)\n"
           "  (underscores may stand for hyphens; a value may follow '=')\n";
}
