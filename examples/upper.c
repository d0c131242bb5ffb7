/* A complete reel stage and the driver that runs it: upper-cases text
 * objects in a pool of worker processes. Build: cc upper.c $(pkg-config
 * --cflags --libs reel). Run: ./upper "some text" "more text". */
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include <reel/actor.h>

/* The stage: one output per input, every byte upper-cased. Inputs are
 * zero-copy views into the store; outputs get IDs derived from the task. */
static int upper(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        char *buf;
        int rc = reel_actor_output(out, in[i].size, NULL, 0, (void **)&buf);
        if (rc)
            return rc; /* the task is retried, its outputs discarded */
        const char *src = in[i].data;
        for (uint64_t k = 0; k < in[i].size; k++)
            buf[k] = (char)toupper((unsigned char)src[k]);
    }
    return 0;
}

static const reel_actor_def upper_stage = {.name = "upper", .process = upper, .cpus = 1};

int main(int argc, char **argv) {
    static const reel_actor_def *const stages[] = {&upper_stage};
    char name[64];
    snprintf(name, sizeof name, "reel-upper-%d", (int)getpid());
    reel_store *store;
    reel_store_options so = {.capacity = 16 << 20};
    int rc = reel_store_create(name, &so, &store);
    reel_runtime *rt = NULL;
    if (rc == 0) { /* before any thread: the zygote forks every worker later */
        reel_runtime_options ro = {.store = name, .actors = stages, .n_actors = 1};
        rc = reel_runtime_start(&ro, &rt);
    }
    reel_pool *pool = NULL;
    if (rc == 0)
        rc = reel_pool_start(rt, "upper", 2, &pool);
    for (int i = 1; rc == 0 && i < argc; i++) {
        reel_id id;
        reel_id_from_content(argv[i], strlen(argv[i]), &id);
        rc = reel_obj_put(store, &id, argv[i], strlen(argv[i]), NULL, 0, REEL_OBJ_CONTENT_ID, -1);
        if (rc == 0)
            rc = reel_pool_submit(pool, &id, 1, NULL, -1, NULL);
    }
    reel_task_result r;
    while (rc == 0 && (rc = reel_pool_collect(pool, &r, 10000)) == 0) {
        reel_view v;
        if (r.status != 0) {
            fprintf(stderr, "upper: task failed: %s\n", r.error);
            continue;
        }
        if (reel_obj_get(store, &r.outputs[0], 1, 0, &v) == 0) {
            printf("%.*s\n", (int)v.size, (const char *)v.data);
            reel_obj_release(store, &r.outputs[0]);
        }
        reel_obj_delete(store, &r.outputs[0]);
        reel_obj_delete(store, &r.inputs[0]);
    }
    if (rc == -ENODATA) /* every task is done */
        rc = 0;
    if (rc)
        fprintf(stderr, "upper: %s %s\n", reel_strerror(rc), reel_last_error());
    reel_pool_stop(pool, -1);
    reel_runtime_stop(rt);
    reel_store_close(store);
    reel_store_destroy(name);
    return rc ? 1 : 0;
}
