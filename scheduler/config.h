/*
 * config.h - the executor configuration: NeMo Curator's executor settings,
 * with its names and defaults, settable from code, from a JSON file and from
 * command-line flags. Internal to reel (the executor and the programs use
 * it); never installed.
 *
 * The settings
 *
 *   key                        type     default      valid
 *   logging_interval           number   60           0 < x <= 31536000 (s)
 *   ignore_failures            boolean  false
 *   execution_mode             string   "streaming"  "streaming" or "batch"
 *   cpu_allocation_percentage  number   0.95         0 < x <= 1
 *   autoscale_interval_s       number   180          0 < x <= 31536000 (s)
 *
 * The upper bound of the intervals (one year) keeps every later conversion to
 * nanoseconds exact and far from overflow. NaN and infinities are refused
 * everywhere.
 *
 * Layering: start from reel__config_defaults(), then a file, then flags; each
 * source changes only the keys it names. Every setter is all-or-nothing: on
 * an error the configuration is left exactly as it was.
 *
 * The JSON file: one object whose keys are the settings above and whose
 * values are JSON numbers, true/false or strings, as the table says (a number
 * written as a string, null, an array or a nested object is refused). The
 * reader is strict RFC 8259 for that subset: no comments, no trailing commas,
 * no duplicate keys, nothing but whitespace after the object, strings in
 * valid UTF-8 (a leading UTF-8 byte order mark is skipped). Nesting is
 * refused at the first '[' or '{' inside the object, so the depth is 1 and
 * nothing recurses. Files larger than REEL_CONFIG_MAX_BYTES are refused
 * before they are parsed. `{}` changes nothing.
 *
 * Errors: every function returns 0 or a negative errno. -EINVAL comes with a
 * sentence in reel_last_error() that names the key (and, for a file, starts
 * with "path:line:column: ", columns counted in bytes from 1), e.g.
 *
 *   config.json:3:5: unknown key "logging_intervall" (did you mean logging_interval?)
 *   execution_mode: "stream" is not streaming or batch
 *   --cpu-allocation-percentage (cpu_allocation_percentage): 1.5 is out of range (0 < x <= 1)
 *
 * Nothing here prints, allocates beyond a 64 KiB read buffer, or keeps
 * state; the functions are safe to call from any thread on distinct
 * configurations.
 */
#ifndef REEL_SCHEDULER_CONFIG_H
#define REEL_SCHEDULER_CONFIG_H

#include "reel/pipeline.h"

#include <stdbool.h>
#include <stddef.h>

/* Exported from libreel for the programs and the white-box tests
 * (tests/test_config.c); not part of the public API. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL_CONFIG_MAX_BYTES    65536u     /* largest JSON configuration accepted */
#define REEL_CONFIG_MAX_INTERVAL 31536000.0 /* one year, in seconds */
#define REEL_CONFIG_JSON_MAX     512u       /* reel__config_to_json() always fits this */

/* reel_execution_mode and reel_executor_config are public: reel/pipeline.h. */

/* Fills out cfg with NeMo Curator's defaults (table above). */
REEL_INTERNAL void reel__config_defaults(reel_executor_config *cfg);

/* Checks every field of cfg against the table above.
 * in cfg: the configuration (not changed)
 * Returns 0, or -EINVAL (cfg NULL, or reel_last_error() names the first bad
 * key and its value). */
REEL_INTERNAL int reel__config_validate(const reel_executor_config *cfg);

/* Sets one key from its text, as a flag's value is written.
 * in/out cfg: changed only on success
 * in key: a key's name as in the table ("logging_interval")
 * in value: a number ("30", "0.5", "1e2"; no hex, no "inf" or "nan", no
 *           surrounding spaces), a boolean (true/false, yes/no, on/off, 1/0)
 *           or an execution mode ("streaming", "batch"), as the key needs
 * Returns 0, or -EINVAL for a NULL argument, an unknown key (the sentence
 * suggests the nearest key) or a bad value (the sentence names key, value
 * and what is valid). */
REEL_INTERNAL int reel__config_set(reel_executor_config *cfg, const char *key, const char *value);

/* Reads a JSON configuration file (format above) over cfg: keys the file
 * names are set, the others keep their values.
 * in/out cfg: changed only on success
 * in path: the file; it must be a regular file (a FIFO or a device is not
 *          opened for reading, so the call never blocks on one)
 * Returns 0; -errno from open/read (-ENOENT, -EACCES, ...: the sentence
 * names the path); -EFBIG for a file over REEL_CONFIG_MAX_BYTES; -EINVAL for
 * a path that is not a regular file, a syntax error (the sentence gives
 * path:line:column and what was found), an unknown or duplicate key, or a
 * bad value (the sentence names the key). */
REEL_INTERNAL int reel__config_load_json(reel_executor_config *cfg, const char *path);

/* As reel__config_load_json(), from len bytes in memory (need not end with a
 * NUL); name stands for the path in error sentences (NULL: "<config>").
 * Returns 0, -EFBIG for len over REEL_CONFIG_MAX_BYTES, or -EINVAL as
 * above. */
REEL_INTERNAL int reel__config_parse_json(reel_executor_config *cfg, const char *text, size_t len,
                                          const char *name);

/* Recognises one configuration flag at argv[*i], for a program's argument
 * loop:
 *
 *   for (int i = 1; i < argc; i++) {
 *       int rc = reel__config_parse_flag(&cfg, argc, argv, &i);
 *       if (rc < 0) { print reel_last_error(); exit(2); }
 *       if (rc > 0) continue;
 *       ... the program's own flags ...
 *   }
 *
 * Flags: --logging-interval S, --ignore-failures, --no-ignore-failures,
 * --execution-mode streaming|batch, --cpu-allocation-percentage X,
 * --autoscale-interval-s S; the value either in the next argument or after
 * '=' (--logging-interval=30; --ignore-failures=false). Underscores may
 * stand for hyphens in the name (--logging_interval 30). A value in the next
 * argument may not start with "--" (a negative number can: it is then
 * refused as out of range).
 * in/out cfg: changed only on success
 * in argc, argv: the program's arguments
 * in/out i: the index of the argument to look at; on 1, the index of the
 *           last argument used (the flag or its value), so that the loop's
 *           i++ moves past it; otherwise unchanged
 * Returns 1 if argv[*i] was a configuration flag and was applied; 0 if it is
 * not one (anything not starting with "--", "--" itself, other names);
 * -EINVAL for a NULL argument, *i outside [0, argc), a missing value, a value
 * given to --no-ignore-failures, or a bad value (the sentence names the flag
 * as written and the key). */
REEL_INTERNAL int reel__config_parse_flag(reel_executor_config *cfg, int argc, char **argv, int *i);

/* Writes the configuration as one line of JSON, the keys in the table's
 * order, numbers in the shortest form that reads back to the same double:
 *   {"logging_interval": 60, "ignore_failures": false, ...}
 * reel__config_parse_json() of the result gives back cfg exactly.
 * in cfg: a valid configuration
 * out buf: cap bytes; NUL-terminated on success, "" on -ENOSPC (cap > 0)
 * Returns 0, -ENOSPC if cap is too small (REEL_CONFIG_JSON_MAX always
 * suffices), or -EINVAL (NULL argument, or cfg fails reel__config_validate). */
REEL_INTERNAL int reel__config_to_json(const reel_executor_config *cfg, char *buf, size_t cap);

/* "streaming" or "batch", or "unknown"; static storage. */
REEL_INTERNAL const char *reel__execution_mode_name(reel_execution_mode mode);

/* The flags' help text for a program's --help: one line per flag, each
 * with its default; static storage. */
REEL_INTERNAL const char *reel__config_flags_help(void);

#endif
