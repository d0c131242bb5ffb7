/*
 * cli.h - helpers shared by reel's programs (reel-inspect, reel-curate,
 * reel-bench): reading arguments, printing what came from outside safely,
 * stopping a run on a signal, and the --watch loop. Compiled into each program that uses it, not
 * into the library, hence the cli_ prefix rather than reel_.
 *
 * Like the programs, these may print (to the FILE given, or to stderr for
 * errors), but never exit: a usage error goes through the program's own
 * function, so that each program keeps its own wording and exit code.
 */
#ifndef REEL_CLI_H
#define REEL_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- arguments -------------------------------------------------------------- */

/* A program's report of bad arguments: prints one line built from the printf
 * format and exits (with 2, by reel's convention). It must not return. */
typedef void (*cli_usage_error_fn)(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Whether argv[*i] is the option name: "--name", "--name=value", or (when
 * needs_value) "--name" followed by its value as the next argument.
 *   argc, argv   in: the program's arguments
 *   i            in/out: the index of the argument looked at; advanced past
 *                the value when the value is the next argument
 *   name         in: the option, dashes included ("--watch")
 *   needs_value  in: whether the option takes a value
 *   value        out: when needs_value and it matches, the value (pointing
 *                into argv); untouched otherwise
 *   usage_error  in: called, never to return, with "option %s takes no value"
 *                or "option %s needs a value" and name when it matches but is
 *                misused
 * Returns true when it matches, false when argv[*i] is another argument. */
bool cli_match_option(int argc, char **argv, int *i, const char *name, bool needs_value,
                      const char **value, cli_usage_error_fn usage_error);

/* Parses a positive decimal number of seconds, at most 1e7: digits with at
 * most one '.' ("2", "0.5", ".5"; no sign, exponent or blanks).
 *   s    in: the text
 *   out  out: the seconds; untouched on failure
 * Returns true on success, false when s is not such a number. */
bool cli_parse_seconds(const char *s, double *out);

/* ---- printing what came from outside ---------------------------------------- */

/* Copies s into buf (cap bytes, cap >= 1), cut to fit, with control
 * characters replaced by '?', so that a path, a name or a detail sentence from
 * outside stays on one line and cannot move the cursor. A NULL s gives "".
 * Returns buf, for use as a printf argument. */
const char *cli_one_line(const char *s, char *buf, size_t cap);

/* Writes s to f as a JSON string, quotes included: escapes quotes,
 * backslashes and control characters, and replaces bytes that are not valid
 * UTF-8 (paths need not be) with U+FFFD, so that the output always parses. */
void cli_json_str(FILE *f, const char *s);

/* Formats a duration of s seconds (s >= 0) for a table: "12.5s", "3m07s",
 * "2h05m", "4d03h". Returns buf (cap bytes). */
const char *cli_format_duration(double s, char *buf, size_t cap);

/* Prints one line to stderr: "PROG: WHAT: ERROR (DETAIL)\n", where WHAT is
 * fmt formatted, ERROR is reel_strerror(rc) and DETAIL is reel_last_error()
 * made one line, left out when empty or when it only restates ERROR.
 *   prog  in: the program's name, the line's prefix
 *   rc    in: the negative error code a reel call returned
 *   fmt   in: what failed ("cannot open %s"); its arguments must not call
 *         into reel, which could replace the thread's last error
 * Call it before any other reel call after the one that failed. */
void cli_print_reel_error(const char *prog, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- stopping a run ---------------------------------------------------------- */

/* The signal (SIGINT, SIGTERM or SIGHUP) that asked the program to stop since
 * cli_catch_stop_signals(), or 0. Its address is what a pipeline run's
 * cancel option takes. */
extern volatile sig_atomic_t cli_stop_signal;

/* Makes SIGINT, SIGTERM and SIGHUP set cli_stop_signal instead of killing,
 * so that the program stops its work cleanly (its stores, its processes) and
 * reports. Install it before a runtime starts: its zygote and workers
 * inherit it and leave the stopping to the driver. System calls it
 * interrupts are restarted (sleeps and polls end early, as always).
 * reset_hand: a second signal then kills as usual. */
void cli_catch_stop_signals(bool reset_hand);

/* Puts back the handlers cli_catch_stop_signals() replaced. */
void cli_release_stop_signals(void);

/* ---- --watch ----------------------------------------------------------------- */

/* Sets *stop to SIGINT, SIGTERM and SIGHUP and blocks them in the calling
 * thread, so that they arrive only in cli_watch_sleep(), between refreshes:
 * never while a refresh holds a lock or is half printed. */
void cli_watch_block_signals(sigset_t *stop);

/* Sleeps for seconds (> 0) unless a signal of stop arrives first (it is
 * taken). Returns true when one did: the watch ends cleanly. */
bool cli_watch_sleep(const sigset_t *stop, double seconds);

/* Prints the line above each refresh, "every 2s: PROG TARGET    2024-05-01
 * 12:00:00" and a blank line, to f. On a terminal (tty) it first clears the
 * screen; otherwise a blank line separates a refresh from the one before
 * (first: this is the first).
 *   now_ns  in: the refresh's time, CLOCK_REALTIME in nanoseconds, shown in
 *           local time
 *   target  in: what is watched, printed as it is (make it one line first) */
void cli_print_watch_banner(FILE *f, double every_s, const char *prog, const char *target,
                            uint64_t now_ns, bool first, bool tty);

#endif /* REEL_CLI_H */
