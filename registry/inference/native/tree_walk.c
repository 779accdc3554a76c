/*
 * Exact inference for a single-output decision tree or random forest over flat node records, and for
 * a boosted model (scikit-learn's HistGradientBoosting and GradientBoosting) over wide ones.
 *
 * Loaded by registry/inference/tree_walk.py with ctypes: plain C, no Python API, so the one library
 * serves every Python build. It gives bit for bit what scikit-learn gives with n_jobs=1:
 *
 * - a row goes left where x <= threshold, x being the row's float32 value and the threshold the
 *   largest float32 at or below scikit-learn's float64 one (the same answer for every float32 x);
 *   a NaN goes where the node's NAN_LEFT bit says (scikit-learn's missing_go_to_left);
 * - a forest adds its trees' leaf rows to zeros in tree order, then divides by the number of trees,
 *   in double precision with nothing fused or reordered (built with -ffp-contract=off);
 * - a single tree answers its leaf's row as it is.
 *
 * The records may be a file every worker maps, and a file can be changed after tree_walk.py checked
 * it. So the walk trusts nothing it reads from them: every root, column and child is checked as it is
 * read (each read once: READ_ONCE), and a walk that would read outside the arrays, go round in circles
 * or end on a node that is not a leaf stops the call with a status instead of an answer. Whatever the
 * records hold, every walk reads inside the arrays and ends.
 *
 * A boosted model (tree_walk_boosted) walks wide records: a float64 threshold compared with the row's
 * float64 value (x <= threshold, as HistGradientBoosting and LightGBM compare; GradientBoosting's float32
 * rows are exact in float64, so the same compare gives its answer), and categorical splits that send a
 * category (the value truncated toward zero, as C++'s static_cast<int> does) left where its bit is set in
 * the node's set: whole 256-bit blocks, as many as the node's threshold says in bits (a NaN, a value at
 * or below -1 or one past the set goes where a NaN goes). A node with ZERO_MISSING sends a zero where a
 * NaN goes (LightGBM's zero_as_missing). With LIGHTGBM_ROWS a value within LightGBM's kZeroThreshold of
 * zero is read as zero, as LightGBM reads a dense row. These rules are one function, records.h's
 * wide_goes_left, which the explainer (tree_shap.c) follows too. Every tree adds its leaf's value to one output
 * column (its class), each (row, column) starting from the model's baseline and summed in tree order in
 * double precision (or rounded to float32 at each sum: FLOAT32_SUMS, XGBoost's).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"

/* tree_walk_boosted's options: every sum rounded to float32 (XGBoost); LIGHTGBM_ROWS (records.h); the rows
   rounded to float32 first (GradientBoosting's and XGBoost's float32 input), with FLOAT32_SUMS (XGBoost)
   a row holding a value infinite in float32 refused (INFINITE_ROW), as XGBoost refuses it. */
#define FLOAT32_SUMS 1
#define FLOAT32_ROWS 4
/* The caller found no categorical or ZERO_MISSING split and no LIGHTGBM_ROWS: walk_numeric does the walk. */
#define NUMERIC_ONLY 8
/* Bumped whenever the interface changes: tree_walk.py refuses a library built from other source. */
#define TREE_WALK_VERSION 8
/*
 * Walks in flight at once. One walk is a chain of dependent loads (node, then the row's value, then
 * the next node); eight independent chains keep the core and the memory system busy while each waits.
 */
#define LANES 8
/* Rows of a boosted walk's block: every tree walks them while they stay in the core's cache. */
#define ROW_BLOCK 64

/* The record's size, which tree_walk.py checks against its own description of a node. */
int64_t tree_walk_node_size(void) { return (int64_t)sizeof(node_t); }

/* The wide record's size, which tree_walk.py checks likewise. */
int64_t tree_walk_wide_node_size(void) { return (int64_t)sizeof(wide_node_t); }

/* The interface's version, which tree_walk.py checks against its own. */
int64_t tree_walk_version(void) { return TREE_WALK_VERSION; }

/*
 * Walk lanes[0..n) from their start nodes to their leaves; row[i] is lane i's row.
 * Every lane steps every round (a leaf steps to itself) until a round in which none moved.
 * Each step checks the column it reads and the child it goes to (one unsigned compare: inside the
 * nodes); records that lead a walk round in circles are found by the number of rounds, which no walk
 * of valid records reaches (each of its steps goes forward).
 */
static int walk(const node_t *nodes, uint64_t n_nodes, uint64_t n_features, int64_t *lanes,
                const float *const *row, int n) {
    uint64_t rounds = 0;
    int moved = 1;
    while (moved) {
        if (rounds++ > n_nodes)
            return BAD_CHILD;
        moved = 0;
        for (int i = 0; i < n; i++) {
            const node_t *node = nodes + lanes[i];
            const uint32_t feature = READ_ONCE(node->feature);
            const uint32_t column = feature & ~NAN_LEFT;
            if (column >= n_features)
                return BAD_COLUMN;
            float x = row[i][column];
            int left = isnan(x) ? (int)(feature >> 31) : x <= node->threshold;
            const int64_t next = READ_ONCE(node->child[left]);
            if ((uint64_t)next >= n_nodes)
                return BAD_CHILD;
            moved |= next != lanes[i];
            lanes[i] = next;
        }
    }
    for (int i = 0; i < n; i++)  /* it stopped where a child is the node itself: a leaf has two such */
        if (READ_ONCE(nodes[lanes[i]].child[0]) != READ_ONCE(nodes[lanes[i]].child[1]))
            return NOT_A_LEAF;
    return WALKED;
}

/*
 * out[n_rows][n_outputs] = the model's output for rows[n_rows][n_features]; returns WALKED, or what
 * was wrong with the records (out is then unspecified).
 *
 * The (tree, row) pairs are walked in tree-major order, LANES at a time: for one row the lanes are
 * eight trees, for a batch eight rows of one tree. Each row's outputs are therefore added in tree order.
 */
int64_t tree_walk_output(const node_t *nodes, int64_t n_nodes, const int32_t *roots, int64_t n_trees,
                         const double *value, int64_t n_outputs, int64_t averaged, const float *rows,
                         int64_t n_rows, int64_t n_features, double *out) {
    const int64_t pairs = n_trees * n_rows;
    if (averaged)
        memset(out, 0, (size_t)(n_rows * n_outputs) * sizeof(double));
    for (int64_t first = 0; first < pairs; first += LANES) {
        const int n = pairs - first < LANES ? (int)(pairs - first) : LANES;
        int64_t lanes[LANES];
        const float *row[LANES];
        for (int i = 0; i < n; i++) {
            const int32_t root = READ_ONCE(roots[(first + i) / n_rows]);
            if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes)
                return BAD_ROOT;
            lanes[i] = root;
            row[i] = rows + ((first + i) % n_rows) * n_features;
        }
        const int walked = walk(nodes, (uint64_t)n_nodes, (uint64_t)n_features, lanes, row, n);
        if (walked != WALKED)
            return walked;
        for (int i = 0; i < n; i++) {
            const double *leaf = value + lanes[i] * n_outputs;
            double *target = out + ((first + i) % n_rows) * n_outputs;
            if (!averaged) {
                memcpy(target, leaf, (size_t)n_outputs * sizeof(double));
                continue;
            }
            for (int64_t j = 0; j < n_outputs; j++)
                target[j] += leaf[j];
        }
    }
    if (averaged) {
        const double trees = (double)n_trees;
        for (int64_t j = 0; j < n_rows * n_outputs; j++)
            out[j] /= trees;
    }
    return WALKED;
}

/*
 * walk() for wide records and float64 rows: the same rounds and checks, each split decided by
 * wide_goes_left (records.h), which checks a categorical split's word inside the bitsets before it reads it.
 */
static int walk_wide(const wide_node_t *nodes, uint64_t n_nodes, uint64_t n_features, const uint32_t *bitsets,
                     uint64_t n_bitsets, int lightgbm_rows, int64_t *lanes, const double *const *row, int n) {
    uint64_t rounds = 0;
    int moved = 1;
    while (moved) {
        if (rounds++ > n_nodes)
            return BAD_CHILD;
        moved = 0;
        for (int i = 0; i < n; i++) {
            const wide_node_t *node = nodes + lanes[i];
            const uint32_t feature = READ_ONCE(node->feature);
            const uint32_t column = feature & ~WIDE_FLAGS;
            if (column >= n_features)
                return BAD_COLUMN;
            const int left = wide_goes_left(node, feature, row[i][column], lightgbm_rows, bitsets, n_bitsets);
            if (left < 0)
                return BAD_BITSET;
            const int64_t next = READ_ONCE(node->child[left]);
            if ((uint64_t)next >= n_nodes)
                return BAD_CHILD;
            moved |= next != lanes[i];
            lanes[i] = next;
        }
    }
    for (int i = 0; i < n; i++)
        if (READ_ONCE(nodes[lanes[i]].child[0]) != READ_ONCE(nodes[lanes[i]].child[1]))
            return NOT_A_LEAF;
    return WALKED;
}

/*
 * walk_wide for records with numeric splits only (NUMERIC_ONLY), LANES lanes always (the caller repeats a
 * lane where it has fewer) for `depth` rounds, the deepest path the records had when they were checked (a
 * leaf steps to itself): a NaN goes where NAN_LEFT says, any other value to child[1] where x <= threshold,
 * with the same checks of every column and child, and TOO_DEEP where a lane is not on a leaf after them. A
 * flag a changed file sets on a node later is not read (its split is taken as numeric): nothing outside the
 * arrays is.
 */
static int walk_numeric(const wide_node_t *nodes, uint64_t n_nodes, uint64_t n_features, int64_t depth,
                        int64_t *lanes, const double *const *row) {
    for (int64_t level = 0; level < depth; level++) {
        for (int i = 0; i < LANES; i++) {
            const wide_node_t *node = nodes + lanes[i];
            const uint32_t feature = READ_ONCE(node->feature);
            const uint32_t column = feature & ~WIDE_FLAGS;
            if (column >= n_features)
                return BAD_COLUMN;
            const double x = row[i][column];
            const int left = (x <= node->threshold) | ((x != x) & (int)(feature >> 31));
            const int64_t next = READ_ONCE(node->child[left]);
            if ((uint64_t)next >= n_nodes)
                return BAD_CHILD;
            lanes[i] = next;
        }
    }
    for (int i = 0; i < LANES; i++)
        if (READ_ONCE(nodes[lanes[i]].child[0]) != READ_ONCE(nodes[lanes[i]].child[1]))
            return TOO_DEEP;
    return WALKED;
}

/*
 * out[n_rows][n_outputs] = a boosted model's raw output for rows[n_rows][n_features] (float64): every
 * (row, output) starts at baseline[output], then each tree in order adds value[its leaf] to the column
 * columns[tree]; options are FLOAT32_SUMS, LIGHTGBM_ROWS, FLOAT32_ROWS and NUMERIC_ONLY (with `depth`, the
 * deepest path of the records as they were checked). Returns WALKED, INFINITE_ROW (a
 * value of the rows that XGBoost refuses) or NO_MEMORY, or what was wrong with the records (out is then
 * unspecified).
 *
 * Walked a block of ROW_BLOCK rows at a time, and within a block in tree-major order LANES at a time, as
 * tree_walk_output walks, so each (row, output) is summed in tree order whatever the number of rows; the
 * block's rows stay in the cache while every tree walks them, rather than every tree reading every row
 * of a large batch from memory again.
 */
int64_t tree_walk_boosted(const wide_node_t *nodes, int64_t n_nodes, const int32_t *roots, const int32_t *columns,
                          int64_t n_trees, const double *value, const uint32_t *bitsets, int64_t n_bitsets,
                          const double *baseline, int64_t n_outputs, int64_t options, int64_t depth,
                          const double *rows, int64_t n_rows, int64_t n_features, double *out) {
    if (options & FLOAT32_ROWS) {  /* one pass over the rows, then the walk reads plain doubles */
        const int64_t values = n_rows * n_features;
        double *rounded = malloc((size_t)(values ? values : 1) * sizeof(double));
        if (rounded == NULL)
            return NO_MEMORY;
        for (int64_t j = 0; j < values; j++) {
            const float x = (float)rows[j];
            if ((options & FLOAT32_SUMS) && isinf(x)) {
                free(rounded);
                return INFINITE_ROW;
            }
            rounded[j] = (double)x;
        }
        const int64_t walked = tree_walk_boosted(nodes, n_nodes, roots, columns, n_trees, value, bitsets, n_bitsets,
                                                 baseline, n_outputs, options & ~FLOAT32_ROWS, depth, rounded,
                                                 n_rows, n_features, out);
        free(rounded);
        return walked;
    }
    for (int64_t r = 0; r < n_rows; r++)
        memcpy(out + r * n_outputs, baseline, (size_t)n_outputs * sizeof(double));
    for (int64_t start = 0; start < n_rows; start += ROW_BLOCK) {
        const int64_t block = n_rows - start < ROW_BLOCK ? n_rows - start : ROW_BLOCK;
        const int64_t pairs = n_trees * block;
        for (int64_t first = 0; first < pairs; first += LANES) {
            const int n = pairs - first < LANES ? (int)(pairs - first) : LANES;
            int64_t lanes[LANES], target[LANES];
            const double *row[LANES];
            for (int i = 0; i < n; i++) {
                const int64_t tree = (first + i) / block, r = start + (first + i) % block;
                const int32_t root = READ_ONCE(roots[tree]);
                if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes)
                    return BAD_ROOT;
                const int32_t column = READ_ONCE(columns[tree]);
                if ((uint64_t)(int64_t)column >= (uint64_t)n_outputs)
                    return BAD_OUTPUT;
                lanes[i] = root;
                row[i] = rows + r * n_features;
                target[i] = r * n_outputs + column;
            }
            for (int i = n; i < LANES; i++) {  /* walk_numeric walks every lane: repeat the first */
                lanes[i] = lanes[0];
                row[i] = row[0];
            }
            const int walked = (options & NUMERIC_ONLY)
                ? walk_numeric(nodes, (uint64_t)n_nodes, (uint64_t)n_features, depth, lanes, row)
                : walk_wide(nodes, (uint64_t)n_nodes, (uint64_t)n_features, bitsets, (uint64_t)n_bitsets,
                            (options & LIGHTGBM_ROWS) != 0, lanes, row, n);
            if (walked != WALKED)
                return walked;
            if (options & FLOAT32_SUMS)
                for (int i = 0; i < n; i++)
                    out[target[i]] = (double)(float)(out[target[i]] + value[lanes[i]]);
            else
                for (int i = 0; i < n; i++)
                    out[target[i]] += value[lanes[i]];
        }
    }
    return WALKED;
}

/* XGBoost's sigmoid (common::Sigmoid): the margin clamped, then 1 / (expf(-x) + 1 + 1e-16) in float32. */
static float xgboost_sigmoid(float x) {
    const float minus = -x < 88.7f ? -x : 88.7f;
    const float denominator = expf(minus) + 1.0f + 1e-16f;
    return 1.0f / denominator;
}

/*
 * XGBoost's link over raw[n_rows][n_outputs] (float32 margins held as doubles), into out of the same
 * shape: kind 1 is the sigmoid of each value (binary:logistic), kind 2 the softmax of each row
 * (common::Softmax: the row's fmaxf, expf of each value less it, their sum in double, each divided by
 * that sum rounded to float32); kind 3 takes one margin per row and writes two values, 1 - p and p in
 * float32 (XGBClassifier.predict_proba of binary:logistic), into out[n_rows][2]. Returns 0, or 1 for an
 * unknown kind (or kind 3 of more than one output).
 */
int64_t tree_walk_xgboost_link(int64_t kind, const double *raw, int64_t n_rows, int64_t n_outputs, double *out) {
    if (kind == 1) {
        for (int64_t j = 0; j < n_rows * n_outputs; j++)
            out[j] = (double)xgboost_sigmoid((float)raw[j]);
        return 0;
    }
    if (kind == 3) {
        if (n_outputs != 1)
            return 1;
        for (int64_t r = 0; r < n_rows; r++) {
            const float positive = xgboost_sigmoid((float)raw[r]);
            out[2 * r] = (double)(1.0f - positive);
            out[2 * r + 1] = (double)positive;
        }
        return 0;
    }
    if (kind != 2)
        return 1;
    for (int64_t r = 0; r < n_rows; r++) {
        const double *in = raw + r * n_outputs;
        double *row = out + r * n_outputs;
        float most = (float)in[0];
        for (int64_t j = 1; j < n_outputs; j++)
            most = fmaxf((float)in[j], most);
        double sum = 0.0;
        for (int64_t j = 0; j < n_outputs; j++) {
            const float e = expf((float)in[j] - most);
            row[j] = (double)e;
            sum += (double)e;
        }
        for (int64_t j = 0; j < n_outputs; j++)
            row[j] = (double)((float)row[j] / (float)sum);
    }
    return 0;
}

/*
 * LightGBM's ConvertOutput over raw[n_rows][n_outputs], into out of the same shape, in double precision
 * with libm's exp as LightGBM computes it: kind 1 is 1.0 / (1.0 + exp(-scale * x)) of each value (binary,
 * multiclassova, cross_entropy: BinaryLogloss::ConvertOutput), kind 2 the softmax of each row
 * (Common::Softmax: the row's max, exp of each value less it, their sum, each divided by the sum), kind 3
 * exp of each value (poisson, gamma, tweedie). Returns 0, or 1 for an unknown kind.
 */
int64_t tree_walk_lightgbm_link(int64_t kind, const double *raw, int64_t n_rows, int64_t n_outputs, double scale,
                                double *out) {
    if (kind == 1 || kind == 3) {
        for (int64_t j = 0; j < n_rows * n_outputs; j++)
            out[j] = kind == 1 ? 1.0 / (1.0 + exp(-scale * raw[j])) : exp(raw[j]);
        return 0;
    }
    if (kind != 2)
        return 1;
    for (int64_t r = 0; r < n_rows; r++) {
        const double *in = raw + r * n_outputs;
        double *row = out + r * n_outputs;
        double most = in[0];
        for (int64_t j = 1; j < n_outputs; j++)
            most = in[j] < most ? most : in[j];  /* std::max(in[j], most) */
        double sum = 0.0;
        for (int64_t j = 0; j < n_outputs; j++) {
            row[j] = exp(in[j] - most);
            sum += row[j];
        }
        for (int64_t j = 0; j < n_outputs; j++)
            row[j] /= sum;
    }
    return 0;
}
