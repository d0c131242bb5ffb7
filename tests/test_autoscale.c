/* The autoscaler's decision (scheduler/autoscale.h), on simulated
 * measurements: convergence of an imbalanced pipeline to the proportional
 * split, resource budgets, the floor, the tail backlog, finished and fixed
 * stages, the grace period, stability with balanced and with noisy
 * measurements, and refused inputs. No processes, no clock. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "autoscale.h"
#include "reel/store.h"

TestSuite(autoscale, .timeout = 30);

#define GIB (1024ull * 1024 * 1024)

/* ---- a simulated pipeline ------------------------------------------------------------------- */

/* Per stage, its true task duration and yield; the measurements follow from
 * the allocation: the slowest stage sets the pace, stages up to it have full
 * queues (backpressure), those after it are starved. */
typedef struct sim {
    uint32_t n;
    double dur[8];   /* seconds per task */
    double yield[8]; /* outputs per input */
    reel_stage_measure m[8];
    reel_node_resources node;
    reel_autoscale_state state;
    reel_autoscale_result res;
    double noise; /* task durations measured within +-noise */
    uint64_t rng;
} sim;

static double uniform(uint64_t *s) { /* xorshift64*, in [-1, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / (double)(1ull << 52) - 1.0;
}

static void sim_init(sim *s, uint32_t n, const double *dur, double cpus) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->node = (reel_node_resources){.cpus = cpus, .gpus = 0, .memory = 64 * GIB};
    s->rng = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < n; i++) {
        s->dur[i] = dur[i];
        s->yield[i] = 1.0;
        s->m[i] = (reel_stage_measure){.workers = 1, .cpus = 1};
    }
}

/* True throughput in first-stage tasks per second, and the bottleneck. */
static double sim_rate(const sim *s, const uint32_t *w, uint32_t *bottleneck) {
    double demand = 1, rate = INFINITY;
    for (uint32_t i = 0; i < s->n; i++) {
        double c = w[i] / (s->dur[i] * demand);
        if (c < rate) {
            rate = c;
            if (bottleneck)
                *bottleneck = i;
        }
        demand *= s->yield[i];
    }
    return rate;
}

static void sim_measure(sim *s) {
    uint32_t w[8], b = 0;
    for (uint32_t i = 0; i < s->n; i++)
        w[i] = s->m[i].workers;
    double x = sim_rate(s, w, &b), demand = 1;
    for (uint32_t i = 0; i < s->n; i++) {
        reel_stage_measure *m = &s->m[i];
        uint32_t producing = m->workers - m->workers_setup;
        m->task_s = s->dur[i] * (1 + s->noise * uniform(&s->rng));
        m->tasks_per_s = x * demand;
        m->busy = producing ? fmin(1.0, x * demand * s->dur[i] / producing) : 0;
        m->outputs_per_input = s->yield[i];
        m->queue_depth = i <= b ? 16 : 0;
        demand *= s->yield[i];
    }
}

static void check_result(const sim *s, const reel_stage_measure *m,
                         const reel_autoscale_result *r) {
    double cpus = 0, gpus = 0;
    uint64_t mem = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        cpus += m[i].cpus * r->workers[i];
        gpus += m[i].gpus * r->workers[i];
        mem += m[i].memory * r->workers[i];
        if (!m[i].finished)
            cr_assert_geq(r->workers[i], 1, "stage %u dropped to 0", i);
        if (m[i].fixed_workers && !m[i].finished)
            cr_assert_eq(r->workers[i], m[i].fixed_workers, "fixed stage %u changed", i);
        cr_assert_geq(r->workers[i], m[i].finished ? 0 : m[i].workers_setup,
                      "stage %u lost a worker in setup", i);
    }
    if (s->node.cpu_overdraw > 0)
        cr_assert_lt(cpus, s->node.cpus + s->node.cpu_overdraw, "%.3f CPUs of %.3f + %.3f", cpus,
                     s->node.cpus, s->node.cpu_overdraw);
    else
        cr_assert_leq(cpus, s->node.cpus + 1e-9, "%.3f CPUs of %.3f", cpus, s->node.cpus);
    cr_assert_leq(gpus, s->node.gpus + 1e-9, "%.3f GPUs of %.3f", gpus, s->node.gpus);
    cr_assert_leq(mem, s->node.memory, "%llu bytes of %llu", (unsigned long long)mem,
                  (unsigned long long)s->node.memory);
    /* The changes: removals first, then additions, and they add up. */
    bool adding = false;
    uint32_t seen = 0;
    for (uint32_t k = 0; k < r->n_changes; k++) {
        const reel_autoscale_change *ch = &r->changes[k];
        cr_assert_lt(ch->stage, s->n);
        cr_assert_neq(ch->delta, 0);
        cr_assert_neq(ch->reason, REEL_AUTOSCALE_NONE);
        if (ch->delta > 0)
            adding = true;
        else
            cr_assert_not(adding, "a removal after an addition");
        cr_assert_eq((int64_t)m[ch->stage].workers + ch->delta, r->workers[ch->stage]);
        seen |= 1u << ch->stage;
    }
    for (uint32_t i = 0; i < s->n; i++)
        if (!(seen & (1u << i)))
            cr_assert_eq(r->workers[i], m[i].workers, "stage %u changed silently", i);
}

/* One interval: measure, decide, check, apply. Returns the number of changes. */
static uint32_t sim_step(sim *s) {
    sim_measure(s);
    int rc = reel__autoscale(s->m, s->n, &s->node, &s->state, &s->res);
    cr_assert_eq(rc, 0, "reel__autoscale: %d %s", rc, reel_last_error());
    check_result(s, s->m, &s->res);
    for (uint32_t i = 0; i < s->n; i++)
        s->m[i].workers = s->res.workers[i];
    return s->res.n_changes;
}

/* Calls until one makes no change; returns how many made changes. */
static uint32_t sim_converge(sim *s, uint32_t max_steps) {
    for (uint32_t k = 0; k < max_steps; k++)
        if (sim_step(s) == 0)
            return k;
    cr_assert_fail("no convergence in %u steps", max_steps);
    return max_steps;
}

/* The best static allocation of 1-CPU workers, found by trying them all. */
static double best_static(const sim *s, uint32_t budget, uint32_t *w, uint32_t i) {
    if (i == s->n - 1) {
        w[i] = budget;
        return sim_rate(s, w, NULL);
    }
    double best = 0;
    for (uint32_t k = 1; k + (s->n - 1 - i) <= budget; k++) {
        w[i] = k;
        double r = best_static(s, budget - k, w, i + 1);
        if (r > best)
            best = r;
    }
    return best;
}

/* Checks the allocation against the proportional split of the CPUs and the
 * best static allocation; prints the figures. */
static void check_split(const sim *s, const char *what, uint32_t steps) {
    double work[8], total = 0, demand = 1;
    uint32_t w[8], budget = (uint32_t)s->node.cpus;
    for (uint32_t i = 0; i < s->n; i++) {
        work[i] = s->dur[i] * demand;
        total += work[i];
        demand *= s->yield[i];
        w[i] = s->m[i].workers;
    }
    double got = sim_rate(s, w, NULL);
    uint32_t tmp[8];
    double best = best_static(s, budget, tmp, 0);
    char line[256];
    int len = snprintf(line, sizeof line, "%s: %u step(s) with changes; workers", what, steps);
    for (uint32_t i = 0; i < s->n; i++) {
        double ideal = budget * work[i] / total;
        len += snprintf(line + len, sizeof line - len, " %u(%.2f)", w[i], ideal);
        cr_assert_leq(fabs(w[i] - ideal), 1.0, "%s: stage %u has %u workers, ideal %.2f", what, i,
                      w[i], ideal);
    }
    snprintf(line + len, sizeof line - len, "; %.1f/s, best static %.1f/s", got, best);
    cr_log_info("%s", line);
    cr_assert_geq(got, best * (1 - 1e-9), "%s: %.2f/s below the best static %.2f/s", what, got,
                  best);
}

/* ---- convergence ---------------------------------------------------------------------------- */

/* From the allocation start, calls until nothing changes (within 3 calls
 * with changes), then checks the split. */
static void converge(sim *s, const uint32_t *start, const char *what) {
    for (uint32_t i = 0; i < s->n; i++)
        s->m[i].workers = start[i];
    uint32_t steps = sim_converge(s, 10);
    cr_assert_leq(steps, 3, "%s: %u steps", what, steps);
    check_split(s, what, steps);
}

Test(autoscale, converges_from_an_even_split) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.100, 0.020}, 8);
    converge(&s, (uint32_t[]){3, 3, 2}, "10/100/20 ms, 8 CPUs, from 3/3/2");
    cr_assert_eq(s.res.bottleneck, 2, "bottleneck %u", s.res.bottleneck);
}

Test(autoscale, converges_from_one_worker_each) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.100, 0.020}, 8);
    converge(&s, (uint32_t[]){1, 1, 1}, "10/100/20 ms, 8 CPUs, from 1/1/1");
}

Test(autoscale, converges_on_a_larger_node) {
    sim s;
    sim_init(&s, 3, (double[]){0.001, 0.004, 0.002}, 32);
    converge(&s, (uint32_t[]){11, 11, 10}, "1/4/2 ms, 32 CPUs, from 11/11/10");
}

Test(autoscale, yields_propagate_demand_downstream) {
    /* One video becomes 10 clips: per video the clip stage has 10 x 50 ms. */
    sim s;
    sim_init(&s, 3, (double[]){0.100, 0.050, 0.010}, 12);
    s.yield[0] = 10;
    converge(&s, (uint32_t[]){4, 4, 4}, "100/50x10/10x10 ms, 12 CPUs, from 4/4/4");
    cr_assert_gt(s.m[1].workers, s.m[0].workers);
}

Test(autoscale, the_bottleneck_takes_from_the_fastest_donor) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.100, 0.050}, 12);
    s.m[0].workers = 4, s.m[1].workers = 4, s.m[2].workers = 4;
    sim_step(&s);
    /* Stage 0 has most to spare (400/s against 80/s for stage 2). */
    cr_assert_eq(s.res.changes[0].stage, 0);
    cr_assert_lt(s.res.changes[0].delta, 0);
    cr_assert_eq(s.res.changes[0].reason, REEL_AUTOSCALE_DONOR);
    cr_assert_gt(s.res.workers[1], 4);
    /* Stage 2 stays faster than the bottleneck: it can give at most one. */
    cr_assert_geq(s.res.workers[2], 3);
}

/* ---- stability ------------------------------------------------------------------------------ */

Test(autoscale, balanced_measurements_change_nothing) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.020, 0.010}, 8);
    s.m[0].workers = 2, s.m[1].workers = 4, s.m[2].workers = 2;
    for (int k = 0; k < 20; k++)
        cr_assert_eq(sim_step(&s), 0, "step %d changed %u stage(s)", k, s.res.n_changes);
    cr_assert_eq(s.m[1].workers, 4);
}

Test(autoscale, a_small_gain_is_not_worth_a_move) {
    /* 30 workers at the bottleneck: one more would gain about 3%. */
    sim s;
    sim_init(&s, 2, (double[]){0.0103, 0.0100}, 60);
    s.m[0].workers = 30, s.m[1].workers = 30;
    cr_assert_eq(sim_step(&s), 0);
    /* A real imbalance moves several workers in one call, once the smoothed
     * rate has followed (a few calls). */
    s.dur[0] = 0.0150;
    uint32_t k = 0;
    while (sim_step(&s) == 0)
        cr_assert_lt(++k, 5, "no reaction to a 50%% slowdown");
    cr_assert_geq(s.res.workers[0], 33, "%u", s.res.workers[0]);
    cr_assert_eq(s.res.n_changes, 2);
    cr_log_info("a stage slowed by half: workers moved on call %u after, 30/30 -> %u/%u", k + 1,
                s.res.workers[0], s.res.workers[1]);
}

/* Direction changes of each stage over steps 1..50 with +-20% noise. */
static uint32_t flips(sim *s, uint32_t steps, uint32_t *moves) {
    int last[8] = {0};
    uint32_t f = 0;
    *moves = 0;
    for (uint32_t k = 0; k < steps; k++) {
        sim_step(s);
        for (uint32_t c = 0; c < s->res.n_changes; c++) {
            const reel_autoscale_change *ch = &s->res.changes[c];
            int dir = ch->delta > 0 ? 1 : -1;
            if (last[ch->stage] && dir != last[ch->stage])
                f++;
            last[ch->stage] = dir;
            (*moves)++;
        }
    }
    return f;
}

Test(autoscale, noisy_measurements_do_not_oscillate) {
    const double durs[][3] = {{0.010, 0.100, 0.020}, {0.010, 0.020, 0.010}, {0.001, 0.004, 0.002}};
    const double cpus[] = {8, 8, 32};
    for (uint32_t t = 0; t < 3; t++) {
        sim s;
        sim_init(&s, 3, durs[t], cpus[t]);
        s.noise = 0.2;
        s.rng += t;
        uint32_t moves, f = flips(&s, 50, &moves);
        uint32_t w[8] = {s.m[0].workers, s.m[1].workers, s.m[2].workers}, tmp[8];
        double got = sim_rate(&s, w, NULL), best = best_static(&s, (uint32_t)cpus[t], tmp, 0);
        cr_log_info("noise +-20%%, case %u: %u change(s), %u direction change(s) in 50 steps; "
                    "final %u/%u/%u, %.1f/s of the best %.1f/s",
                    t, moves, f, w[0], w[1], w[2], got, best);
        cr_assert_leq(f, 1, "case %u: %u direction changes", t, f);
        cr_assert_geq(got, 0.8 * best, "case %u: %.1f/s against the best %.1f/s", t, got, best);
    }
}

/* ---- constraints ---------------------------------------------------------------------------- */

Test(autoscale, every_unfinished_stage_keeps_a_worker) {
    /* Stage 1 is so fast that its one worker is nearly all spare. */
    sim s;
    sim_init(&s, 3, (double[]){0.100, 0.0001, 0.100}, 5);
    s.m[0].workers = 1, s.m[1].workers = 3, s.m[2].workers = 1;
    sim_converge(&s, 10);
    cr_assert_eq(s.m[1].workers, 1);
    /* A stage with no worker (one died) gets one back. */
    s.m[1].workers = 0;
    sim_step(&s);
    cr_assert_eq(s.res.workers[1], 1);
    /* min_workers is a floor too. */
    s.m[1].min_workers = 2;
    sim_step(&s);
    cr_assert_eq(s.res.workers[1], 2);
    bool floor = false;
    for (uint32_t k = 0; k < s.res.n_changes; k++)
        floor |= s.res.changes[k].stage == 1 && s.res.changes[k].reason == REEL_AUTOSCALE_FLOOR;
    cr_assert(floor);
}

Test(autoscale, a_backlog_after_the_source_ended_is_not_shrunk) {
    /* Stage 1 is fast and would be the donor for stage 2. */
    for (int ended = 0; ended < 2; ended++) {
        sim s;
        sim_init(&s, 3, (double[]){0.010, 0.010, 0.100}, 8);
        s.m[0].workers = 1, s.m[1].workers = 5, s.m[2].workers = 2;
        sim_measure(&s);
        s.m[0].finished = ended;
        s.m[0].workers = ended ? 0 : 1;
        s.m[1].source_ended = ended;
        s.m[1].queue_depth = 100;
        cr_assert_eq(reel__autoscale(s.m, 3, &s.node, &s.state, &s.res), 0);
        check_result(&s, s.m, &s.res);
        if (ended)
            cr_assert_eq(s.res.workers[1], 5, "a stage draining its backlog was shrunk");
        else
            cr_assert_lt(s.res.workers[1], 5, "control: the donor should give");
        cr_assert_gt(s.res.workers[2], 2);
    }
}

Test(autoscale, a_drained_stage_gives_its_workers) {
    /* Stage 1's source ended and its queue is empty: nothing more will come. */
    sim s;
    sim_init(&s, 3, (double[]){0.100, 0.100, 0.100}, 8);
    s.m[0].workers = 1, s.m[1].workers = 5, s.m[2].workers = 2;
    sim_measure(&s);
    s.m[0].finished = true;
    s.m[1].source_ended = true;
    s.m[1].queue_depth = 0;
    s.m[2].queue_depth = 50;
    cr_assert_eq(reel__autoscale(s.m, 3, &s.node, &s.state, &s.res), 0);
    check_result(&s, s.m, &s.res);
    cr_assert_eq(s.res.workers[0], 0);
    cr_assert_eq(s.res.workers[1], 1);
    cr_assert_eq(s.res.workers[2], 7);
    cr_assert_eq(s.res.bottleneck, 2);
}

Test(autoscale, finished_stages_drop_to_zero_and_free_their_resources) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.100, 0.020}, 8);
    s.m[0].workers = 3, s.m[1].workers = 3, s.m[2].workers = 2;
    s.m[0].finished = true;
    s.m[0].workers_setup = 1; /* finished before it came up: it goes too */
    s.m[1].source_ended = true;
    sim_measure(&s);
    cr_assert_eq(reel__autoscale(s.m, 3, &s.node, &s.state, &s.res), 0);
    check_result(&s, s.m, &s.res);
    cr_assert_eq(s.res.workers[0], 0);
    cr_assert_eq(s.res.changes[0].stage, 0);
    cr_assert_eq(s.res.changes[0].delta, -3);
    cr_assert_eq(s.res.changes[0].reason, REEL_AUTOSCALE_FINISHED);
    cr_assert_str_eq(reel__autoscale_reason(s.res.changes[0].reason), "finished");
    /* The three CPUs went to the bottleneck (stage 1 still has a backlog). */
    cr_assert_eq(s.res.workers[1] + s.res.workers[2], 8);
    cr_assert_geq(s.res.workers[1], 5);
}

Test(autoscale, fixed_counts_are_left_alone) {
    /* Stage 0 is fixed and fast (the natural donor); stage 2 is fixed and
     * the bottleneck: neither moves. */
    sim s;
    sim_init(&s, 3, (double[]){0.001, 0.100, 0.200}, 8);
    s.m[0].workers = 4, s.m[0].fixed_workers = 4;
    s.m[1].workers = 2;
    s.m[2].workers = 1, s.m[2].fixed_workers = 1;
    for (int k = 0; k < 5; k++)
        sim_step(&s);
    cr_assert_eq(s.m[0].workers, 4);
    cr_assert_eq(s.m[2].workers, 1);
    cr_assert_eq(s.m[1].workers, 2, "no gain is possible, so nothing should move");
    cr_assert_eq(s.res.bottleneck, 2);
    /* A fixed stage with a worker missing gets it back. */
    s.m[0].workers = 3;
    sim_step(&s);
    cr_assert_eq(s.res.workers[0], 4);
    cr_assert_eq(s.res.changes[0].reason, REEL_AUTOSCALE_FIXED);
}

Test(autoscale, workers_in_setup_are_neither_removed_nor_held_against_the_stage) {
    sim s;
    sim_init(&s, 2, (double[]){0.020, 0.040}, 6);
    /* Stage 1 just got 3 workers that are still starting: it completes only
     * a quarter of what 4 workers will, but it is not judged slow for it
     * (judged by its producing worker, it would take one from stage 0). */
    s.m[0].workers = 2, s.m[1].workers = 4, s.m[1].workers_setup = 3;
    sim_measure(&s);
    s.m[1].tasks_per_s = 25;
    s.m[1].busy = 1;
    cr_assert_eq(reel__autoscale(s.m, 2, &s.node, &s.state, &s.res), 0);
    check_result(&s, s.m, &s.res);
    cr_assert_eq(s.res.n_changes, 0);
    /* The same without a mean duration: the rate comes from the producing
     * worker alone. */
    memset(&s.state, 0, sizeof s.state);
    s.m[1].task_s = 0;
    cr_assert_eq(reel__autoscale(s.m, 2, &s.node, &s.state, &s.res), 0);
    cr_assert_eq(s.res.n_changes, 0);
    cr_assert_float_eq(s.state.stage[1].rate, 25.0, 1e-9);

    /* A fast stage in setup gives only its producing workers. */
    sim_init(&s, 2, (double[]){0.001, 0.100}, 8);
    s.m[0].workers = 6, s.m[0].workers_setup = 4, s.m[1].workers = 2;
    sim_step(&s);
    cr_assert_eq(s.res.workers[0], 4);
    cr_assert_eq(s.res.workers[1], 4);
}

Test(autoscale, gpu_and_memory_budgets_hold) {
    /* GPU stage is the bottleneck; 2 GPUs at half a GPU per worker. */
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.500, 0.010}, 16);
    s.node.gpus = 2;
    s.m[1].gpus = 0.5;
    sim_converge(&s, 10);
    cr_assert_eq(s.m[1].workers, 4);
    /* The CPU stages do not grow past need: the GPU stage caps throughput. */
    cr_assert_leq(s.m[0].workers + s.m[2].workers, 4);

    /* Memory: 3 GiB a worker of stage 0 on a 10 GiB node. */
    sim_init(&s, 2, (double[]){0.100, 0.010}, 16);
    s.node.memory = 10 * GIB;
    s.m[0].memory = 3 * GIB;
    s.m[1].memory = 512 * 1024 * 1024;
    sim_converge(&s, 10);
    cr_assert_eq(s.m[0].workers, 3); /* 3 x 3 GiB + 0.5 GiB; a fourth does not fit */
    cr_assert_leq(s.m[0].workers * 3 * GIB + s.m[1].workers * 512ull * 1024 * 1024, 10 * GIB);

    /* Over budget on entry (the node shrank): trimmed from the most spare. */
    sim_init(&s, 2, (double[]){0.010, 0.010}, 4);
    s.m[0].workers = 4, s.m[1].workers = 2;
    sim_step(&s);
    cr_assert_eq(s.res.workers[0], 2);
    cr_assert_eq(s.res.workers[1], 2);
    cr_assert_eq(s.res.changes[0].reason, REEL_AUTOSCALE_OVER_BUDGET);
}

/* A node's CPUs may be overdrawn by less than cpu_overdraw: on 2 CPUs at 95%
 * (1.9), a line of one heavy stage of a whole CPU and light stages of 0.35
 * in all gets a second heavy worker (2.35 < 1.9 + 1), never a third (3.35);
 * without the overdraw it keeps one. A plan over the budget and the
 * overdraw is trimmed as before. */
Test(autoscale, the_cpus_may_be_overdrawn_by_less_than_the_overdraw) {
    for (int overdraw = 0; overdraw <= 1; overdraw++) {
        sim s;
        sim_init(&s, 3, (double[]){0.001, 0.100, 0.002}, 1.9);
        s.node.cpu_overdraw = overdraw;
        s.m[0].cpus = 0.2, s.m[1].cpus = 1, s.m[2].cpus = 0.15;
        sim_converge(&s, 10);
        cr_assert_eq(s.m[1].workers, overdraw ? 2u : 1u, "overdraw %d: %u heavy workers", overdraw,
                     s.m[1].workers);
        cr_assert_eq(s.m[0].workers + s.m[2].workers, 2u);
    }
    /* Exactly the budget plus the overdraw is over it: three of 1 CPU on a
     * budget of 2 with an overdraw of 1 lose one. */
    sim s;
    sim_init(&s, 1, (double[]){0.100}, 2);
    s.node.cpu_overdraw = 1;
    s.m[0].workers = 3;
    sim_step(&s);
    cr_assert_eq(s.res.workers[0], 2);
    cr_assert_eq(s.res.changes[0].reason, REEL_AUTOSCALE_OVER_BUDGET);
    /* A negative or NaN overdraw is refused. */
    reel_node_resources bad = s.node;
    bad.cpu_overdraw = -1;
    reel_autoscale_state st = {0};
    cr_assert_eq(reel__autoscale(s.m, 1, &bad, &st, &s.res), -EINVAL);
    cr_assert(strstr(reel_last_error(), "CPU overdraw"), "%s", reel_last_error());
}

Test(autoscale, max_workers_is_a_ceiling) {
    sim s;
    sim_init(&s, 2, (double[]){0.010, 0.100}, 16);
    s.m[1].max_workers = 3;
    s.m[0].workers = 1, s.m[1].workers = 5;
    sim_converge(&s, 10);
    cr_assert_eq(s.m[1].workers, 3);
}

Test(autoscale, nothing_is_balanced_before_every_stage_is_measured) {
    sim s;
    sim_init(&s, 3, (double[]){0.010, 0.100, 0.020}, 8);
    sim_measure(&s);
    s.m[2].task_s = 0, s.m[2].tasks_per_s = 0; /* no task finished yet */
    cr_assert_eq(reel__autoscale(s.m, 3, &s.node, &s.state, &s.res), 0);
    cr_assert_eq(s.res.n_changes, 0);
    cr_assert_eq(s.state.stage[2].rate_samples, 0);
    sim_step(&s);
    cr_assert_gt(s.res.n_changes, 0);
}

/* ---- refused input -------------------------------------------------------------------------- */

static void refused(reel_stage_measure *m, uint32_t n, const reel_node_resources *node,
                    const char *needle) {
    reel_autoscale_state st = {0}, before;
    reel_autoscale_result r;
    before = st;
    int rc = reel__autoscale(m, n, node, &st, &r);
    cr_assert_eq(rc, -EINVAL, "%s: rc %d", needle, rc);
    cr_assert(memcmp(&st, &before, sizeof st) == 0, "%s: the state changed", needle);
    cr_assert(strstr(reel_last_error(), needle), "'%s' does not say '%s'", reel_last_error(),
              needle);
}

Test(autoscale, bad_input_is_refused) {
    reel_node_resources node = {.cpus = 8, .gpus = 1, .memory = 16 * GIB};
    reel_stage_measure m[REEL_AUTOSCALE_MAX_STAGES + 1];
    for (uint32_t i = 0; i <= REEL_AUTOSCALE_MAX_STAGES; i++)
        m[i] = (reel_stage_measure){.workers = 1, .cpus = 0.1, .task_s = 0.01};
    reel_autoscale_state st = {0};
    reel_autoscale_result r;
    cr_assert_eq(reel__autoscale(m, 2, &node, &st, &r), 0);

    refused(m, 0, &node, "0 stages");
    refused(m, REEL_AUTOSCALE_MAX_STAGES + 1, &node, "stages");
    cr_assert_eq(reel__autoscale(NULL, 2, &node, &st, &r), -EINVAL);
    cr_assert_eq(reel__autoscale(m, 2, NULL, &st, &r), -EINVAL);
    cr_assert_eq(reel__autoscale(m, 2, &node, NULL, &r), -EINVAL);
    cr_assert_eq(reel__autoscale(m, 2, &node, &st, NULL), -EINVAL);
    cr_assert_eq(reel__autoscale(m, 3, &node, &st, &r), -EINVAL, "state is for 2 stages");

    /* One field at a time, on stage 1. */
    const double nan = NAN;
    reel_stage_measure good = m[1];
    m[1].task_s = nan;
    refused(m, 2, &node, "stage 1: a resource or measurement is NaN");
    m[1] = good, m[1].tasks_per_s = -1;
    refused(m, 2, &node, "stage 1: a resource or measurement");
    m[1] = good, m[1].outputs_per_input = INFINITY;
    refused(m, 2, &node, "stage 1: a resource or measurement");
    m[1] = good, m[1].cpus = nan;
    refused(m, 2, &node, "stage 1: a resource or measurement");
    m[1] = good, m[1].busy = 1.5;
    refused(m, 2, &node, "stage 1: busy share 1.5 is above 1");
    m[1] = good, m[1].cpus = 0;
    refused(m, 2, &node, "stage 1: a worker needs CPUs or GPUs");
    m[1] = good, m[1].workers_setup = 2;
    refused(m, 2, &node, "stage 1: 2 workers in setup of 1");
    m[1] = good, m[1].workers = REEL_AUTOSCALE_MAX_WORKERS + 1;
    refused(m, 2, &node, "stage 1: a worker count is above");
    m[1] = good, m[1].min_workers = 3, m[1].max_workers = 2;
    refused(m, 2, &node, "stage 1: min_workers 3 above max_workers 2");
    m[1] = good, m[1].cpus = 16;
    refused(m, 2, &node, "stage 1: 1 worker needs 16.00 CPUs");
    m[1] = good, m[1].gpus = 2;
    refused(m, 2, &node, "stage 1: 1 worker needs");
    m[1] = good, m[1].memory = 17 * GIB;
    refused(m, 2, &node, "stage 1: 1 worker needs");
    m[1] = good, m[1].fixed_workers = 100;
    refused(m, 2, &node, "stage 1: 100 workers need 10.00 CPUs");
    /* Each fits alone, but the floors together do not. */
    m[0].cpus = 5, m[1] = good, m[1].cpus = 4;
    refused(m, 2, &node, "the workers that must stay");
    m[0] = good;
    m[1] = good;
    reel_node_resources bad_node = node;
    bad_node.cpus = nan;
    refused(m, 2, &bad_node, "node CPUs");
    /* A finished stage may be as large as it likes: it is going away. */
    m[1].cpus = 16, m[1].finished = true;
    cr_assert_eq(reel__autoscale(m, 2, &node, &st, &r), 0);
    cr_assert_eq(r.workers[1], 0);

    cr_assert_str_eq(reel__autoscale_reason(REEL_AUTOSCALE_BOTTLENECK), "bottleneck");
    cr_assert_str_eq(reel__autoscale_reason(REEL_AUTOSCALE_REASON_COUNT_), "unknown");
}
