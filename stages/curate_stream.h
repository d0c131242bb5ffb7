/*
 * curate_stream.h - reel-curate's streaming seam (issue 16, item 1): video
 * paths read one per line as they arrive (--inputs-from), and one JSON line
 * per finished video (--results-jsonl). Part of the program, not of the
 * library; never installed.
 */
#ifndef REEL_STAGES_CURATE_STREAM_H
#define REEL_STAGES_CURATE_STREAM_H

#include <reel/stages.h>

#include <stdbool.h>
#include <stdio.h>

/* The longest line taken (bytes, '\n' excluded); a longer one is refused. */
#define LINE_SOURCE_MAX 4095u

typedef struct line_source line_source;

/* Opens path for reading lines ("-": standard input). Returns 0, or a
 * negative errno. */
int line_source_open(const char *path, line_source **out);

/* The next line, without blocking: 1 and *line (NUL-terminated, a trailing
 * '\r' dropped; valid until the next call), 0 at the end of input, -EAGAIN
 * when no whole line has come yet, -E2BIG for a line longer than
 * LINE_SOURCE_MAX and -EBADMSG for one holding a NUL byte (each skipped
 * whole; *line then holds its first bytes, cut, for the message), or
 * another negative errno if reading failed. Empty lines are skipped. The
 * last line needs no '\n'. */
int line_source_next(line_source *s, const char **line);

/* Closes it (standard input stays open). NULL is a no-op. */
void line_source_close(line_source *s);

/* One video's result as a line of JSON (issue 16's results-jsonl): the
 * summary's fields, path first, and elapsed_s, the seconds since the run
 * began. Flushed. Returns 0, or -EIO if the write failed. */
int results_line_write(FILE *f, const reel_curate_video_summary *s, double elapsed_s);

#endif
