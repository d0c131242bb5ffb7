/* Lists: store objects that name a task's inputs or outputs beyond what a
 * task record or a result carries inline (reel/actor.h, "Lists"). */
#include "actor_internal.h"
#include "store_internal.h"

#include <errno.h>
#include <string.h>

static uint64_t bitmap_words(uint32_t n) {
    return ((uint64_t)n + 63) / 64;
}

REEL_API uint64_t reel_list_size(uint32_t n) {
    return sizeof(reel_list_header) + (uint64_t)n * sizeof(reel_id) +
           2 * bitmap_words(n) * sizeof(uint64_t);
}

REEL_API int reel_list_create(reel_store *store, const reel_id *id, const reel_id *ids, uint32_t n,
                              const uint64_t *forwarded, const uint64_t *artifacts) {
    REEL_NEED(store, "store");
    REEL_NEED(id, "id");
    REEL_NEED(ids || n == 0, "ids");
    if (n > REEL_LIST_MAX)
        return reel__fail(-E2BIG, "a list of %u IDs, more than %u", n, REEL_LIST_MAX);
    uint8_t *buf;
    int rc = reel_obj_create(store, id, reel_list_size(n), NULL, 0, 0, -1, (void **)&buf);
    if (rc)
        return rc;
    reel_list_header h = {.version = REEL_LIST_VERSION, .n = n};
    memcpy(h.magic, REEL_LIST_MAGIC, sizeof h.magic);
    memcpy(buf, &h, sizeof h);
    uint8_t *p = buf + sizeof h;
    if (n)
        memcpy(p, ids, n * sizeof(reel_id));
    p += (uint64_t)n * sizeof(reel_id);
    size_t bits = bitmap_words(n) * sizeof(uint64_t);
    if (forwarded)
        memcpy(p, forwarded, bits);
    else
        memset(p, 0, bits);
    if (artifacts)
        memcpy(p + bits, artifacts, bits);
    else
        memset(p + bits, 0, bits);
    rc = reel_obj_seal(store, id);
    if (rc)
        reel_obj_abort(store, id);
    return rc;
}

REEL_API int reel_list_open(reel_store *store, const reel_id *id, int timeout_ms, reel_list *out) {
    REEL_NEED(store, "store");
    REEL_NEED(id, "id");
    REEL_NEED(out, "out");
    reel_view v;
    int rc = reel_obj_get(store, id, 1, timeout_ms, &v);
    if (rc)
        return rc;
    reel_list_header h;
    /* The object is another process's: every size is checked before use. */
    if (v.size < sizeof h || (memcpy(&h, v.data, sizeof h), 0) ||
        memcmp(h.magic, REEL_LIST_MAGIC, sizeof h.magic) != 0 || h.version != REEL_LIST_VERSION ||
        h.n > REEL_LIST_MAX || v.size != reel_list_size(h.n)) {
        reel_obj_release(store, id);
        return reel__fail(REEL_ECORRUPT, "object is not a list of IDs, or not a whole one");
    }
    const uint8_t *p = (const uint8_t *)v.data + sizeof h;
    out->id = *id;
    out->n = h.n;
    out->ids = (const reel_id *)p;
    p += (uint64_t)h.n * sizeof(reel_id);
    out->forwarded = (const uint64_t *)p;
    out->artifacts = out->forwarded + bitmap_words(h.n);
    return 0;
}

REEL_API void reel_list_close(reel_store *store, reel_list *list) {
    REEL_NEED_OR(store, "store", );
    REEL_NEED_OR(list, "list", );
    if (list->n == UINT32_MAX)
        return;
    reel_obj_release(store, &list->id);
    list->n = UINT32_MAX; /* closed: a second close is a no-op */
    list->ids = NULL;
    list->forwarded = list->artifacts = NULL;
}
