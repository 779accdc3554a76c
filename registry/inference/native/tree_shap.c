/*
 * Exact path-dependent TreeSHAP over the walker's node records, in double precision: the attributions of
 * one row are Shapley values of v(S) = E[f(x) | x_S], the expectation taken over the tree's own training
 * distribution as its node covers record it (a node's zero fraction is its cover over its parent's). The
 * values are those of shap's C `tree_shap_recursive` (Lundberg, Erion and Lee 2018, Algorithm 2), computed
 * in O(nodes x q) a tree instead of its O(leaves x depth^2), by Gauss-Legendre quadrature (the idea of Yu
 * et al. 2022, "Linear TreeSHAP", with quadrature in place of their interpolation).
 *
 * The maths. Along the way to a leaf of value v, merge each column j's edges into z_j (the product of their
 * cover fractions) and o_j (1 where the row takes every one of them, else 0). The leaf adds to column i's
 * attribution
 *     v (o_i - z_i) * integral over [0, 1] of the product over the other columns j of f_j(t) dt,
 *     f_j(t) = z_j (1 - t) + o_j t,
 * because a subset of k of the other d - 1 columns has the Shapley weight k! (d-1-k)! / d! = integral of
 * t^k (1-t)^(d-1-k). The integrand is a polynomial of degree d - 1 with non-negative factors, so a q-point
 * Gauss-Legendre rule (positive weights, exact to degree 2q - 1) gives it exactly once 2q >= d, without
 * cancellation. With P(t) the product of every merged factor from the root to a node, and S(t) the sum over
 * the leaves below a node of v P_leaf(t), the leaves whose last split on column i is the edge into node n
 * add to column i
 *     sum over the points of weight * (o_i - z_i) / f_i(t) * (S_n(t) - what n's deeper splits on i claimed),
 * where (o - z) / f is -1 / (1 - t) whatever z for an edge the row does not take (o = 0). So one walk of
 * every node sets P on the way down and S on the way back, O(q) a node and output: a split on a column met
 * before replaces that column's factor in P (its old one divided out), a child whose factor is 0 for every
 * t (z = 0 and o = 0) adds nothing and is not walked, and each column's attributions are summed per
 * point and added up once a row.
 *
 * The row goes the way the walker sends it (tree_walk.c: x <= threshold, a NaN where NAN_LEFT says; for
 * wide records the walker's own function, records.h's wide_goes_left: categorical sets of any number of
 * blocks, ZERO_MISSING, and with LIGHTGBM_ROWS values within kZeroThreshold read as zero), so the
 * attributions explain exactly the answers the walker gives.
 *
 * Like the walker, it trusts nothing it reads from the records, which may be a mapped file changed after
 * tree_walk.py checked it: every root, column, child, output column and categorical set is checked as it is
 * read (once), a child must come after its node, a path deeper than the depth measured when the model
 * was loaded stops (its scratch space is sized for that depth), and a walk that visits more nodes than
 * there are stops. Whatever the records hold, every read is inside the arrays and every call ends.
 *
 * And every call ends on time: given a deadline (CLOCK_MONOTONIC seconds, the clock of Python's
 * time.monotonic(); 0: none), a walk reads the clock every CHECK_EVERY nodes or leaves and at every tree, and
 * stops with TIMED_OUT once it has passed (phi then holds the rows done so far, which the caller drops).
 */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "low_priority.h"
#include "records.h"

/* Nodes or leaves walked between two readings of the clock: a reading costs about 20 ns (the vDSO), a node of a
   deep tree's walk far more, so the check costs nothing measurable and a walk stops within microseconds. */
#define CHECK_EVERY 256

/* Whether `deadline` (CLOCK_MONOTONIC seconds; 0 or less: none) has passed. */
static int past(double deadline) {
    if (deadline <= 0)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec >= deadline;
}

/* Two of the rule's points, worked on at once (SSE2's width; GCC's and Clang's vector extension). */
typedef double pair_t __attribute__((vector_size(16)));

/* What one (row, tree) walk reads, where it adds, and the scratch space it keeps its sums in. Every
   per-point array is [q / 2] pairs, every per-point sum [value_width][q / 2]. */
typedef struct {
    const node_t *nodes;
    const wide_node_t *wide;  /* one of nodes and wide is NULL */
    uint64_t n_nodes, n_features, n_bitsets;
    const double *value, *cover;
    int64_t value_width, max_depth;
    const uint32_t *bitsets;
    int lightgbm_rows;        /* LIGHTGBM_ROWS: values within kZeroThreshold of zero read as zero */
    const float *row32;
    const double *row64;
    pair_t *phi;              /* this row's per-point sums [n_features][n_outputs][q], offset to the tree's
                                 output column */
    int64_t n_outputs;
    uint64_t visits;          /* nodes visited by this walk: a tree visits each of its nodes once */
    uint64_t ticks;           /* nodes visited by the call, for the deadline's checks */
    double deadline;          /* CLOCK_MONOTONIC seconds; 0: none */
    /* The quadrature: points t in (0, 1) and their weights (summing to 1); 1 - t; and the gain of an edge
       the row does not take, -weight / (1 - t) (whatever z). */
    int64_t q;
    const pair_t *t, *weight, *one_minus_t, *cold_gain;
    /* Each column's state on the way from the root to the node visited: the level of the last edge that
       split on it (0: none did), and its merged fractions z and o (1 and 1 where none did). */
    int64_t *last;
    double *zero;
    unsigned char *one;
    /* Per level, for the node at that level and the edge into it: P; 1 / the edge's factor and the edge's
       gain weight * (o - z) / f (set where o is 1); the node's sums S (where it is not a leaf); the sums the
       edge's deeper splits on the same column claimed, and whether any did. */
    pair_t *product, *inverse, *gain, *sums, *claimed;
    unsigned char *any_claimed;
    const pair_t *zeros;      /* value_width x q / 2 pairs of zeros */
} walk_t;

/* Node `at`'s children, read once: a leaf's are itself, any other node's come after it inside the records. */
static inline int read_children(const walk_t *w, uint64_t at, int64_t child[2]) {
    const int32_t *children = w->wide ? w->wide[at].child : w->nodes[at].child;
    child[0] = READ_ONCE(children[0]);
    child[1] = READ_ONCE(children[1]);
    if (child[0] == (int64_t)at && child[1] == (int64_t)at)
        return WALKED;
    for (int side = 0; side < 2; side++)
        if (child[side] <= (int64_t)at || (uint64_t)child[side] >= w->n_nodes)
            return BAD_CHILD;
    return WALKED;
}

/* Status of reading node `at` (not a leaf) for the row: its column, and where the row goes (1: child[1]),
 * decided for wide records by the walker's own rule (records.h: wide_goes_left). */
static inline int read_split(const walk_t *w, uint64_t at, int64_t *column, int *left) {
    const uint32_t feature = w->wide ? READ_ONCE(w->wide[at].feature) : READ_ONCE(w->nodes[at].feature);
    *column = feature & ~(w->wide ? WIDE_FLAGS : NAN_LEFT);
    if ((uint64_t)*column >= w->n_features)
        return BAD_COLUMN;
    if (!w->wide) {
        const float x = w->row32[*column];
        *left = isnan(x) ? (int)(feature >> 31) : x <= w->nodes[at].threshold;
        return WALKED;
    }
    *left = wide_goes_left(w->wide + at, feature, w->row64[*column], w->lightgbm_rows, w->bitsets, w->n_bitsets);
    return *left < 0 ? BAD_BITSET : WALKED;
}

/*
 * The q-point Gauss-Legendre rule on [0, 1]: points t (ascending) and weights, exact for polynomials of
 * degree up to 2q - 1. Newton's method from the usual cosine guesses finds each root x of the Legendre
 * polynomial P_q on [-1, 1]; its pair of points is (1 -+ x) / 2, of weight 1 / ((1 - x^2) P_q'(x)^2).
 */
static void gauss_legendre(int64_t q, double *t, double *weight) {
    for (int64_t i = 0; i < (q + 1) / 2; i++) {
        double x = cos(3.14159265358979323846 * ((double)i + 0.75) / ((double)q + 0.5)), derivative = 1;
        /* Newton converges quadratically: one step past a step below 1e-14 reaches the rounding. */
        for (int iteration = 0, settled = 0; iteration < 100 && settled < 2; iteration++) {
            double p = 1, below = 0;
            for (int64_t j = 1; j <= q; j++) {
                const double two_below = below;
                below = p;
                p = ((double)(2 * j - 1) * x * below - (double)(j - 1) * two_below) / (double)j;
            }
            derivative = (double)q * (x * p - below) / (x * x - 1);
            const double step = p / derivative;
            x -= step;
            settled += fabs(step) < 1e-14;
        }
        t[i] = (1 - x) / 2;
        t[q - 1 - i] = (1 + x) / 2;
        weight[i] = weight[q - 1 - i] = 1 / ((1 - x * x) * derivative * derivative);
    }
}

typedef int (*visit_t)(walk_t *w, uint64_t at, const int64_t child[2], int64_t level, pair_t *sums);

/* Where an edge's leaves go once its child's sums s are known (child_sums, or for a leaf its values times
   the edge's P, made here): the column's attribution gains gain * (s - what deeper splits on the column
   claimed), the earlier edge on the column claims s, and s is added to the node's sums (begun from
   `begun`). */
static inline __attribute__((always_inline)) void absorb(const int64_t pairs, const int64_t width, const int is_leaf,
                                                         const double *leaf, const pair_t *product,
                                                         const pair_t *child_sums,
                                                         const pair_t *gain, const pair_t *claimed, pair_t *target,
                                                         const pair_t *earlier_begun, pair_t *earlier,
                                                         const pair_t *begun, pair_t *sums) {
    #pragma GCC unroll 16
    for (int64_t j = 0; j < width; j++) {
        #pragma GCC unroll 16
        for (int64_t i = 0; i < pairs; i++) {
            const int64_t k = j * pairs + i;
            const pair_t s = is_leaf ? leaf[j] * product[i] : child_sums[k];
            target[k] += gain[i] * (s - claimed[k]);
            earlier[k] = earlier_begun[k] + s;
            sums[k] = begun[k] + s;
        }
    }
}

/*
 * The walk below split node `at`, whose children (read and checked) are `child`, `level` nodes below the
 * root, whose P is the level's product: sets `sums` to S, and adds each split's attributions, per point,
 * to phi. Arrays over the points are `pairs` pairs of doubles, worked on two at a time (elementwise: the
 * same arithmetic as one at a time). `pairs` and `width` are the walk's (constants where `visit` is one of
 * the copies below, so that the loops unroll), and `visit` is this function for the children.
 */
static inline __attribute__((always_inline)) int visit_with(walk_t *w, uint64_t at, const int64_t child[2],
                                                            int64_t level, pair_t *sums, const int64_t pairs,
                                                            const int64_t width, visit_t visit) {
    if (level + 1 > w->max_depth)
        return TOO_DEEP;
    int64_t column = 0;
    int left = 0;
    int status = read_split(w, at, &column, &left);
    if (status != WALKED)
        return status;
    const int64_t size = pairs * width;
    /* The column's state above this node, put back before returning: the level of its last edge (0: none;
       level 0's inverse holds ones, and what it claims is never read), z and o. */
    const int64_t previous = w->last[column];
    const double zero = w->zero[column];
    const unsigned char one = w->one[column];
    const pair_t *divided = w->inverse + previous * pairs, *product = w->product + level * pairs;
    pair_t *earlier = w->claimed + previous * size;
    pair_t *next_product = w->product + (level + 1) * pairs, *inverse = w->inverse + (level + 1) * pairs;
    pair_t *gain = w->gain + (level + 1) * pairs, *second = w->sums + (level + 1) * size;
    pair_t *claimed = w->claimed + (level + 1) * size, *target = w->phi + column * w->n_outputs * pairs;
    const pair_t *begun = w->zeros;
    const uint64_t hot = (uint64_t)child[left], cold = (uint64_t)child[!left];  /* the row's child first */
    /* Both children's fractions of this node's cover in one division. */
    const pair_t fractions = (pair_t){w->cover[hot], w->cover[cold]} / w->cover[at];
    for (int side = 0; side < 2; side++) {
        const uint64_t next = side ? cold : hot;
        const unsigned char next_one = one && !side;
        const double fraction = fractions[side], next_zero = zero * fraction;
        if (!next_one && next_zero == 0)
            continue;  /* the edge's factor is 0 for every t: nothing below it adds anything */
        int64_t grandchild[2];
        if (++w->visits > w->n_nodes)
            return BAD_CHILD;
        if ((++w->ticks & (CHECK_EVERY - 1)) == 0 && past(w->deadline))
            return TIMED_OUT;
        status = read_children(w, next, grandchild);
        if (status != WALKED)
            return status;
        /* The edge's factor f replaces the column's earlier one in P; its gain is weight (o - z) / f. */
        const pair_t *edge_gain = w->cold_gain;
        if (next_one) {  /* f = z + (1 - z) t */
            #pragma GCC unroll 16
            for (int64_t i = 0; i < pairs; i++) {
                const pair_t factor = next_zero + (1 - next_zero) * w->t[i];
                inverse[i] = 1 / factor;
                gain[i] = w->weight[i] * (1 - next_zero) * inverse[i];
                next_product[i] = product[i] * divided[i] * factor;
            }
            edge_gain = gain;
        } else if (!one) {  /* f = z (1 - t), the earlier one times the fraction */
            #pragma GCC unroll 16
            for (int64_t i = 0; i < pairs; i++)
                next_product[i] = product[i] * fraction;
        } else {  /* f = z (1 - t) after an f of o = 1, or none */
            #pragma GCC unroll 16
            for (int64_t i = 0; i < pairs; i++)
                next_product[i] = product[i] * divided[i] * (next_zero * w->one_minus_t[i]);
        }
        const pair_t *earlier_begun = w->any_claimed[previous] ? earlier : w->zeros;
        const double *leaf = w->value + next * width;
        if (grandchild[0] == (int64_t)next) {  /* a leaf */
            absorb(pairs, width, 1, leaf, next_product, second, edge_gain, w->zeros, target, earlier_begun,
                   earlier, begun, sums);
        } else {
            w->last[column] = level + 1;
            w->zero[column] = next_zero;
            w->one[column] = next_one;
            w->any_claimed[level + 1] = 0;
            status = visit(w, next, grandchild, level + 1, second);
            if (status != WALKED)
                return status;
            absorb(pairs, width, 0, leaf, next_product, second, edge_gain,
                   w->any_claimed[level + 1] ? claimed : w->zeros, target, earlier_begun, earlier, begun, sums);
        }
        w->any_claimed[previous] = previous > 0;
        begun = sums;
    }
    if (begun != sums)  /* neither child was walked */
        #pragma GCC unroll 16
        for (int64_t i = 0; i < size; i++)
            sums[i] = (pair_t){0, 0};
    w->last[column] = previous;
    w->zero[column] = zero;
    w->one[column] = one;
    return WALKED;
}

/* The walk for rules of 4, 6, 8, 12 and 16 points (paths of up to 8, 12, 16, 24 and 32 distinct columns: a
   rule of more points than a path needs is as exact, and costs its points' work) and of any other number,
   each for trees of one output, of two (a binary classifier's probabilities) and of any other number:
   constants unroll the loops. */
#define VISIT(name, pairs, width)                                                                           \
    static int name(walk_t *w, uint64_t at, const int64_t child[2], int64_t level, pair_t *sums) {          \
        return visit_with(w, at, child, level, sums, pairs, width, name);                                   \
    }
VISIT(visit_4_1, 2, 1)
VISIT(visit_4_2, 2, 2)
VISIT(visit_4_any, 2, w->value_width)
VISIT(visit_6_1, 3, 1)
VISIT(visit_6_2, 3, 2)
VISIT(visit_6_any, 3, w->value_width)
VISIT(visit_8_1, 4, 1)
VISIT(visit_8_2, 4, 2)
VISIT(visit_8_any, 4, w->value_width)
VISIT(visit_12_1, 6, 1)
VISIT(visit_12_2, 6, 2)
VISIT(visit_12_any, 6, w->value_width)
VISIT(visit_16_1, 8, 1)
VISIT(visit_16_2, 8, 2)
VISIT(visit_16_any, 8, w->value_width)
VISIT(visit_any_1, w->q / 2, 1)
VISIT(visit_any_2, w->q / 2, 2)
VISIT(visit_any_any, w->q / 2, w->value_width)

/* The rule's number of points (even) for paths of up to `distinct` columns, and the walk that uses it: the
   fewest of the compiled rules that is exact (a depth-10 tree takes 6 points, not 8), else any number. */
static int64_t points_for(int64_t distinct, int64_t value_width, visit_t *visit) {
    static const int64_t compiled[] = {4, 6, 8, 12, 16};
    static const visit_t walks[6][3] = {{visit_4_1, visit_4_2, visit_4_any}, {visit_6_1, visit_6_2, visit_6_any},
                                        {visit_8_1, visit_8_2, visit_8_any}, {visit_12_1, visit_12_2, visit_12_any},
                                        {visit_16_1, visit_16_2, visit_16_any},
                                        {visit_any_1, visit_any_2, visit_any_any}};
    const int64_t needed = (distinct + 1) / 2;
    int64_t rule = 0;
    while (rule < 5 && compiled[rule] < needed)
        rule++;
    *visit = walks[rule][value_width < 3 ? value_width - 1 : 2];
    return rule < 5 ? compiled[rule] : needed + needed % 2;
}

/*
 * expected[n] = the cover-weighted mean of the leaves under node n (each child weighted by its cover over
 * n's, as the walk weighs it), and depth[n] the longest way from a root to n (depth zeroed by the caller);
 * *max_depth the deepest. Nodes come after their parents, so one pass up and one down. Returns WALKED or
 * what is wrong with the records.
 */
int64_t tree_shap_expectations(const void *nodes, int64_t wide, int64_t n_nodes, const double *value,
                               int64_t value_width, const double *cover, double *expected, int64_t *depth,
                               int64_t *max_depth) {
    const walk_t w = {.nodes = wide ? NULL : nodes, .wide = wide ? nodes : NULL, .n_nodes = (uint64_t)n_nodes};
    *max_depth = 0;
    for (int64_t n = 0; n < n_nodes; n++) {
        int64_t child[2];
        const int status = read_children(&w, (uint64_t)n, child);
        if (status != WALKED)
            return status;
        if (child[0] == n)
            continue;
        for (int side = 0; side < 2; side++)
            if (depth[child[side]] < depth[n] + 1)
                depth[child[side]] = depth[n] + 1;
        if (depth[n] + 1 > *max_depth)
            *max_depth = depth[n] + 1;
    }
    for (int64_t n = n_nodes - 1; n >= 0; n--) {
        int64_t child[2];
        const int status = read_children(&w, (uint64_t)n, child);
        if (status != WALKED)
            return status;
        double *out = expected + n * value_width;
        if (child[0] == n) {
            memcpy(out, value + n * value_width, (size_t)value_width * sizeof(double));
            continue;
        }
        const double *first = expected + child[0] * value_width, *second = expected + child[1] * value_width;
        const double first_share = cover[child[0]] / cover[n], second_share = cover[child[1]] / cover[n];
        for (int64_t j = 0; j < value_width; j++)
            out[j] = first_share * first[j] + second_share * second[j];
    }
    return WALKED;
}

/*
 * phi[n_rows][n_features][n_outputs] += every tree's attributions for rows (float32 rows for node_t
 * records, float64 for wide ones); each tree adds its value_width values to the outputs from its column
 * (columns[tree], or 0 where columns is NULL); options may be LIGHTGBM_ROWS (wide records), as for
 * tree_walk_boosted. max_depth is the records' depth as tree_shap_expectations measured it; a path deeper
 * stops the call. Returns WALKED, or what was wrong with the records (phi is then unspecified), TOO_DEEP when
 * its scratch space could not be had, or TIMED_OUT once `deadline` (CLOCK_MONOTONIC seconds; 0: none) passed.
 */
int64_t tree_shap(const void *nodes, int64_t wide, int64_t n_nodes, const int32_t *roots, const int32_t *columns,
                  int64_t n_trees, const double *value, int64_t value_width, const double *cover,
                  const uint32_t *bitsets, int64_t n_bitsets, int64_t max_depth, int64_t options, const void *rows,
                  int64_t n_rows, int64_t n_features, int64_t n_outputs, double *phi, double deadline) {
    if (max_depth < 0 || max_depth > 100000 || n_features < 0 || n_features > INT32_MAX || value_width < 1
        || value_width > 1 << 20 || n_outputs < value_width || n_outputs > INT32_MAX)
        return TOO_DEEP;
    /* No path has more distinct columns than levels or columns. */
    visit_t visit;
    const int64_t q = points_for(max_depth < n_features ? max_depth : n_features, value_width, &visit), pairs = q / 2;
    const int64_t levels = max_depth + 2;
    /* Pairs per level: product, inverse and gain, sums and claimed (value_width each); then the row's
       per-point attributions [n_features][n_outputs], the rule's four arrays and the zeros. With the bounds
       above only the row's can overflow. */
    const size_t per_level = (size_t)pairs * (size_t)(3 + 2 * value_width);
    size_t per_row, count;
    if (__builtin_mul_overflow((size_t)n_features * (size_t)n_outputs, (size_t)pairs, &per_row)
        || __builtin_add_overflow(per_level * (size_t)levels + (size_t)pairs * (size_t)(4 + value_width), per_row,
                                  &count)
        || count > SIZE_MAX / sizeof(pair_t))
        return TOO_DEEP;
    pair_t *scratch = aligned_alloc(_Alignof(pair_t), count * sizeof(pair_t));
    double *zero = malloc(((size_t)n_features + 2 * (size_t)q) * sizeof(double));
    int64_t *last = malloc(((size_t)n_features + 1) * sizeof(int64_t));
    unsigned char *flags = malloc((size_t)levels + (size_t)n_features + 1);
    int status = scratch && zero && last && flags ? WALKED : TOO_DEEP;
    if (status != WALKED)
        goto done;
    pair_t *t = scratch, *weight = t + pairs, *one_minus_t = weight + pairs, *cold_gain = one_minus_t + pairs;
    pair_t *zeros = cold_gain + pairs, *row_phi = zeros + pairs * value_width;
    double *points = zero + n_features, *weights = points + q;
    gauss_legendre(q, points, weights);
    for (int64_t i = 0; i < pairs; i++) {
        t[i] = (pair_t){points[2 * i], points[2 * i + 1]};
        weight[i] = (pair_t){weights[2 * i], weights[2 * i + 1]};
        one_minus_t[i] = 1 - t[i];
        cold_gain[i] = -weight[i] / one_minus_t[i];
    }
    walk_t w = {.nodes = wide ? NULL : nodes, .wide = wide ? nodes : NULL, .n_nodes = (uint64_t)n_nodes,
                .n_features = (uint64_t)n_features, .n_bitsets = (uint64_t)n_bitsets, .value = value,
                .cover = cover, .value_width = value_width, .max_depth = max_depth, .bitsets = bitsets,
                .lightgbm_rows = (options & LIGHTGBM_ROWS) != 0, .n_outputs = n_outputs, .q = q, .t = t,
                .weight = weight, .one_minus_t = one_minus_t, .cold_gain = cold_gain, .zeros = zeros, .last = last,
                .zero = zero, .one = flags, .any_claimed = flags + n_features, .deadline = deadline};
    w.product = row_phi + per_row;
    w.inverse = w.product + levels * pairs;
    w.gain = w.inverse + levels * pairs;
    w.sums = w.gain + levels * pairs;
    w.claimed = w.sums + levels * pairs * value_width;
    for (int64_t i = 0; i < pairs * value_width; i++)
        zeros[i] = (pair_t){0, 0};
    for (int64_t i = 0; i < n_features; i++) {
        last[i] = 0;
        zero[i] = flags[i] = 1;
    }
    for (int64_t i = 0; i < pairs; i++)
        w.product[i] = w.inverse[i] = (pair_t){1, 1};  /* the root's P, and no factor to divide out */
    flags[n_features] = 0;  /* level 0 holds no claims */
    for (int64_t r = 0; r < n_rows && status == WALKED; r++) {
        if (wide)
            w.row64 = (const double *)rows + r * n_features;
        else
            w.row32 = (const float *)rows + r * n_features;
        for (size_t i = 0; i < per_row; i++)
            row_phi[i] = (pair_t){0, 0};
        for (int64_t tree = 0; tree < n_trees; tree++) {
            const int32_t root = READ_ONCE(roots[tree]);
            if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes) {
                status = BAD_ROOT;
                break;
            }
            const int32_t column = columns ? READ_ONCE(columns[tree]) : 0;
            if (column < 0 || column + value_width > n_outputs) {
                status = BAD_OUTPUT;
                break;
            }
            if ((++w.ticks & (CHECK_EVERY - 1)) == 0 && past(deadline)) {
                status = TIMED_OUT;
                break;
            }
            w.phi = row_phi + column * pairs;
            w.visits = 1;
            int64_t child[2];
            status = read_children(&w, (uint64_t)root, child);
            if (status == WALKED && child[0] != root)  /* a single leaf adds nothing */
                status = visit(&w, (uint64_t)root, child, 0, w.sums);
            if (status != WALKED)
                break;
        }
        double *out = phi + r * n_features * n_outputs;
        for (int64_t k = 0; k < n_features * n_outputs; k++) {
            double total = 0;
            for (int64_t i = 0; i < pairs; i++)
                total += row_phi[k * pairs + i][0] + row_phi[k * pairs + i][1];
            out[k] += total;
        }
    }
done:
    free(scratch);
    free(zero);
    free(last);
    free(flags);
    return status;
}


/*
 * The path copy: the same attributions for node_t records (trees and random forests), computed leaf by leaf
 * from a private copy made and checked once (tree_shap_paths_make) rather than node by node from the records.
 *
 * The maths above, read per leaf: a leaf of value v whose path merges the distinct columns j into factors
 * f_j(t) = z_j (1 - t) + o_j t adds to each of them
 *     v (o_j - z_j) * sum over the points of weight * (the product of the other columns' factors),
 * the product of the others taken as the product of the factors before j times that of those after it (no
 * division). z_j and a path's columns do not depend on the row, so the copy keeps them per leaf; o_j does: it
 * is 1 where the row takes every edge of the path on column j. A row's walk of a tree first sends it down every
 * split (parents before children), marking in each node's word the levels of the edges above it that the row
 * does not take; a leaf's o_j is 1 where its word and column j's levels have no bit in common. Nothing in a
 * tree's pass branches on the row, and nothing is read from the records: a pass over its splits, then one over
 * its leaves' columns, the sums per point kept per column as the walk above keeps them. The rule's points are
 * as few as the copy's longest list of a path's columns needs.
 *
 * Paths of more than 64 levels, trees or splits sharing nodes, and copies of more than max_bytes get no copy:
 * the walk above explains them from the records.
 */
/* Four of the rule's points, worked on at once (one AVX2 register). */
typedef double quad_t __attribute__((vector_size(32)));

typedef struct {
    float threshold;      /* the row goes to child[1] where x <= threshold, a NaN where nan_left says */
    uint32_t column;
    int32_t nan_left, depth;
    int32_t slot;         /* this split's node among its tree's, whose word the walk keeps */
    int32_t child[2];     /* its children's nodes, as node_t's: [1] where x <= threshold goes */
} path_split_t;

typedef struct {
    double zero;          /* z: the product of the cover fractions of the path's edges on the column */
    uint64_t levels;      /* bit d set: the edge out of the path's split at depth d is on the column */
    int64_t column;
} path_entry_t;

typedef struct {
    int64_t first_entry;  /* its path's columns: entries[first_entry, first_entry + n_entries) */
    int32_t slot, n_entries;
} path_leaf_t;

typedef struct {
    int64_t n_trees, n_features, width, q, n_slots, most_entries;  /* n_slots: the most nodes in one tree */
    int64_t *first_split, *first_leaf;  /* [n_trees + 1]: tree t's splits, and its leaves */
    int32_t *column;                    /* [n_trees]: the first output tree t adds to */
    path_split_t *splits;
    path_leaf_t *leaves;
    path_entry_t *entries;
    double *values;                     /* [leaves][width] */
    int64_t n_splits, n_leaves, n_entries, cap_splits, cap_leaves, cap_entries, cap_values;
    size_t bytes, max_bytes;
} paths_t;

/* The leaf by leaf pass takes four points a vector: with AVX2 it takes 206 us of CPU a row of a 100-tree forest of
   depth 10 against 540 for the walk of the records (bench.explain), and at SSE2's width (two operations for each
   four points) it was slower than that walk. Where the CPU has no AVX2 (and off x86) no copy is made. */
#if defined(__x86_64__) || defined(__i386__)
#define PATHS_TARGET __attribute__((target("avx2")))
static int paths_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#else
#define PATHS_TARGET
static int paths_supported(void) { return 0; }
#endif

/* Whether tree_shap_paths_make makes copies on this CPU. */
int64_t tree_shap_paths_supported(void) { return paths_supported(); }

/* A copy not made, which is no error: the walk above explains the records. */
#define NO_COPY (-1)
/* The most vectors of four points a path copy's rule takes: paths of up to 64 levels have at most 64 columns. */
#define MOST_QUADS 8

/* Free a copy made by tree_shap_paths_make (NULL: nothing). */
void tree_shap_paths_free(paths_t *paths) {
    if (paths == NULL)
        return;
    free(paths->first_split);
    free(paths->first_leaf);
    free(paths->column);
    free(paths->splits);
    free(paths->leaves);
    free(paths->entries);
    free(paths->values);
    free(paths);
}

/* Room for `needed` items of `size` bytes in *array, doubled as needed: NO_COPY past the copy's max_bytes,
   NO_MEMORY where there is none. */
static int reserve(void **array, int64_t needed, int64_t *capacity, size_t size, paths_t *paths) {
    if (needed <= *capacity)
        return WALKED;
    int64_t wanted = *capacity ? *capacity : 256;
    while (wanted < needed)
        wanted *= 2;
    const size_t more = (size_t)(wanted - *capacity) * size;
    if (more > paths->max_bytes - paths->bytes)
        return NO_COPY;
    void *bigger = realloc(*array, (size_t)wanted * size);
    if (bigger == NULL)
        return NO_MEMORY;
    *array = bigger;
    *capacity = wanted;
    paths->bytes += more;
    return WALKED;
}

/* One tree's records as they are copied: the path to the node copied (its columns, merged), and the nodes. */
typedef struct {
    const node_t *nodes;
    const double *cover, *value;
    int64_t n_nodes, n_features, visits, slots;
    path_entry_t path[64];
    int64_t path_length;
} copying_t;

/* Copy record `at` (the root, or a checked child) as node `slot` of its tree, `depth` splits below the root;
   WALKED, what is wrong with the records, NO_MEMORY or NO_COPY. */
static int copy_node(paths_t *paths, copying_t *c, int64_t at, int32_t slot, int32_t depth) {
    if (++c->visits > c->n_nodes)
        return NO_COPY;  /* splits sharing nodes: the records hold each once */
    const node_t *node = c->nodes + at;
    const int64_t above = READ_ONCE(node->child[0]), below = READ_ONCE(node->child[1]);
    int status;
    if (above == at && below == at) {
        const int64_t width = paths->width;
        if ((status = reserve((void **)&paths->leaves, paths->n_leaves + 1, &paths->cap_leaves, sizeof(path_leaf_t),
                              paths)) != WALKED
            || (status = reserve((void **)&paths->values, (paths->n_leaves + 1) * width, &paths->cap_values,
                                 sizeof(double), paths)) != WALKED
            || (status = reserve((void **)&paths->entries, paths->n_entries + c->path_length, &paths->cap_entries,
                                 sizeof(path_entry_t), paths)) != WALKED)
            return status;
        paths->leaves[paths->n_leaves] = (path_leaf_t){paths->n_entries, slot, (int32_t)c->path_length};
        memcpy(paths->values + paths->n_leaves * width, c->value + at * width, sizeof(double) * (size_t)width);
        if (c->path_length)  /* a tree that is one leaf has no path, and perhaps no entries yet (NULL) */
            memcpy(paths->entries + paths->n_entries, c->path, sizeof(path_entry_t) * (size_t)c->path_length);
        paths->n_leaves++;
        paths->n_entries += c->path_length;
        if (c->path_length > paths->most_entries)
            paths->most_entries = c->path_length;
        return WALKED;
    }
    if (above <= at || below <= at || above >= c->n_nodes || below >= c->n_nodes)
        return BAD_CHILD;
    const uint32_t feature = READ_ONCE(node->feature);
    const uint32_t column = feature & ~NAN_LEFT;
    if ((int64_t)column >= c->n_features)
        return BAD_COLUMN;
    if (depth >= 64)
        return NO_COPY;
    const double cover = c->cover[at];
    if (!(cover > 0) || !isfinite(cover))
        return BAD_CHILD;
    if ((status = reserve((void **)&paths->splits, paths->n_splits + 1, &paths->cap_splits, sizeof(path_split_t),
                          paths)) != WALKED)
        return status;
    const int32_t first = (int32_t)c->slots;  /* its children's nodes: child[1]'s, then child[0]'s */
    c->slots += 2;
    paths->splits[paths->n_splits++] = (path_split_t){node->threshold, column, (int32_t)(feature >> 31), depth, slot,
                                                      {first + 1, first}};
    for (int side = 1; side >= 0; side--) {
        const int64_t child = side ? below : above;
        const double share = c->cover[child];
        if (!(share >= 0) || !isfinite(share))
            return BAD_CHILD;
        const double fraction = share / cover;
        /* the edge merges into its column's entry on the path, or begins one */
        int64_t k = 0;
        while (k < c->path_length && c->path[k].column != (int64_t)column)
            k++;
        const int begun = k == c->path_length;
        const path_entry_t kept = begun ? (path_entry_t){1, 0, column} : c->path[k];
        c->path[k] = (path_entry_t){kept.zero * fraction, kept.levels | (uint64_t)1 << depth, column};
        c->path_length += begun;
        status = copy_node(paths, c, child, side ? first : first + 1, depth + 1);
        c->path_length -= begun;
        c->path[k] = kept;
        if (status != WALKED)
            return status;
    }
    return WALKED;
}

/*
 * A private copy of node_t records (tree_shap's arguments for them, and max_bytes) for tree_shap_paths; NULL with
 * *status WALKED where none is made (see above), NO_MEMORY, or what is wrong with the records. Every root, child
 * and column is checked as it is read, once, and every split's cover must be positive. The caller frees it with
 * tree_shap_paths_free.
 */
paths_t *tree_shap_paths_make(const node_t *nodes, int64_t n_nodes, const int32_t *roots, const int32_t *columns,
                              int64_t n_trees, const double *value, int64_t value_width, const double *cover,
                              int64_t n_features, int64_t max_bytes, int64_t *status) {
    *status = WALKED;
    if (!paths_supported() || n_trees <= 0 || n_nodes <= 0 || n_nodes > INT32_MAX / 2 || n_features <= 0
        || value_width < 1 || value_width > 1 << 20 || max_bytes <= 0)
        return NULL;
    *status = NO_MEMORY;
    paths_t *paths = calloc(1, sizeof(paths_t));
    copying_t *c = malloc(sizeof(copying_t));
    if (paths == NULL || c == NULL)
        goto failed;
    paths->n_trees = n_trees;
    paths->n_features = n_features;
    paths->width = value_width;
    paths->max_bytes = (size_t)max_bytes;
    paths->first_split = malloc(sizeof(int64_t) * (size_t)(n_trees + 1));
    paths->first_leaf = malloc(sizeof(int64_t) * (size_t)(n_trees + 1));
    paths->column = malloc(sizeof(int32_t) * (size_t)n_trees);
    if (paths->first_split == NULL || paths->first_leaf == NULL || paths->column == NULL)
        goto failed;
    *c = (copying_t){.nodes = nodes, .cover = cover, .value = value, .n_nodes = n_nodes, .n_features = n_features};
    for (int64_t t = 0; t < n_trees; t++) {
        const int32_t root = READ_ONCE(roots[t]);
        const int32_t column = columns ? READ_ONCE(columns[t]) : 0;
        if (root < 0 || root >= n_nodes) {
            *status = BAD_ROOT;
            goto failed;
        }
        if (column < 0) {
            *status = BAD_OUTPUT;
            goto failed;
        }
        paths->column[t] = column;
        paths->first_split[t] = paths->n_splits;
        paths->first_leaf[t] = paths->n_leaves;
        c->visits = c->path_length = 0;
        c->slots = 1;
        const int copied = copy_node(paths, c, root, 0, 0);
        if (copied != WALKED) {
            *status = copied == NO_COPY ? WALKED : copied;
            goto failed;
        }
        if (c->slots > paths->n_slots)
            paths->n_slots = c->slots;
    }
    paths->first_split[n_trees] = paths->n_splits;
    paths->first_leaf[n_trees] = paths->n_leaves;
    /* exact for paths of up to most_entries columns: a polynomial of degree most_entries - 1 */
    const int64_t needed = (paths->most_entries + 1) / 2;
    paths->q = needed < 4 ? 4 : (needed + 3) / 4 * 4;
    free(c);
    *status = WALKED;
    return paths;
failed:
    free(c);
    tree_shap_paths_free(paths);
    return NULL;
}

/* o: 1.0 where the row took every edge of a column (none of its levels missed), else 0.0, made from the bits of
   1.0 with no branch (a compiler's choice between two constants is a branch the row decides, and mispredicts). */
static inline double taken(uint64_t missed, uint64_t levels) {
    const uint64_t bits = UINT64_C(0x3FF0000000000000) & -(uint64_t)((missed & levels) == 0);
    double one;
    memcpy(&one, &bits, sizeof one);
    return one;
}

/*
 * One row's pass of tree t of the copy, adding its attributions per point to row_phi[n_features][n_outputs][q]
 * (four points a vector): its splits, then its leaves. `word` holds a word per node of the tree; `factors` and `before`
 * hold (most_entries + 1) x quads vectors. `quads` (at most MOST_QUADS) and `width` are constants in the copies
 * below.
 */
static inline __attribute__((always_inline)) int paths_tree(const paths_t *paths, int64_t t, const float *row,
                                                            uint64_t *word, quad_t *factors, quad_t *before,
                                                            quad_t *row_phi, int64_t n_outputs, const quad_t *tp,
                                                            const quad_t *weight, const quad_t *one_minus_t,
                                                            double deadline, const int64_t quads,
                                                            const int64_t width) {
    if (quads > MOST_QUADS)
        __builtin_unreachable();  /* tree_shap_paths_make's rule takes at most MOST_QUADS quads */
    word[0] = 0;
    for (int64_t k = paths->first_split[t]; k < paths->first_split[t + 1]; k++) {
        const path_split_t split = paths->splits[k];
        const float x = row[split.column];
        const uint64_t below = isnan(x) ? (uint64_t)split.nan_left : (uint64_t)(x <= split.threshold);
        const uint64_t above = word[split.slot];
        word[split.child[1]] = above | (below ^ 1) << split.depth;  /* the row did not take the edge to child[1] */
        word[split.child[0]] = above | below << split.depth;
    }
    quad_t *target = row_phi + paths->column[t] * quads;
    for (int64_t l = paths->first_leaf[t]; l < paths->first_leaf[t + 1]; l++) {
        if (((l - paths->first_leaf[t]) & (CHECK_EVERY - 1)) == CHECK_EVERY - 1 && past(deadline))
            return TIMED_OUT;
        const path_leaf_t leaf = paths->leaves[l];
        const path_entry_t *entries = paths->entries + leaf.first_entry;
        const double *value = paths->values + l * width;
        const uint64_t missed = word[leaf.slot];
        /* the products of the factors before each column, then (from the last back) of those after it: each
           carried in registers from one column to the next, the factors and the products before kept for the
           way back */
        quad_t carried[MOST_QUADS] = {0};
        #pragma GCC unroll 16
        for (int64_t i = 0; i < quads; i++)
            carried[i] = (quad_t){1, 1, 1, 1};
        for (int64_t e = 0; e < leaf.n_entries; e++) {
            const double one = taken(missed, entries[e].levels), zero = entries[e].zero;
            #pragma GCC unroll 16
            for (int64_t i = 0; i < quads; i++) {
                const quad_t factor = zero * one_minus_t[i] + one * tp[i];
                factors[e * quads + i] = factor;
                before[e * quads + i] = carried[i];
                carried[i] *= factor;
            }
        }
        #pragma GCC unroll 16
        for (int64_t i = 0; i < quads; i++)
            carried[i] = (quad_t){1, 1, 1, 1};
        for (int64_t e = leaf.n_entries - 1; e >= 0; e--) {
            const double gain = taken(missed, entries[e].levels) - entries[e].zero;
            quad_t *sums = target + entries[e].column * n_outputs * quads;
            #pragma GCC unroll 16
            for (int64_t i = 0; i < quads; i++) {
                const quad_t share = weight[i] * gain * before[e * quads + i] * carried[i];
                carried[i] *= factors[e * quads + i];
                #pragma GCC unroll 16
                for (int64_t j = 0; j < width; j++)
                    sums[j * quads + i] += value[j] * share;
            }
        }
    }
    return WALKED;
}

#define PATHS_TREE(name, quads, width)                                                                        \
    PATHS_TARGET static int name(const paths_t *paths, int64_t t, const float *row, uint64_t *word,            \
                                 quad_t *factors, quad_t *before, quad_t *row_phi, int64_t n_outputs,         \
                                 const quad_t *tp, const quad_t *weight, const quad_t *one_minus_t,           \
                                 double deadline) {                                                           \
        return paths_tree(paths, t, row, word, factors, before, row_phi, n_outputs, tp, weight, one_minus_t,  \
                          deadline, quads, width);                                                             \
    }
PATHS_TREE(paths_tree_1_1, 1, 1)
PATHS_TREE(paths_tree_1_2, 1, 2)
PATHS_TREE(paths_tree_2_1, 2, 1)
PATHS_TREE(paths_tree_2_2, 2, 2)
PATHS_TREE(paths_tree_any, paths->q / 4, paths->width)
typedef int (*paths_tree_t)(const paths_t *, int64_t, const float *, uint64_t *, quad_t *, quad_t *, quad_t *,
                            int64_t, const quad_t *, const quad_t *, const quad_t *, double);

/*
 * phi[n_rows][n_features][n_outputs] += every tree's attributions for float32 rows, from a copy made by
 * tree_shap_paths_make: tree_shap's answer for the records the copy was made from. Returns WALKED, NO_MEMORY,
 * BAD_COLUMN / BAD_OUTPUT where the rows or the outputs do not fit the copy, or TIMED_OUT once `deadline`
 * (CLOCK_MONOTONIC seconds; 0: none) passed.
 */
PATHS_TARGET int64_t tree_shap_paths(const paths_t *paths, const float *rows, int64_t n_rows, int64_t n_features,
                                     int64_t n_outputs, double *phi, double deadline) {
    if (n_features != paths->n_features)
        return BAD_COLUMN;
    for (int64_t t = 0; t < paths->n_trees; t++)
        if (paths->column[t] + paths->width > n_outputs)
            return BAD_OUTPUT;
    const int64_t q = paths->q, quads = q / 4, width = paths->width;
    static const paths_tree_t specialized[2][2] = {{paths_tree_1_1, paths_tree_1_2}, {paths_tree_2_1, paths_tree_2_2}};
    const paths_tree_t pass = quads <= 2 && width <= 2 ? specialized[quads - 1][width - 1] : paths_tree_any;
    const size_t per_row = (size_t)n_features * (size_t)n_outputs * (size_t)quads;
    const size_t scratch_quads = per_row + (size_t)quads * (4 + 2 * (size_t)(paths->most_entries + 1));
    quad_t *scratch = aligned_alloc(_Alignof(quad_t), scratch_quads * sizeof(quad_t));
    uint64_t *word = malloc(sizeof(uint64_t) * (size_t)paths->n_slots);
    double *rule = malloc(sizeof(double) * 2 * (size_t)q);
    int64_t status = scratch && word && rule ? WALKED : NO_MEMORY;
    if (status == WALKED) {
        quad_t *row_phi = scratch, *tp = row_phi + per_row, *weight = tp + quads, *one_minus_t = weight + quads;
        quad_t *factors = one_minus_t + quads, *before = factors + quads * (paths->most_entries + 1);
        gauss_legendre(q, rule, rule + q);
        for (int64_t i = 0; i < quads; i++) {
            tp[i] = (quad_t){rule[4 * i], rule[4 * i + 1], rule[4 * i + 2], rule[4 * i + 3]};
            weight[i] = (quad_t){rule[q + 4 * i], rule[q + 4 * i + 1], rule[q + 4 * i + 2], rule[q + 4 * i + 3]};
            one_minus_t[i] = 1 - tp[i];
        }
        uint64_t ticks = 0;
        for (int64_t r = 0; r < n_rows && status == WALKED; r++) {
            for (size_t i = 0; i < per_row; i++)
                row_phi[i] = (quad_t){0, 0, 0, 0};
            for (int64_t t = 0; t < paths->n_trees && status == WALKED; t++) {
                if ((++ticks & (CHECK_EVERY - 1)) == 0 && past(deadline))
                    status = TIMED_OUT;
                else
                    status = pass(paths, t, rows + r * n_features, word, factors, before, row_phi, n_outputs, tp,
                                  weight, one_minus_t, deadline);
            }
            double *out = phi + r * n_features * n_outputs;
            for (int64_t k = 0; k < n_features * n_outputs; k++) {
                double total = 0;
                for (int64_t i = 0; i < quads; i++)
                    total += (row_phi[k * quads + i][0] + row_phi[k * quads + i][1])
                             + (row_phi[k * quads + i][2] + row_phi[k * quads + i][3]);
                out[k] += total;
            }
        }
    }
    free(scratch);
    free(word);
    free(rule);
    return status;
}

/* The two explanations again, each run on a thread of low priority (low_priority.h) and waited for: what
   tree_shap.py calls for a large call while the service asks it to (LOW_PRIORITY_FROM_WALKS). */
#define SHAP_PARAMETERS(P, L)                                                                                   \
    P(const void *, nodes) P(int64_t, wide) P(int64_t, n_nodes) P(const int32_t *, roots)                       \
    P(const int32_t *, columns) P(int64_t, n_trees) P(const double *, value) P(int64_t, value_width)            \
    P(const double *, cover) P(const uint32_t *, bitsets) P(int64_t, n_bitsets) P(int64_t, max_depth)           \
    P(int64_t, options) P(const void *, rows) P(int64_t, n_rows) P(int64_t, n_features) P(int64_t, n_outputs)   \
    P(double *, phi) L(double, deadline)
LOWERED(tree_shap, SHAP_PARAMETERS)

#define PATHS_PARAMETERS(P, L)                                                                                  \
    P(const paths_t *, paths) P(const float *, rows) P(int64_t, n_rows) P(int64_t, n_features)                  \
    P(int64_t, n_outputs) P(double *, phi) L(double, deadline)
LOWERED(tree_shap_paths, PATHS_PARAMETERS)
