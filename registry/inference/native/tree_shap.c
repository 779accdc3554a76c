/*
 * Exact path-dependent TreeSHAP (Lundberg, Erion and Lee 2018, "Consistent Individualized Feature
 * Attribution for Tree Ensembles", Algorithm 2) over the walker's node records, in double precision:
 * the attributions of one row are Shapley values of v(S) = E[f(x) | x_S], the expectation taken over the
 * tree's own training distribution as its node covers record it (a node's zero fraction is its cover over
 * its parent's). It is shap's C `tree_shap_recursive` (shap/cext/tree_shap.h) without its interaction and
 * background-data branches: the same path of (feature, zero fraction, one fraction, weight) elements,
 * extended at each node, unwound where a feature comes again, summed at each leaf.
 *
 * The row goes the way the walker sends it (tree_walk.c: x <= threshold, a NaN where NAN_LEFT says; for
 * wide records the walker's own function, records.h's wide_goes_left: categorical sets of any number of
 * blocks, ZERO_MISSING, and with LIGHTGBM_ROWS values within kZeroThreshold read as zero), so the
 * attributions explain exactly the answers the walker gives.
 *
 * Like the walker, it trusts nothing it reads from the records, which may be a mapped file changed after
 * tree_walk.py checked it: every root, column, child, output column and categorical set is checked as it
 * is read (once), a child must come after its node, a path deeper than the depth measured when the model
 * was loaded stops (its scratch space is sized for that depth), and a walk that visits more nodes than
 * there are stops. Whatever the records hold, every read is inside the arrays and every call ends.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"

/* One element of the path: a feature met on the way, the fractions of the data and of the row that
 * follow it, and the weight of the subsets of its size (Algorithm 2's m). */
typedef struct {
    int64_t feature;
    double zero_fraction;
    double one_fraction;
    double weight;
} path_t;

/* What one (row, tree) walk reads and where it adds. */
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
    double *phi;              /* this row's [n_features][n_outputs], offset to the tree's output column */
    int64_t n_outputs;
    uint64_t visits;          /* nodes visited by this walk: a tree visits each of its nodes once */
} walk_t;

/* Node `at`'s children, read once: a leaf's are itself, any other node's come after it inside the records. */
static int read_children(const walk_t *w, uint64_t at, int64_t child[2]) {
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
static int read_split(const walk_t *w, uint64_t at, int64_t *column, int *left) {
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

/* Algorithm 2's EXTEND: the path grows by one element, and every weight is shared out again. */
static void extend(path_t *path, int64_t depth, double zero_fraction, double one_fraction, int64_t feature) {
    path[depth] = (path_t){feature, zero_fraction, one_fraction, depth == 0 ? 1.0 : 0.0};
    for (int64_t i = depth - 1; i >= 0; i--) {
        path[i + 1].weight += one_fraction * path[i].weight * (double)(i + 1) / (double)(depth + 1);
        path[i].weight = zero_fraction * path[i].weight * (double)(depth - i) / (double)(depth + 1);
    }
}

/* Algorithm 2's UNWIND: element `index` leaves the path, undoing its EXTEND. */
static void unwind(path_t *path, int64_t depth, int64_t index) {
    const double one_fraction = path[index].one_fraction, zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].weight;
    for (int64_t i = depth - 1; i >= 0; i--) {
        if (one_fraction != 0) {
            const double kept = path[i].weight;
            path[i].weight = next_one_portion * (double)(depth + 1) / ((double)(i + 1) * one_fraction);
            next_one_portion = kept - path[i].weight * zero_fraction * (double)(depth - i) / (double)(depth + 1);
        } else {
            path[i].weight = path[i].weight * (double)(depth + 1) / (zero_fraction * (double)(depth - i));
        }
    }
    for (int64_t i = index; i < depth; i++) {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

/* The total weight of the path as it would be with element `index` unwound, without unwinding it. */
static double unwound_sum(const path_t *path, int64_t depth, int64_t index) {
    const double one_fraction = path[index].one_fraction, zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].weight, total = 0;
    if (one_fraction != 0) {
        for (int64_t i = depth - 1; i >= 0; i--) {
            const double share = next_one_portion / ((double)(i + 1) * one_fraction);
            total += share;
            next_one_portion = path[i].weight - share * zero_fraction * (double)(depth - i);
        }
    } else if (zero_fraction != 0) {
        for (int64_t i = depth - 1; i >= 0; i--)
            total += path[i].weight / ((double)(depth - i) * zero_fraction);
    }
    return total * (double)(depth + 1);
}

/* Algorithm 2's RECURSE from node `at`, `level` nodes below the root, with `depth` elements on the path. */
static int recurse(walk_t *w, uint64_t at, int64_t level, path_t *parent, int64_t depth, double zero_fraction,
                   double one_fraction, int64_t feature) {
    if (level > w->max_depth)
        return TOO_DEEP;
    if (++w->visits > w->n_nodes)
        return BAD_CHILD;
    path_t *path = parent + depth + 1;
    memcpy(path, parent, (size_t)(depth + 1) * sizeof(path_t));
    extend(path, depth, zero_fraction, one_fraction, feature);
    int64_t child[2], column = 0;
    int left = 0;
    int status = read_children(w, at, child);
    if (status != WALKED)
        return status;
    if (child[0] == (int64_t)at) {  /* a leaf */
        const double *leaf = w->value + at * w->value_width;
        /* An element the row does not follow (one fraction 0) unwinds to this sum over its zero fraction
         * (unwound_sum's second branch): made once a leaf, it spares the O(depth) unwinding of about half
         * the path's elements (a tenth of a 100-tree, depth-10 forest's time). */
        double cold_sum = 0;
        for (int64_t i = 0; i < depth; i++)
            cold_sum += path[i].weight / (double)(depth - i);
        for (int64_t i = 1; i <= depth; i++) {
            const path_t *element = path + i;
            double weight = 0;
            if (element->one_fraction != 0)
                weight = unwound_sum(path, depth, i);
            else if (element->zero_fraction != 0)
                weight = cold_sum / element->zero_fraction * (double)(depth + 1);
            double *target = w->phi + element->feature * w->n_outputs;
            for (int64_t j = 0; j < w->value_width; j++)
                target[j] += weight * (element->one_fraction - element->zero_fraction) * leaf[j];
        }
        return WALKED;
    }
    status = read_split(w, at, &column, &left);
    if (status != WALKED)
        return status;
    const uint64_t hot = (uint64_t)child[left], cold = (uint64_t)child[!left];
    const double cover = w->cover[at];
    const double hot_zero_fraction = w->cover[hot] / cover, cold_zero_fraction = w->cover[cold] / cover;
    double incoming_zero_fraction = 1, incoming_one_fraction = 1;
    int64_t index = 0;
    while (index <= depth && path[index].feature != column)
        index++;
    if (index <= depth) {  /* the feature was met above: its split is undone, to be made again here */
        incoming_zero_fraction = path[index].zero_fraction;
        incoming_one_fraction = path[index].one_fraction;
        unwind(path, depth, index);
        depth--;
    }
    const int hot_status = recurse(w, hot, level + 1, path, depth + 1, hot_zero_fraction * incoming_zero_fraction,
                                   incoming_one_fraction, column);
    if (hot_status != WALKED)
        return hot_status;
    return recurse(w, cold, level + 1, path, depth + 1, cold_zero_fraction * incoming_zero_fraction, 0, column);
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
 * stops the call. Returns WALKED, or what was wrong with the records (phi is
 * then unspecified), or TOO_DEEP when its scratch space could not be had.
 */
int64_t tree_shap(const void *nodes, int64_t wide, int64_t n_nodes, const int32_t *roots, const int32_t *columns,
                  int64_t n_trees, const double *value, int64_t value_width, const double *cover,
                  const uint32_t *bitsets, int64_t n_bitsets, int64_t max_depth, int64_t options, const void *rows,
                  int64_t n_rows, int64_t n_features, int64_t n_outputs, double *phi) {
    if (max_depth < 0 || max_depth > 100000)
        return TOO_DEEP;
    /* Every level keeps its own copy of the path, one element longer than its parent's (shap's layout). */
    const size_t elements = (size_t)(max_depth + 2) * (size_t)(max_depth + 3) / 2;
    path_t *scratch = malloc(elements * sizeof(path_t));
    if (!scratch)
        return TOO_DEEP;
    walk_t w = {.nodes = wide ? NULL : nodes, .wide = wide ? nodes : NULL, .n_nodes = (uint64_t)n_nodes,
                .n_features = (uint64_t)n_features, .n_bitsets = (uint64_t)n_bitsets, .value = value,
                .cover = cover, .value_width = value_width, .max_depth = max_depth, .bitsets = bitsets,
                .lightgbm_rows = (options & LIGHTGBM_ROWS) != 0, .n_outputs = n_outputs};
    int status = WALKED;
    for (int64_t r = 0; r < n_rows && status == WALKED; r++) {
        if (wide)
            w.row64 = (const double *)rows + r * n_features;
        else
            w.row32 = (const float *)rows + r * n_features;
        for (int64_t t = 0; t < n_trees; t++) {
            const int32_t root = READ_ONCE(roots[t]);
            if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes) {
                status = BAD_ROOT;
                break;
            }
            const int32_t column = columns ? READ_ONCE(columns[t]) : 0;
            if (column < 0 || column + value_width > n_outputs) {
                status = BAD_OUTPUT;
                break;
            }
            w.phi = phi + r * n_features * n_outputs + column;
            w.visits = 0;
            status = recurse(&w, (uint64_t)root, 0, scratch, 0, 1, 1, -1);
            if (status != WALKED)
                break;
        }
    }
    free(scratch);
    return status;
}
