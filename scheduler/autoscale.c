/* The autoscaler's decision; the model is described at the top of autoscale.h. */
#include "autoscale.h"
#include "store_internal.h" /* reel__fail */

#include <errno.h>
#include <math.h>
#include <string.h>

#define NONE UINT32_MAX

/* A candidate allocation, and why each stage went down or up (the first
 * reason in each direction wins: constraints come before balancing). */
typedef struct plan {
    uint32_t w[REEL_AUTOSCALE_MAX_STAGES];
    uint8_t why_down[REEL_AUTOSCALE_MAX_STAGES];
    uint8_t why_up[REEL_AUTOSCALE_MAX_STAGES];
} plan;

/* What one call knows, derived once from the measurements and the state. */
typedef struct ctx {
    const reel_stage_measure *m;
    const reel_node_resources *node;
    uint32_t n;
    const reel_autoscale_stage_state *st; /* the new state: smoothed rates */
    double demand[REEL_AUTOSCALE_MAX_STAGES];
    bool work[REEL_AUTOSCALE_MAX_STAGES];   /* unfinished and still has input coming */
    bool autosc[REEL_AUTOSCALE_MAX_STAGES]; /* unfinished, not fixed */
    uint32_t lower[REEL_AUTOSCALE_MAX_STAGES];
    uint32_t upper[REEL_AUTOSCALE_MAX_STAGES];
} ctx;

typedef struct usage {
    double cpus;
    double gpus;
    uint64_t memory;
} usage;

static const char *const reason_names[REEL_AUTOSCALE_REASON_COUNT_] = {
#define REASON_NAME_(name, str) str,
    REEL_AUTOSCALE_REASON_MAP(REASON_NAME_)
#undef REASON_NAME_
};

const char *reel__autoscale_reason(uint32_t reason) {
    return reason < REEL_AUTOSCALE_REASON_COUNT_ ? reason_names[reason] : "unknown";
}

/* ---- resources ----------------------------------------------------------------------------- */

static uint64_t mem_times(uint64_t per, uint32_t w) {
    if (per != 0 && w > UINT64_MAX / per)
        return UINT64_MAX;
    return per * w;
}

static uint64_t mem_add(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Sums of many fractional CPUs (0.1 x 80) drift by an ulp or two. */
static bool le(double used, double budget) {
    return used <= budget + 1e-9 * (1.0 + budget);
}

static usage used_by(const ctx *c, const uint32_t *w) {
    usage u = {0, 0, 0};
    for (uint32_t i = 0; i < c->n; i++) {
        u.cpus += c->m[i].cpus * w[i];
        u.gpus += c->m[i].gpus * w[i];
        u.memory = mem_add(u.memory, mem_times(c->m[i].memory, w[i]));
    }
    return u;
}

/* Whether cpus fit the node's CPU budget, with its overdraw. */
static bool cpus_fit(const reel_node_resources *node, double cpus) {
    return le(cpus, node->cpus) ||
           (node->cpu_overdraw > 0 && cpus < node->cpus + node->cpu_overdraw);
}

static bool within(const ctx *c, usage u) {
    return cpus_fit(c->node, u.cpus) && le(u.gpus, c->node->gpus) && u.memory <= c->node->memory;
}

/* u plus one worker of stage i (none when i is NONE). */
static usage plus_one(const ctx *c, usage u, uint32_t i) {
    if (i != NONE) {
        u.cpus += c->m[i].cpus;
        u.gpus += c->m[i].gpus;
        u.memory = mem_add(u.memory, c->m[i].memory);
    }
    return u;
}

/* Whether a worker of stage d frees a resource that u overdraws. */
static bool helps(const ctx *c, usage u, uint32_t d) {
    return (!cpus_fit(c->node, u.cpus) && c->m[d].cpus > 0) ||
           (!le(u.gpus, c->node->gpus) && c->m[d].gpus > 0) ||
           (u.memory > c->node->memory && c->m[d].memory > 0);
}

/* ---- capacities ---------------------------------------------------------------------------- */

/* The weight of a stage's k-th sample: the plain mean of the first samples
 * (so that one noisy first window does not stand for long), then an EMA. */
static double weight(uint32_t k) {
    return k * REEL_AUTOSCALE_EMA < 1 ? 1.0 / k : REEL_AUTOSCALE_EMA;
}

/* Stage i's capacity with w workers, in first-stage tasks per second:
 * infinite for a stage without work, NAN for one never measured. */
static double cap(const ctx *c, uint32_t i, uint32_t w) {
    if (!c->work[i])
        return INFINITY;
    if (!c->st[i].rate_samples)
        return NAN;
    return w * c->st[i].rate / c->demand[i];
}

/* The measured stage with work of lowest capacity under p, or NONE. */
static uint32_t bottleneck(const ctx *c, const plan *p) {
    uint32_t best = NONE;
    double best_cap = INFINITY;
    for (uint32_t i = 0; i < c->n; i++) {
        double ci = cap(c, i, p->w[i]);
        if (c->work[i] && c->st[i].rate_samples && (best == NONE || ci < best_cap)) {
            best = i;
            best_cap = ci;
        }
    }
    return best;
}

/* The pipeline's estimated throughput under p; INFINITY when unknown. */
static double throughput(const ctx *c, const plan *p) {
    uint32_t b = bottleneck(c, p);
    return b == NONE ? INFINITY : cap(c, b, p->w[b]);
}

/* ---- moving workers ------------------------------------------------------------------------ */

static void note(uint8_t *why, uint32_t i, uint32_t reason) {
    if (why[i] == REEL_AUTOSCALE_NONE)
        why[i] = (uint8_t)reason;
}

/* Removes workers until one more worker of stage r fits (r == NONE: until the
 * plan fits the node), taking each from the donor with the most capacity left
 * after the removal. Donors are autoscaled stages above their lower bound.
 * With limit >= 0 (balancing), a donor must be measured or without work and
 * keep a capacity above limit; without (constraints), any donor will do,
 * stages never measured last. False, with p partly changed, if it cannot. */
static bool make_room(const ctx *c, plan *p, uint32_t r, double limit, uint32_t reason) {
    for (;;) {
        usage u = plus_one(c, used_by(c, p->w), r);
        if (within(c, u))
            return true;
        uint32_t best = NONE;
        double best_key = 0;
        for (uint32_t d = 0; d < c->n; d++) {
            if (d == r || !c->autosc[d] || p->w[d] <= c->lower[d] || !helps(c, u, d))
                continue;
            double key = cap(c, d, p->w[d] - 1);
            if (isnan(key)) {
                if (limit >= 0)
                    continue;
                key = -1;
            }
            if (limit >= 0 && !(key > limit))
                continue;
            if (best == NONE || key > best_key) {
                best = d;
                best_key = key;
            }
        }
        if (best == NONE)
            return false;
        p->w[best]--;
        note(p->why_down, best, reason);
    }
}

/* Phase 1: finished stages to 0, fixed ones to their count, every other stage
 * into [lower, upper], and the whole within the node. */
static int constrain(const ctx *c, plan *p) {
    for (uint32_t i = 0; i < c->n; i++) {
        if (p->w[i] > c->upper[i]) {
            p->w[i] = c->upper[i];
            note(p->why_down, i,
                 c->m[i].finished        ? REEL_AUTOSCALE_FINISHED
                 : c->m[i].fixed_workers ? REEL_AUTOSCALE_FIXED
                                         : REEL_AUTOSCALE_OVER_MAX);
        }
    }
    if (!make_room(c, p, NONE, -1, REEL_AUTOSCALE_OVER_BUDGET))
        return reel__fail(-EINVAL, "autoscale: cannot fit the allocation in the node");
    for (uint32_t i = 0; i < c->n; i++) {
        while (p->w[i] < c->lower[i]) {
            if (!make_room(c, p, i, -1, REEL_AUTOSCALE_DONOR))
                return reel__fail(-EINVAL, "autoscale: stage %u: no room for its lower bound", i);
            p->w[i]++;
            note(p->why_up, i, c->autosc[i] ? REEL_AUTOSCALE_FLOOR : REEL_AUTOSCALE_FIXED);
        }
    }
    return 0;
}

/* Whether an autoscaled stage with work was never measured: then nothing can
 * be compared with it, and balancing waits. */
static bool unknown(const ctx *c) {
    for (uint32_t i = 0; i < c->n; i++)
        if (c->autosc[i] && c->work[i] && !c->st[i].rate_samples)
            return true;
    return false;
}

/* Phase 2: the bottleneck gets one more worker at a time, from free resources
 * or (with donors) from stages that stay faster than it without the worker.
 * Each step raises the sorted vector of capacities, so it ends; the bound is
 * a second guard. */
static void balance(const ctx *c, plan *p, bool donors) {
    for (uint32_t iter = 0; iter < REEL_AUTOSCALE_MAX_STAGES * REEL_AUTOSCALE_MAX_WORKERS; iter++) {
        uint32_t s = bottleneck(c, p);
        if (s == NONE || !c->autosc[s] || p->w[s] >= c->upper[s])
            return;
        if (!within(c, plus_one(c, used_by(c, p->w), s))) {
            if (!donors)
                return;
            plan before = *p;
            if (!make_room(c, p, s, cap(c, s, p->w[s]), REEL_AUTOSCALE_DONOR)) {
                *p = before;
                return;
            }
        }
        p->w[s]++;
        note(p->why_up, s, REEL_AUTOSCALE_BOTTLENECK);
    }
}

/* A worker's capacity in stage i (first-stage tasks per second). */
static double unit(const ctx *c, uint32_t i) {
    return c->st[i].rate / c->demand[i];
}

/* Once the bottleneck cannot grow, several allocations reach the same
 * throughput; of those, prefer the one with the least capacity to spare in
 * all (as Cosmos-Xenna's solver does): move a worker from a stage whose
 * workers are worth much to one whose workers are worth little, as long as
 * the throughput does not drop. That brings the allocation close to the
 * proportional split instead of leaving a coarse stage with a spare worker.
 * The sum of capacities falls at every move, so it ends. */
static void trim(const ctx *c, plan *p) {
    for (uint32_t iter = 0; iter < REEL_AUTOSCALE_MAX_STAGES * REEL_AUTOSCALE_MAX_WORKERS; iter++) {
        double t = throughput(c, p);
        uint32_t bs = NONE, bd = NONE;
        double best = 0;
        for (uint32_t s = 0; s < c->n; s++) {
            if (!c->autosc[s] || !c->work[s] || !c->st[s].rate_samples || p->w[s] >= c->upper[s])
                continue;
            for (uint32_t d = 0; d < c->n; d++) {
                if (d == s || !c->autosc[d] || !c->work[d] || !c->st[d].rate_samples ||
                    p->w[d] <= c->lower[d] || !(unit(c, d) - unit(c, s) > best))
                    continue;
                p->w[d]--;
                p->w[s]++;
                bool ok = within(c, used_by(c, p->w)) && throughput(c, p) >= t;
                p->w[d]++;
                p->w[s]--;
                if (ok) {
                    best = unit(c, d) - unit(c, s);
                    bs = s;
                    bd = d;
                }
            }
        }
        if (bs == NONE)
            return;
        p->w[bd]--;
        p->w[bs]++;
        note(p->why_down, bd, REEL_AUTOSCALE_DONOR);
        note(p->why_up, bs, REEL_AUTOSCALE_BALANCE);
    }
}

/* The variance of a smoothed rate relative to itself, largest over the
 * measured stages with work: an EMA of weight a over samples of relative
 * variance v has variance v a / (2 - a). */
static double noise(const ctx *c) {
    double v = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        const reel_autoscale_stage_state *s = &c->st[i];
        if (!c->work[i] || !s->rate_samples)
            continue;
        double a = weight(s->rate_samples);
        if (s->var * a / (2 - a) > v)
            v = s->var * a / (2 - a);
    }
    return v;
}

/* Whether going from t0 to t1 gains at least the share min_gain (0: any gain)
 * and, for a move, more than REEL_AUTOSCALE_NOISE_Z standard deviations of
 * the difference between two stages' estimates (squared: no libm). */
static bool gains(double t0, double t1, double min_gain, double var) {
    if (isinf(t0) || isinf(t1))
        return false;
    if (t0 <= 0)
        return t1 > 0;
    if (min_gain <= 0)
        return t1 > t0 * (1 + 1e-9);
    double g = t1 / t0 - 1;
    return g >= min_gain && g * g >= 2 * REEL_AUTOSCALE_NOISE_Z * REEL_AUTOSCALE_NOISE_Z * var;
}

/* Whether q moves some stage, relative to p, against that stage's recent change. */
static bool reverses(const ctx *c, const plan *p, const plan *q) {
    for (uint32_t i = 0; i < c->n; i++) {
        int dir = (q->w[i] > p->w[i]) - (q->w[i] < p->w[i]);
        if (dir != 0 && dir == -c->st[i].dir && c->st[i].since < REEL_AUTOSCALE_HOLD)
            return true;
    }
    return false;
}

static bool takes(const ctx *c, const plan *p, const plan *q) {
    for (uint32_t i = 0; i < c->n; i++)
        if (q->w[i] < p->w[i])
            return true;
    return false;
}

/* ---- input --------------------------------------------------------------------------------- */

static bool bad(double x) {
    return !isfinite(x) || x < 0;
}

static int check_stage(const reel_stage_measure *m, uint32_t i, const reel_node_resources *node) {
    if (bad(m->cpus) || bad(m->gpus) || bad(m->task_s) || bad(m->tasks_per_s) || bad(m->busy) ||
        bad(m->outputs_per_input))
        return reel__fail(-EINVAL,
                          "autoscale: stage %u: a resource or measurement is NaN, "
                          "infinite or negative",
                          i);
    if (m->busy > 1)
        return reel__fail(-EINVAL, "autoscale: stage %u: busy share %g is above 1", i, m->busy);
    if (m->cpus <= 0 && m->gpus <= 0)
        return reel__fail(-EINVAL, "autoscale: stage %u: a worker needs CPUs or GPUs", i);
    if (m->workers_setup > m->workers)
        return reel__fail(-EINVAL, "autoscale: stage %u: %u workers in setup of %u", i,
                          m->workers_setup, m->workers);
    if (m->workers > REEL_AUTOSCALE_MAX_WORKERS || m->min_workers > REEL_AUTOSCALE_MAX_WORKERS ||
        m->max_workers > REEL_AUTOSCALE_MAX_WORKERS ||
        m->fixed_workers > REEL_AUTOSCALE_MAX_WORKERS)
        return reel__fail(-EINVAL, "autoscale: stage %u: a worker count is above %u", i,
                          REEL_AUTOSCALE_MAX_WORKERS);
    if (m->max_workers && m->min_workers > m->max_workers)
        return reel__fail(-EINVAL, "autoscale: stage %u: min_workers %u above max_workers %u", i,
                          m->min_workers, m->max_workers);
    if (m->finished)
        return 0;
    uint32_t w = m->fixed_workers ? m->fixed_workers : 1;
    if (!cpus_fit(node, m->cpus * w) || !le(m->gpus * w, node->gpus) ||
        mem_times(m->memory, w) > node->memory)
        return reel__fail(-EINVAL,
                          "autoscale: stage %u: %u worker%s need%s %.2f CPUs, %.2f GPUs, %llu "
                          "bytes; the node has %.2f CPUs, %.2f GPUs, %llu bytes",
                          i, w, w == 1 ? "" : "s", w == 1 ? "s" : "", m->cpus * w, m->gpus * w,
                          (unsigned long long)mem_times(m->memory, w), node->cpus, node->gpus,
                          (unsigned long long)node->memory);
    return 0;
}

/* Folds this window's samples into the smoothed rate and yield. */
static void smooth(reel_autoscale_stage_state *s, const reel_stage_measure *m) {
    double x = 0;
    uint32_t producing = m->workers - m->workers_setup;
    if (m->task_s > 0)
        x = 1.0 / m->task_s;
    else if (m->tasks_per_s > 0 && m->busy > 0 && producing > 0)
        x = m->tasks_per_s / (m->busy * producing);
    if (x > 0 && isfinite(x)) {
        if (s->rate_samples < UINT32_MAX)
            s->rate_samples++;
        double a = weight(s->rate_samples);
        /* Noise from successive samples rather than from the average: a real
         * change of rate then counts as noise for one sample, not for as long
         * as the average takes to catch up. E[(x1 - x0)^2] = 2 var. */
        if (s->rate_samples > 1) {
            double dev = (x - s->last) / s->rate;
            s->var += a * (dev * dev / 2 - s->var);
        }
        s->last = x;
        s->rate += a * (x - s->rate);
    }
    if (m->task_s > 0 || m->tasks_per_s > 0) {
        if (s->yield_samples < UINT32_MAX)
            s->yield_samples++;
        s->yield += weight(s->yield_samples) * (m->outputs_per_input - s->yield);
    } else if (s->yield_samples == 0) {
        s->yield = 1.0;
    }
}

static int setup(ctx *c, reel_autoscale_state *ns) {
    const reel_node_resources *node = c->node;
    if (bad(node->cpus) || bad(node->gpus) || bad(node->cpu_overdraw))
        return reel__fail(-EINVAL,
                          "autoscale: node CPUs, GPUs or CPU overdraw NaN, infinite or negative");
    for (uint32_t i = 0; i < c->n; i++) {
        int rc = check_stage(&c->m[i], i, node);
        if (rc < 0)
            return rc;
    }
    double demand = 1.0;
    for (uint32_t i = 0; i < c->n; i++) {
        const reel_stage_measure *m = &c->m[i];
        smooth(&ns->stage[i], m);
        c->demand[i] = demand;
        demand *= ns->stage[i].yield;
        c->work[i] = !m->finished && !(m->source_ended && m->queue_depth == 0) && c->demand[i] > 0;
        c->autosc[i] = !m->finished && !m->fixed_workers;
        if (m->finished) {
            c->lower[i] = c->upper[i] = 0;
        } else if (m->fixed_workers) {
            c->lower[i] = c->upper[i] =
                m->fixed_workers > m->workers_setup ? m->fixed_workers : m->workers_setup;
        } else {
            uint32_t lo = m->min_workers > 1 ? m->min_workers : 1;
            if (m->workers_setup > lo)
                lo = m->workers_setup;
            if (m->source_ended && m->queue_depth > 0 && m->workers > lo)
                lo = m->workers; /* draining its backlog: never shrunk */
            uint32_t hi = m->max_workers ? m->max_workers : REEL_AUTOSCALE_MAX_WORKERS;
            c->lower[i] = lo;
            c->upper[i] = hi > lo ? hi : lo;
        }
    }
    usage must = used_by(c, c->lower);
    if (!within(c, must))
        return reel__fail(-EINVAL,
                          "autoscale: the workers that must stay (floors, fixed counts, workers in "
                          "setup, backlogs) need %.2f CPUs, %.2f GPUs, %llu bytes; the node has "
                          "%.2f CPUs, %.2f GPUs, %llu bytes",
                          must.cpus, must.gpus, (unsigned long long)must.memory, node->cpus,
                          node->gpus, (unsigned long long)node->memory);
    return 0;
}

/* ---- the decision -------------------------------------------------------------------------- */

static void report(const ctx *c, const plan *p, reel_autoscale_result *res) {
    memset(res, 0, sizeof *res);
    for (uint32_t i = 0; i < c->n; i++)
        res->workers[i] = p->w[i];
    /* Removals first, then additions. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < c->n; i++) {
            int64_t delta = (int64_t)p->w[i] - c->m[i].workers;
            if (pass == 0 ? delta >= 0 : delta <= 0)
                continue;
            res->changes[res->n_changes++] = (reel_autoscale_change){
                .stage = i,
                .delta = (int32_t)delta,
                .reason = pass == 0 ? p->why_down[i] : p->why_up[i],
            };
        }
    }
    res->bottleneck = bottleneck(c, p);
    double t = throughput(c, p);
    res->throughput = isinf(t) ? 0 : t;
}

int reel__autoscale(const reel_stage_measure *stages, uint32_t n, const reel_node_resources *node,
                    reel_autoscale_state *state, reel_autoscale_result *result) {
    if (!stages || !node || !state || !result)
        return reel__fail(-EINVAL, "autoscale: NULL argument");
    if (n == 0 || n > REEL_AUTOSCALE_MAX_STAGES)
        return reel__fail(-EINVAL, "autoscale: %u stages (1 to %u)", n, REEL_AUTOSCALE_MAX_STAGES);
    if (state->n_stages != 0 && state->n_stages != n)
        return reel__fail(-EINVAL, "autoscale: the state is for %u stages, not %u", state->n_stages,
                          n);

    /* The new state is built aside and committed only on success. */
    reel_autoscale_state ns = *state;
    ns.n_stages = n;
    ctx c = {.m = stages, .node = node, .n = n, .st = ns.stage};
    int rc = setup(&c, &ns);
    if (rc < 0)
        return rc;

    plan p1 = {{0}};
    for (uint32_t i = 0; i < n; i++)
        p1.w[i] = stages[i].workers;
    rc = constrain(&c, &p1);
    if (rc < 0)
        return rc;

    plan best = p1;
    if (!unknown(&c)) {
        plan moved = p1;
        double t1 = throughput(&c, &p1);
        balance(&c, &moved, true);
        trim(&c, &moved);
        double need = 0;
        if (takes(&c, &p1, &moved))
            need = reverses(&c, &p1, &moved) ? REEL_AUTOSCALE_REVERSE_GAIN : REEL_AUTOSCALE_GAIN;
        if (gains(t1, throughput(&c, &moved), need, noise(&c))) {
            best = moved;
        } else if (need > 0) {
            plan added = p1; /* free resources only: takes nothing, cannot oscillate */
            balance(&c, &added, false);
            if (gains(t1, throughput(&c, &added), 0, 0))
                best = added;
        }
    }

    for (uint32_t i = 0; i < n; i++) {
        reel_autoscale_stage_state *s = &ns.stage[i];
        if (best.w[i] != stages[i].workers) {
            s->dir = best.w[i] > stages[i].workers ? 1 : -1;
            s->since = 0;
        } else if (s->since < UINT32_MAX) {
            s->since++;
        }
    }
    report(&c, &best, result);
    *state = ns;
    return 0;
}
