/* The executor configuration (scheduler/config.h): NeMo Curator's defaults;
 * every key set from code, from JSON and from flags; the round trip through
 * reel__config_to_json(); every error path, each naming the key (and the
 * line:column of a JSON error); a fuzz loop over mutated files. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config.h"
#include "helpers.h"
#include "reel/store.h"

static char tmpdir[64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/reel-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 60);

/* A file in the test's directory holding len bytes; the path is valid until
 * the next call. */
static const char *write_bytes(const char *name, const char *text, size_t len) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const char *write_file(const char *name, const char *text) {
    return write_bytes(name, text, strlen(text));
}

#define ERR(expr, want, needle)                                                                    \
    do {                                                                                           \
        TH_RC((expr), (want));                                                                     \
        cr_assert_not_null(strstr(reel_last_error(), (needle)),                                    \
                           "%s: the error \"%s\" does not contain \"%s\"", #expr,                  \
                           reel_last_error(), (needle));                                           \
    } while (0)

static void expect_same(const reel_executor_config *a, const reel_executor_config *b) {
    cr_assert_eq(a->logging_interval, b->logging_interval, "logging_interval %.17g vs %.17g",
                 a->logging_interval, b->logging_interval);
    cr_assert_eq(a->ignore_failures, b->ignore_failures, "ignore_failures");
    cr_assert_eq(a->execution_mode, b->execution_mode, "execution_mode");
    cr_assert_eq(a->cpu_allocation_percentage, b->cpu_allocation_percentage,
                 "cpu_allocation_percentage %.17g vs %.17g", a->cpu_allocation_percentage,
                 b->cpu_allocation_percentage);
    cr_assert_eq(a->autoscale_interval_s, b->autoscale_interval_s,
                 "autoscale_interval_s %.17g vs %.17g", a->autoscale_interval_s,
                 b->autoscale_interval_s);
}

static reel_executor_config defaults(void) {
    reel_executor_config c;
    reel__config_defaults(&c);
    return c;
}

static int parse(reel_executor_config *cfg, const char *text) {
    return reel__config_parse_json(cfg, text, strlen(text), "cfg.json");
}

/* A JSON text must fail with -EINVAL, the sentence starting with
 * "cfg.json:<where>: " and containing needle, and the configuration must not
 * change. */
static void json_err(const char *text, const char *where, const char *needle) {
    reel_executor_config c = defaults(), d = defaults();
    char prefix[64];
    snprintf(prefix, sizeof prefix, "cfg.json:%s: ", where);
    TH_RC(parse(&c, text), -EINVAL);
    cr_assert_eq(strncmp(reel_last_error(), prefix, strlen(prefix)), 0,
                 "for %s: the error \"%s\" does not start with \"%s\"", text, reel_last_error(),
                 prefix);
    cr_assert_not_null(strstr(reel_last_error(), needle),
                       "for %s: the error \"%s\" does not contain \"%s\"", text, reel_last_error(),
                       needle);
    expect_same(&c, &d);
}

typedef struct json_case {
    const char *text, *where, *needle;
} json_case;

static void run_json_cases(const json_case *cases, size_t n) {
    for (size_t j = 0; j < n; j++)
        json_err(cases[j].text, cases[j].where, cases[j].needle);
}

/* ---- defaults and code ---------------------------------------------------------------------- */

Test(config, defaults_are_nemo_curators) {
    reel_executor_config c = defaults();
    cr_assert_eq(c.logging_interval, 60.0);
    cr_assert_eq(c.ignore_failures, false);
    cr_assert_eq(c.execution_mode, REEL_EXEC_STREAMING);
    cr_assert_eq(c.cpu_allocation_percentage, 0.95);
    cr_assert_eq(c.autoscale_interval_s, 180.0);
    TH_OK(reel__config_validate(&c));
    char buf[REEL_CONFIG_JSON_MAX];
    TH_OK(reel__config_to_json(&c, buf, sizeof buf));
    cr_assert_str_eq(buf, "{\"logging_interval\": 60, \"ignore_failures\": false, "
                          "\"execution_mode\": \"streaming\", \"cpu_allocation_percentage\": "
                          "0.95, \"autoscale_interval_s\": 180}");
    cr_assert_str_eq(reel__execution_mode_name(REEL_EXEC_STREAMING), "streaming");
    cr_assert_str_eq(reel__execution_mode_name(REEL_EXEC_BATCH), "batch");
    cr_assert_str_eq(reel__execution_mode_name((reel_execution_mode)7), "unknown");
    cr_assert_not_null(strstr(reel__config_flags_help(), "--autoscale-interval-s"));
}

Test(config, fields_set_from_code_validate) {
    reel_executor_config c = defaults();
    c.logging_interval = 0.5;
    c.ignore_failures = true;
    c.execution_mode = REEL_EXEC_BATCH;
    c.cpu_allocation_percentage = 1.0;
    c.autoscale_interval_s = 1.0;
    TH_OK(reel__config_validate(&c));
}

Test(config, set_each_key) {
    reel_executor_config c = defaults();
    TH_OK(reel__config_set(&c, "logging_interval", "30"));
    cr_assert_eq(c.logging_interval, 30.0);
    TH_OK(reel__config_set(&c, "ignore_failures", "true"));
    cr_assert(c.ignore_failures);
    TH_OK(reel__config_set(&c, "ignore_failures", "off"));
    cr_assert(!c.ignore_failures);
    TH_OK(reel__config_set(&c, "ignore_failures", "1"));
    cr_assert(c.ignore_failures);
    TH_OK(reel__config_set(&c, "execution_mode", "batch"));
    cr_assert_eq(c.execution_mode, REEL_EXEC_BATCH);
    TH_OK(reel__config_set(&c, "execution_mode", "streaming"));
    cr_assert_eq(c.execution_mode, REEL_EXEC_STREAMING);
    TH_OK(reel__config_set(&c, "cpu_allocation_percentage", "0.5"));
    cr_assert_eq(c.cpu_allocation_percentage, 0.5);
    TH_OK(reel__config_set(&c, "cpu_allocation_percentage", "1"));
    cr_assert_eq(c.cpu_allocation_percentage, 1.0);
    TH_OK(reel__config_set(&c, "autoscale_interval_s", "2.5e0"));
    cr_assert_eq(c.autoscale_interval_s, 2.5);
    TH_OK(reel__config_set(&c, "autoscale_interval_s", "31536000"));
    cr_assert_eq(c.autoscale_interval_s, REEL_CONFIG_MAX_INTERVAL);
    TH_OK(reel__config_validate(&c));
}

/* ---- JSON ----------------------------------------------------------------------------------- */

Test(config, json_each_key_from_a_file) {
    static const struct {
        const char *text;
        double li, cpu, as;
        bool ign;
        reel_execution_mode mode;
    } cases[] = {
        {"{\"logging_interval\": 30}", 30, 0.95, 180, false, REEL_EXEC_STREAMING},
        {"{\"ignore_failures\": true}", 60, 0.95, 180, true, REEL_EXEC_STREAMING},
        {"{\"execution_mode\": \"batch\"}", 60, 0.95, 180, false, REEL_EXEC_BATCH},
        {"{\"cpu_allocation_percentage\": 0.5}", 60, 0.5, 180, false, REEL_EXEC_STREAMING},
        {"{\"autoscale_interval_s\": 5}", 60, 0.95, 5, false, REEL_EXEC_STREAMING},
        {"{}", 60, 0.95, 180, false, REEL_EXEC_STREAMING},
        {" \n{ \t}\r\n", 60, 0.95, 180, false, REEL_EXEC_STREAMING},
        {"\xef\xbb\xbf{\"execution_mode\": \"\\u0062atch\"}", 60, 0.95, 180, false,
         REEL_EXEC_BATCH},
        {"{\n  \"logging_interval\": 1.5e1,\n  \"ignore_failures\": false,\n"
         "  \"execution_mode\": \"streaming\",\n  \"cpu_allocation_percentage\": 1,\n"
         "  \"autoscale_interval_s\": 0.25\n}\n",
         15, 1, 0.25, false, REEL_EXEC_STREAMING},
    };
    for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
        reel_executor_config c = defaults();
        const char *path = write_file("c.json", cases[j].text);
        TH_OK(reel__config_load_json(&c, path));
        cr_assert_eq(c.logging_interval, cases[j].li, "case %zu", j);
        cr_assert_eq(c.ignore_failures, cases[j].ign, "case %zu", j);
        cr_assert_eq(c.execution_mode, cases[j].mode, "case %zu", j);
        cr_assert_eq(c.cpu_allocation_percentage, cases[j].cpu, "case %zu", j);
        cr_assert_eq(c.autoscale_interval_s, cases[j].as, "case %zu", j);
    }
}

Test(config, json_changes_only_the_keys_it_names) {
    reel_executor_config c = defaults();
    c.autoscale_interval_s = 3;
    c.ignore_failures = true;
    TH_OK(parse(&c, "{\"logging_interval\": 10}"));
    cr_assert_eq(c.logging_interval, 10);
    cr_assert_eq(c.autoscale_interval_s, 3);
    cr_assert(c.ignore_failures);
}

Test(config, round_trip_through_to_json) {
    const double vals[] = {0.1 + 0.2, 1.0 / 3, 5e-324, 1e-300, 0.95, 31536000, 123456.789012345};
    for (size_t j = 0; j < sizeof vals / sizeof vals[0]; j++) {
        reel_executor_config c = defaults(), back = defaults(), file = defaults();
        char buf[REEL_CONFIG_JSON_MAX];
        c.logging_interval = vals[j];
        c.autoscale_interval_s = vals[(j + 1) % 7];
        c.cpu_allocation_percentage = vals[j] <= 1 ? vals[j] : 1.0 / vals[j];
        c.ignore_failures = j % 2;
        c.execution_mode = j % 3 ? REEL_EXEC_BATCH : REEL_EXEC_STREAMING;
        TH_OK(reel__config_to_json(&c, buf, sizeof buf));
        TH_OK(parse(&back, buf));
        expect_same(&c, &back);
        TH_OK(reel__config_load_json(&file, write_file("rt.json", buf)));
        expect_same(&c, &file);
    }
}

Test(config, to_json_errors) {
    reel_executor_config c = defaults();
    char buf[REEL_CONFIG_JSON_MAX];
    buf[0] = 'x';
    ERR(reel__config_to_json(&c, buf, 20), -ENOSPC, "do not fit");
    cr_assert_eq(buf[0], '\0');
    c.cpu_allocation_percentage = NAN;
    ERR(reel__config_to_json(&c, buf, sizeof buf), -EINVAL, "cpu_allocation_percentage");
    TH_RC(reel__config_to_json(NULL, buf, sizeof buf), -EINVAL);
    TH_RC(reel__config_to_json(&c, NULL, 0), -EINVAL);
}

/* A program may set a locale whose decimal separator is a comma; the file
 * format and flags do not change with it. */
Test(config, numbers_ignore_the_locale) {
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t j = 0; j < 4 && !got; j++)
        got = setlocale(LC_NUMERIC, names[j]);
    cr_assert_not_null(got, "no locale with a decimal comma (de_DE.UTF-8, fr_FR.UTF-8) is "
                            "installed: scripts/deps.sh generates de_DE.UTF-8");
    cr_assert_str_eq(localeconv()->decimal_point, ",", "%s", got);
    reel_executor_config c = defaults(), back = defaults();
    char buf[REEL_CONFIG_JSON_MAX];
    TH_OK(reel__config_set(&c, "cpu_allocation_percentage", "0.5"));
    TH_OK(reel__config_to_json(&c, buf, sizeof buf));
    setlocale(LC_NUMERIC, "C");
    cr_assert_not_null(strstr(buf, "\"cpu_allocation_percentage\": 0.5,"), "%s", buf);
    TH_OK(parse(&back, buf));
    expect_same(&c, &back);
}

/* ---- flags ---------------------------------------------------------------------------------- */

static int flag(reel_executor_config *c, int *i, int argc, char **argv) {
    return reel__config_parse_flag(c, argc, argv, i);
}

Test(config, flags_each_key_both_forms) {
    reel_executor_config c = defaults();
    char *a1[] = {"prog", "--logging-interval", "30"};
    int i = 1;
    cr_assert_eq(flag(&c, &i, 3, a1), 1);
    cr_assert_eq(i, 2, "i points at the value it used");
    cr_assert_eq(c.logging_interval, 30);

    char *a2[] = {"prog",
                  "--logging-interval=45",
                  "--ignore-failures",
                  "--execution-mode",
                  "batch",
                  "--cpu-allocation-percentage",
                  "0.5",
                  "--autoscale-interval-s",
                  "5"};
    int n = 0;
    for (i = 1; i < 9; i++) {
        cr_assert_eq(flag(&c, &i, 9, a2), 1, "at %d: %s", i, reel_last_error());
        n++;
    }
    cr_assert_eq(n, 5);
    cr_assert_eq(c.logging_interval, 45);
    cr_assert(c.ignore_failures);
    cr_assert_eq(c.execution_mode, REEL_EXEC_BATCH);
    cr_assert_eq(c.cpu_allocation_percentage, 0.5);
    cr_assert_eq(c.autoscale_interval_s, 5);

    char *a3[] = {"prog",
                  "--no-ignore-failures",
                  "--execution_mode=streaming",
                  "--cpu_allocation_percentage=0.25",
                  "--autoscale_interval_s",
                  "2",
                  "--logging_interval",
                  "7",
                  "--ignore_failures=yes"};
    for (i = 1; i < 9; i++) {
        int before = i;
        cr_assert_eq(flag(&c, &i, 9, a3), 1, "at %d: %s", i, reel_last_error());
        if (before == 1) {
            cr_assert(!c.ignore_failures);
        }
    }
    cr_assert(c.ignore_failures);
    cr_assert_eq(c.execution_mode, REEL_EXEC_STREAMING);
    cr_assert_eq(c.cpu_allocation_percentage, 0.25);
    cr_assert_eq(c.autoscale_interval_s, 2);
    cr_assert_eq(c.logging_interval, 7);

    i = 1;
    char *a4[] = {"prog", "--no_ignore_failures"};
    cr_assert_eq(flag(&c, &i, 2, a4), 1);
    cr_assert(!c.ignore_failures);
    char *a5[] = {"prog", "--ignore-failures=false"};
    c.ignore_failures = true;
    cr_assert_eq(flag(&c, &i, 2, a5), 1);
    cr_assert(!c.ignore_failures);
    cr_assert_eq(i, 1);
}

Test(config, flags_that_are_not_config_flags) {
    reel_executor_config c = defaults(), d = defaults();
    char *argv[] = {"prog",      "input.mp4",           "-v", "--",  "--json", "--logging", "--no-",
                    "--no-json", "--no-execution-mode", "=5", "--=3"};
    for (int i = 1; i < 11; i++) {
        int at = i;
        cr_assert_eq(flag(&c, &i, 11, argv), 0, "%s", argv[at]);
        cr_assert_eq(i, at);
    }
    expect_same(&c, &d);

    /* A program's loop: its own flags pass through. */
    char *mixed[] = {"prog", "--json", "--logging-interval", "5", "in", "--execution-mode=batch"};
    int own = 0;
    for (int i = 1; i < 6; i++) {
        int rc = flag(&c, &i, 6, mixed);
        cr_assert_geq(rc, 0, "%s", reel_last_error());
        if (rc == 0)
            own++;
    }
    cr_assert_eq(own, 2);
    cr_assert_eq(c.logging_interval, 5);
    cr_assert_eq(c.execution_mode, REEL_EXEC_BATCH);
}

Test(config, flag_errors_name_the_key) {
    reel_executor_config c = defaults(), d = defaults();
    int i;
#define FLAG_ERR(needle1, needle2, ...)                                                            \
    do {                                                                                           \
        char *argv_[] = {"prog", __VA_ARGS__};                                                     \
        int argc_ = (int)(sizeof argv_ / sizeof argv_[0]);                                         \
        i = 1;                                                                                     \
        ERR(flag(&c, &i, argc_, argv_), -EINVAL, needle1);                                         \
        cr_assert_not_null(strstr(reel_last_error(), needle2), "%s", reel_last_error());           \
        cr_assert_eq(i, 1);                                                                        \
        expect_same(&c, &d);                                                                       \
    } while (0)
    FLAG_ERR("logging_interval", "needs a value", "--logging-interval");
    FLAG_ERR("logging_interval", "needs a value", "--logging-interval", "--ignore-failures");
    FLAG_ERR("logging_interval", "\"abc\" is not a number", "--logging-interval", "abc");
    FLAG_ERR("logging_interval", "\"\" is not a number", "--logging-interval=");
    FLAG_ERR("logging_interval", "-5 is out of range", "--logging_interval", "-5");
    FLAG_ERR("logging_interval", "\"nan\" is not a finite number", "--logging-interval=nan");
    FLAG_ERR("autoscale_interval_s", "\"inf\" is not a finite number", "--autoscale-interval-s",
             "inf");
    FLAG_ERR("autoscale_interval_s", "\"0x10\" is not a number", "--autoscale-interval-s", "0x10");
    FLAG_ERR("cpu_allocation_percentage", "1.5 is out of range (0 < x <= 1)",
             "--cpu-allocation-percentage", "1.5");
    FLAG_ERR("cpu_allocation_percentage", "0 is out of range", "--cpu-allocation-percentage=0");
    FLAG_ERR("execution_mode", "\"stream\" is not streaming or batch", "--execution-mode",
             "stream");
    FLAG_ERR("ignore_failures", "\"maybe\" is not a boolean", "--ignore-failures=maybe");
    FLAG_ERR("ignore_failures", "takes no value", "--no-ignore-failures=true");
    FLAG_ERR("--execution_mode", "execution_mode", "--execution_mode", "--");
#undef FLAG_ERR

    char *argv[] = {"prog", "--logging-interval", "5"};
    i = 3;
    TH_RC(flag(&c, &i, 3, argv), -EINVAL);
    i = -1;
    TH_RC(flag(&c, &i, 3, argv), -EINVAL);
    TH_RC(reel__config_parse_flag(NULL, 3, argv, &i), -EINVAL);
    TH_RC(reel__config_parse_flag(&c, 3, argv, NULL), -EINVAL);
}

/* ---- errors --------------------------------------------------------------------------------- */

Test(config, set_errors_name_the_key) {
    reel_executor_config c = defaults(), d = defaults();
    ERR(reel__config_set(&c, "logging_intervall", "5"), -EINVAL,
        "unknown key \"logging_intervall\" (did you mean logging_interval?)");
    ERR(reel__config_set(&c, "autoscale-interval-s", "5"), -EINVAL,
        "did you mean autoscale_interval_s?");
    ERR(reel__config_set(&c, "color", "5"), -EINVAL, "unknown key \"color\" (the keys are");
    ERR(reel__config_set(&c, "execution_mode", "stream"), -EINVAL,
        "execution_mode: \"stream\" is not streaming or batch");
    ERR(reel__config_set(&c, "execution_mode", "Batch"), -EINVAL, "execution_mode: \"Batch\"");
    ERR(reel__config_set(&c, "logging_interval", "abc"), -EINVAL,
        "logging_interval: \"abc\" is not a number");
    ERR(reel__config_set(&c, "logging_interval", " 5"), -EINVAL, "logging_interval: \" 5\"");
    ERR(reel__config_set(&c, "logging_interval", "5s"), -EINVAL, "logging_interval: \"5s\"");
    ERR(reel__config_set(&c, "logging_interval", "NaN"), -EINVAL,
        "logging_interval: \"NaN\" is not a finite number");
    ERR(reel__config_set(&c, "logging_interval", "-infinity"), -EINVAL,
        "logging_interval: \"-infinity\" is not a finite number");
    ERR(reel__config_set(&c, "logging_interval", "1e999"), -EINVAL,
        "logging_interval: 1e999 is out of range (0 < x <= 31536000)");
    ERR(reel__config_set(&c, "logging_interval", "31536000.5"), -EINVAL,
        "logging_interval: 31536000.5 is out of range");
    ERR(reel__config_set(&c, "logging_interval", "0"), -EINVAL, "logging_interval: 0 is out");
    ERR(reel__config_set(&c, "autoscale_interval_s", "-1"), -EINVAL,
        "autoscale_interval_s: -1 is out of range");
    ERR(reel__config_set(&c, "cpu_allocation_percentage", "1.0000001"), -EINVAL,
        "cpu_allocation_percentage: 1.0000001 is out of range (0 < x <= 1)");
    ERR(reel__config_set(&c, "cpu_allocation_percentage", "95"), -EINVAL,
        "cpu_allocation_percentage: 95 is out of range");
    ERR(reel__config_set(&c, "ignore_failures", "TRUE"), -EINVAL,
        "ignore_failures: \"TRUE\" is not a boolean");
    ERR(reel__config_set(&c, "ignore_failures", NULL), -EINVAL, "ignore_failures: no value");
    ERR(reel__config_set(&c, "execution_mode", "stream\n"), -EINVAL, "\"stream\\u000a\"");
    TH_RC(reel__config_set(NULL, "logging_interval", "1"), -EINVAL);
    TH_RC(reel__config_set(&c, NULL, "1"), -EINVAL);
    expect_same(&c, &d);
}

Test(config, validate_errors_name_the_key) {
    reel_executor_config c = defaults();
    c.logging_interval = NAN;
    ERR(reel__config_validate(&c), -EINVAL, "logging_interval: nan is not a finite number");
    c = defaults();
    c.autoscale_interval_s = INFINITY;
    ERR(reel__config_validate(&c), -EINVAL, "autoscale_interval_s: inf is out of range");
    c = defaults();
    c.autoscale_interval_s = 0;
    ERR(reel__config_validate(&c), -EINVAL, "autoscale_interval_s: 0 is out of range");
    c = defaults();
    c.cpu_allocation_percentage = 1.5;
    ERR(reel__config_validate(&c), -EINVAL, "cpu_allocation_percentage: 1.5 is out of range");
    c = defaults();
    c.cpu_allocation_percentage = -0.0;
    ERR(reel__config_validate(&c), -EINVAL, "cpu_allocation_percentage");
    c = defaults();
    c.execution_mode = (reel_execution_mode)2;
    ERR(reel__config_validate(&c), -EINVAL, "execution_mode: 2 is not streaming or batch");
    TH_RC(reel__config_validate(NULL), -EINVAL);
}

static const json_case key_cases[] = {
    {"{\n  \"logging_interval\": 60,\n  \"logging_intervall\": 5\n}", "3:3",
     "unknown key \"logging_intervall\" (did you mean logging_interval?)"},
    {"{\"ignore-failures\": true}", "1:2",
     "unknown key \"ignore-failures\" (did you mean ignore_failures?)"},
    {"{\"zzz\": 1}", "1:2", "unknown key \"zzz\" (the keys are logging_interval"},
    {"{\"a\\u0000b\": 1}", "1:2", "unknown key \"a\\u0000b\""},
    {"{\"logging_interval\": 5,\n \"logging_interval\": 6}", "2:2",
     "duplicate key \"logging_interval\" (first at 1:2)"},
};

Test(config, json_key_errors) {
    run_json_cases(key_cases, sizeof key_cases / sizeof key_cases[0]);
}

static const json_case value_cases[] = {
    {"{\"execution_mode\": \"stream\"}", "1:20",
     "execution_mode: \"stream\" is not streaming or batch"},
    {"{\"logging_interval\": NaN}", "1:22", "logging_interval: NaN is not a finite number"},
    {"{\"logging_interval\": Infinity}", "1:22",
     "logging_interval: Infinity is not a finite number"},
    {"{\"logging_interval\": -Infinity}", "1:22", "logging_interval: -Infinity is not"},
    {"{\"logging_interval\": 1e999}", "1:22",
     "logging_interval: 1e999 is out of range (0 < x <= 31536000)"},
    {"{\"logging_interval\": 0}", "1:22", "logging_interval: 0 is out of range"},
    {"{\"logging_interval\": -0.5}", "1:22", "logging_interval: -0.5 is out of range"},
    {"{\"cpu_allocation_percentage\": 1.01}", "1:31",
     "cpu_allocation_percentage: 1.01 is out of range (0 < x <= 1)"},
    {"{\"autoscale_interval_s\": 4e7}", "1:26", "autoscale_interval_s: 4e7 is out"},
    {"{\"logging_interval\": \"30\"}", "1:22",
     "logging_interval: expected a number, found the string \"30\""},
    {"{\"ignore_failures\": 1}", "1:21",
     "ignore_failures: expected true or false, found the number 1"},
    {"{\"ignore_failures\": \"true\"}", "1:21", "ignore_failures: expected true or false"},
    {"{\"execution_mode\": 1}", "1:20", "execution_mode: expected \"streaming\" or"},
    {"{\"execution_mode\": true}", "1:20", "execution_mode: expected"},
    {"{\"logging_interval\": null}", "1:22", "logging_interval: expected a number, found null"},
    {"{\"logging_interval\": [30]}", "1:22", "logging_interval: expected a number, found an array"},
    {"{\"logging_interval\": {\"v\": 30}}", "1:22", "found an object"},
    {"{\"logging_interval\": 030}", "1:22", "logging_interval: 030 is not a valid JSON number"},
    {"{\"logging_interval\": +3}", "1:22", "+3 is not a valid JSON number"},
    {"{\"logging_interval\": .5}", "1:22", ".5 is not a valid JSON number"},
    {"{\"logging_interval\": 5.}", "1:22", "5. is not a valid JSON number"},
    {"{\"logging_interval\": 0x10}", "1:22", "0x10 is not a valid JSON number"},
    {"{\"logging_interval\": thirty}", "1:22", "expected a number, found thirty"},
    {"{\"logging_interval\": }", "1:22", "logging_interval: expected a value, found '}'"},
};

Test(config, json_value_errors) {
    run_json_cases(value_cases, sizeof value_cases / sizeof value_cases[0]);
}

static const json_case syntax_cases[] = {
    {"", "1:1", "expected '{' (a JSON object), found end of file"},
    {"  \n  [1]", "2:3", "expected '{' (a JSON object), found '['"},
    {"{", "1:2", "expected a key (a string), found end of file"},
    {"{\"logging_interval\" 5}", "1:21", "expected ':' after \"logging_interval\""},
    {"{\"logging_interval\": 5,}", "1:24",
     "expected a key (a string) after ',' (no trailing comma), found '}'"},
    {"{\"logging_interval\": 5 \"ignore_failures\": true}", "1:24",
     "expected ',' or '}' after the value of logging_interval"},
    {"{\"logging_interval\": 5", "1:23", "found end of file"},
    {"{}\n}", "2:1", "unexpected '}' after the object"},
    {"{} x", "1:4", "unexpected 'x' after the object"},
    {"{}{}", "1:3", "unexpected '{' after the object"},
    {"{} // comment", "1:4", "unexpected '/'"},
    {"{/* c */}", "1:2", "expected a key (a string), found '/'"},
    {"{'logging_interval': 5}", "1:2", "found '''"},
    {"{\"logging_interval: 5}", "1:2", "unterminated string"},
    {"{\"execution_mode\": \"bat\tch\"}", "1:24", "control character 0x09"},
    {"{\"execution_mode\": \"\\x\"}", "1:21", "invalid escape"},
    {"{\"execution_mode\": \"\\u12\"}", "1:25", "expected a hex digit"},
    {"{\"execution_mode\": \"\\udc00\"}", "1:21", "lone low surrogate"},
    {"{\"execution_mode\": \"\\ud800x\"}", "1:21", "without its low half"},
    {"{\"execution_mode\": \"\xc3\x28\"}", "1:21", "invalid UTF-8"},
    {"{\"execution_mode\": \"\xed\xa0\x80\"}", "1:21", "invalid UTF-8"},
    {"{\"execution_mode\": \"\xc0\xaf\"}", "1:21", "invalid UTF-8"},
    {"{\x01}", "1:2", "found byte 0x01"},
    {"{\"logging_interval\": 5,\n\n}", "3:1", "after ','"},
};

Test(config, json_syntax_errors) {
    run_json_cases(syntax_cases, sizeof syntax_cases / sizeof syntax_cases[0]);

    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "{\"", 2);
    memcpy(big + sizeof big - 2, "\"}", 2);
    big[sizeof big - 1] = '\0';
    json_err(big, "1:2", "string longer than 255 bytes");

    /* A NUL inside the text is a byte like any other. */
    reel_executor_config c = defaults();
    ERR(reel__config_parse_json(&c, "{}\0", 3, "cfg.json"), -EINVAL, "cfg.json:1:3: ");
    ERR(reel__config_parse_json(NULL, "{}", 2, NULL), -EINVAL, "<config>");
    TH_OK(reel__config_parse_json(&c, "{}", 2, NULL));
}

Test(config, file_errors) {
    reel_executor_config c = defaults(), d = defaults();
    char path[160];

    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    ERR(reel__config_load_json(&c, path), -ENOENT, "missing.json");

    ERR(reel__config_load_json(&c, tmpdir), -EINVAL, "not a regular file");

    snprintf(path, sizeof path, "%s/fifo", tmpdir);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    ERR(reel__config_load_json(&c, path), -EINVAL, "fifo: not a regular file");
    ERR(reel__config_load_json(&c, "/dev/null"), -EINVAL, "/dev/null: not a regular file");

    size_t n = REEL_CONFIG_MAX_BYTES + 1;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    ERR(reel__config_load_json(&c, write_bytes("big.json", big, n)), -EFBIG, "big.json");
    ERR(reel__config_parse_json(&c, big, n, "mem"), -EFBIG, "mem");
    /* Exactly at the limit is fine. */
    big[n - 2] = '}';
    big[n - 1] = ' ';
    TH_OK(reel__config_load_json(&c, write_bytes("max.json", big, n - 1)));
    free(big);

    ERR(reel__config_load_json(&c, write_file("bad.json", "{\n\"logging_interval\": 0}")), -EINVAL,
        "bad.json:2:21: logging_interval: 0 is out of range");
    TH_RC(reel__config_load_json(NULL, path), -EINVAL);
    TH_RC(reel__config_load_json(&c, NULL), -EINVAL);
    expect_same(&c, &d);
}

/* ---- fuzz ----------------------------------------------------------------------------------- */

Test(config, fuzz_mutated_files) {
    static const char valid[] = "{\n"
                                "  \"logging_interval\": 30.5,\n"
                                "  \"ignore_failures\": true,\n"
                                "  \"execution_mode\": \"batch\",\n"
                                "  \"cpu_allocation_percentage\": 0.75,\n"
                                "  \"autoscale_interval_s\": 5e0\n"
                                "}\n";
    static const char *const tokens[] = {
        "{",           "}",       "[",     "\"",       ",",  ":",    "\\",
        "\\u",         "\\ud800", "1e999", "NaN",      "-",  "0",    "null",
        "true",        "\xc3",    "\n",    "\"a\": 1", "1.", "\x00", "\"logging_interval\": 1",
        "\xef\xbb\xbf"};
    uint64_t seed = 0x5eed1234abcdull;
    char buf[4096];
    unsigned ok = 0, bad = 0;
    reel_executor_config d = defaults();
    for (int iter = 0; iter < 10000; iter++) {
        size_t len = sizeof valid - 1;
        memcpy(buf, valid, len);
        int nmut = 1 + (int)(th_rand64(&seed) % 4);
        for (int m = 0; m < nmut; m++) {
            uint64_t r = th_rand64(&seed);
            size_t at = len ? (size_t)(th_rand64(&seed) % (len + 1)) : 0;
            switch (r % 6) {
            case 0: /* flip a byte */
                if (at < len)
                    buf[at] = (char)th_rand64(&seed);
                break;
            case 1: /* delete a run */
                if (at < len) {
                    size_t k = 1 + th_rand64(&seed) % 8;
                    if (k > len - at)
                        k = len - at;
                    memmove(buf + at, buf + at + k, len - at - k);
                    len -= k;
                }
                break;
            case 2: { /* insert a token */
                size_t t = th_rand64(&seed) % (sizeof tokens / sizeof tokens[0]);
                size_t k = tokens[t][0] ? strlen(tokens[t]) : 1;
                if (len + k < sizeof buf) {
                    memmove(buf + at + k, buf + at, len - at);
                    memcpy(buf + at, tokens[t], k);
                    len += k;
                }
                break;
            }
            case 3: /* truncate */
                len = at;
                break;
            case 4: /* duplicate a run */
                if (at < len) {
                    size_t k = 1 + th_rand64(&seed) % 40;
                    if (k > len - at)
                        k = len - at;
                    if (len + k < sizeof buf) {
                        memmove(buf + at + k, buf + at, len - at);
                        len += k;
                    }
                }
                break;
            default: /* a digit or letter changes */
                if (at < len)
                    buf[at] = "0123456789eE.-+abz"[th_rand64(&seed) % 18];
                break;
            }
        }
        reel_executor_config c = defaults();
        int rc;
        if (iter % 50 == 0)
            rc = reel__config_load_json(&c, write_bytes("fuzz.json", buf, len));
        else
            rc = reel__config_parse_json(&c, buf, len, "fuzz.json");
        cr_assert(rc == 0 || rc == -EINVAL, "iteration %d: rc %d (%s)", iter, rc,
                  reel_last_error());
        if (rc == 0) {
            ok++;
            TH_OK(reel__config_validate(&c));
        } else {
            bad++;
            expect_same(&c, &d);
            cr_assert_not_null(strstr(reel_last_error(), "fuzz.json:"), "iteration %d: \"%s\"",
                               iter, reel_last_error());
        }
    }
    cr_assert_gt(ok, 0);
    cr_assert_gt(bad, 0);
    cr_log_info("fuzz: %u accepted, %u refused", ok, bad);
}
