/* Scratch memory and error texts of the per-clip stages: clip_util.h. */
#include "clip_util.h"
#include "stages_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int clip_scratch_init(clip_scratch *s, uint32_t n) {
    s->n = n;
    s->errors = calloc(n ? n : 1, sizeof *s->errors);
    s->owned = calloc(n ? n : 1, sizeof *s->owned);
    if (!s->errors || !s->owned) {
        clip_scratch_free(s);
        return -ENOMEM;
    }
    return 0;
}

void clip_scratch_free(clip_scratch *s) {
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->errors)
            free(s->errors[i]);
        if (s->owned)
            free(s->owned[i]);
    }
    free(s->errors);
    free(s->owned);
    s->errors = NULL;
    s->owned = NULL;
    s->n = 0;
}

int clip_error(clip_scratch *s, video_task *t, uint32_t i, const char *stage, const char *fmt,
               ...) {
    if (i >= s->n)
        return -EINVAL;
    if (!s->errors[i] && !(s->errors[i] = malloc(VT_TEXT_MAX)))
        return -ENOMEM;
    char text[VT_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    stage_add_error(&t->clips[i], s->errors[i], VT_TEXT_MAX, "%s: %s", stage, text);
    return 0;
}
