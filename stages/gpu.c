/*
 * Where the curation pipeline uses a GPU (issue 14, item 6): the decision,
 * from the options and the node's GPU count, apart from the pipeline's
 * construction so that it can be tested without a GPU; and the count itself,
 * taken as the scheduler takes it, in a short-lived child (placement.h), so
 * that the process that builds the pipeline - reel-curate's main process,
 * which forks the workers - never initializes CUDA.
 */
#include "check.h"
#include "media.h"
#include "placement.h"
#include "stages_internal.h"

#include <errno.h>

/* A GPU worker's share of a device: several workers of a stage (the
 * autoscaler adds them where the queue is) share one, as Curator's stages
 * declare fractions of a GPU. */
#define STAGE_GPU_SHARE 0.25

static bool transcoder_on_gpu(const reel_curate_options *o) {
    return o->use_hwaccel || media_is_nvenc(o->encoder);
}

bool stage_gpu_wanted(const reel_curate_options *o) {
    return (o->write_tensors && o->use_gpu) || transcoder_on_gpu(o);
}

int stage_gpu_plan(const reel_curate_options *o, uint32_t n_gpus, stage_gpu_shares *out) {
    *out = (stage_gpu_shares){0};
    /* What FFmpeg lacks is said first: no GPU would help. The lookups load
     * no driver. */
    if (o->encoder && *o->encoder && !media_has_encoder(o->encoder))
        return reel__fail(-ENOTSUP,
                          "encoder %s (--transcode-encoder): this FFmpeg has no video encoder of "
                          "that name",
                          o->encoder);
    if (o->use_hwaccel && !media_has_cuda())
        return reel__fail(-ENOTSUP, "use_hwaccel (--transcode-use-hwaccel): this FFmpeg was built "
                                    "without CUDA, so it cannot decode on a GPU");
    if (n_gpus == 0 && o->use_hwaccel)
        return reel__fail(-ENODEV, "use_hwaccel (--transcode-use-hwaccel): decoding on the GPU "
                                   "(NVDEC) needs an NVIDIA GPU, and this node has none");
    if (n_gpus == 0 && media_is_nvenc(o->encoder))
        return reel__fail(-ENODEV,
                          "encoder %s (--transcode-encoder): NVENC needs an NVIDIA GPU, and this "
                          "node has none",
                          o->encoder);
    if (n_gpus == 0)
        return 0; /* today's CPU path */
    if (o->write_tensors && o->use_gpu)
        out->preprocess = STAGE_GPU_SHARE;
    if (transcoder_on_gpu(o))
        out->transcoder = STAGE_GPU_SHARE;
    return 0;
}

int stage_gpu_count(const reel_curate_options *o, uint32_t *n_gpus) {
    *n_gpus = 0;
    if (!stage_gpu_wanted(o))
        return 0; /* no child, no CUDA: the CPU line */
    reel_node node;
    int rc = reel__node_detect(1.0, &node);
    if (rc == 0)
        *n_gpus = node.n_gpus;
    return rc;
}
