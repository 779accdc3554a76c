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
 *
 * A batch of a boosted model whose splits are all numeric and whose rows are float32 (XGBoost's,
 * GradientBoosting's) may walk instead a copy of its trees this library made in the caller's memory from
 * the records, checking each as it read it (tree_walk_compact_make, tree_walk_compact): the same answers,
 * summed in the same order, in fewer instructions a step. A batch of a tree or forest may likewise walk a copy
 * of its trees with each split's children side by side (tree_walk_forest_make, tree_walk_forest).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "low_priority.h"
#include "records.h"

/* tree_walk_boosted's options: every sum rounded to float32 (XGBoost); LIGHTGBM_ROWS (records.h); the rows
   rounded to float32 first (GradientBoosting's and XGBoost's float32 input), with FLOAT32_SUMS (XGBoost)
   a row holding a value infinite in float32 refused (INFINITE_ROW), as XGBoost refuses it. */
#define FLOAT32_SUMS 1
#define FLOAT32_ROWS 4
/* The caller found no categorical or ZERO_MISSING split and no LIGHTGBM_ROWS: walk_numeric does the walk. */
#define NUMERIC_ONLY 8
/* Bumped whenever the interface changes: tree_walk.py refuses a library built from other source. */
#define TREE_WALK_VERSION 14
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
 *
 * The body of walk() and walk_wide(), which differ only in their records, their rows and how a split is
 * decided: node_type records whose feature holds the column under `flags`, value_type rows, and left_of, an
 * expression of the node, its feature and the row's value x, that is 1 where x goes to child[1], 0 where to
 * child[0], and below 0 where the split would read outside the bitsets (BAD_BITSET).
 */
#define WALK_ROUNDS(node_type, value_type, flags, left_of)                                                      \
    uint64_t rounds = 0;                                                                                       \
    int moved = 1;                                                                                             \
    while (moved) {                                                                                            \
        if (rounds++ > n_nodes)                                                                                \
            return BAD_CHILD;                                                                                  \
        moved = 0;                                                                                             \
        for (int i = 0; i < n; i++) {                                                                          \
            const node_type *node = nodes + lanes[i];                                                          \
            const uint32_t feature = READ_ONCE(node->feature);                                                 \
            const uint32_t column = feature & ~(flags);                                                        \
            if (column >= n_features)                                                                          \
                return BAD_COLUMN;                                                                             \
            const value_type x = row[i][column];                                                               \
            const int left = (left_of);                                                                        \
            if (left < 0)                                                                                      \
                return BAD_BITSET;                                                                             \
            const int64_t next = READ_ONCE(node->child[left]);                                                 \
            if ((uint64_t)next >= n_nodes)                                                                     \
                return BAD_CHILD;                                                                              \
            moved |= next != lanes[i];                                                                         \
            lanes[i] = next;                                                                                   \
        }                                                                                                      \
    }                                                                                                          \
    for (int i = 0; i < n; i++)  /* it stopped where a child is the node itself: a leaf has two such */       \
        if (READ_ONCE(nodes[lanes[i]].child[0]) != READ_ONCE(nodes[lanes[i]].child[1]))                        \
            return NOT_A_LEAF;                                                                                 \
    return WALKED;

static int walk(const node_t *nodes, uint64_t n_nodes, uint64_t n_features, int64_t *lanes,
                const float *const *row, int n) {
    WALK_ROUNDS(node_t, float, NAN_LEFT, isnan(x) ? (int)(feature >> 31) : x <= node->threshold)
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
    WALK_ROUNDS(wide_node_t, double, WIDE_FLAGS, wide_goes_left(node, feature, x, lightgbm_rows, bitsets, n_bitsets))
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

/*
 * A batch's walk of a numeric model with float32 rows (XGBoost's, GradientBoosting's) over a private copy
 * of its trees, made and checked here from the records and never shared: every tree laid out as the full
 * binary tree of its depth, level by level, split i's children being 2i + 1 (where x <= threshold, or a NaN
 * where NAN_LEFT says) and 2i + 2, so no child is read; a leaf above the tree's depth becomes splits that
 * send everything to 2i + 1, down to copies of the leaf in the bottom level.
 *
 * A split compares keys, not floats: a float32's key is an unsigned integer in the same order (-0 and +0 one
 * key), and each row holds two keys a value, one with a NaN above every other key (for splits where a NaN
 * goes right) and one with a NaN below every other (where it goes left), so "x <= threshold, or a NaN as
 * NAN_LEFT says" is one unsigned compare of the right key with the threshold's: the threshold being the
 * largest float32 at or below the record's, it gives the same answer for every float32 x.
 *
 * A walk of the copy is then `depth` steps of arithmetic on indices the layout keeps inside each tree,
 * reading keys at columns checked when the copy was made: fewer instructions a step than walk_numeric's,
 * whose records another process may change, and no child in the cache.
 */
typedef struct {
    uint32_t key;    /* the row key read: the column, plus n_features where a NaN goes to 2i + 1 */
    uint32_t bound;  /* go to 2i + 1 where that key <= bound */
} compact_split_t;

typedef struct {
    int64_t splits;    /* its first split among the copy's splits: (1 << depth) - 1 of them */
    int64_t leaves;    /* its first leaf value among the copy's leaves: 1 << depth of them */
    int32_t depth;
    int32_t column;    /* the output it adds to, below n_outputs */
} compact_tree_t;

typedef struct {
    int64_t n_trees, n_outputs, n_features, options;
    compact_tree_t *trees;
    compact_split_t *splits;
    double *leaves;
    double *baseline;
} compact_t;

/* The deepest full tree a copy lays out: a tree deeper than this is walked from its records. */
#define COMPACT_MAX_DEPTH 20
/* A full tree of depth d takes 2^d - 1 splits and 2^d leaves: 2^d * SLOT - SPLIT bytes. */
#define COMPACT_SPLIT_BYTES ((int64_t)sizeof(compact_split_t))
#define COMPACT_SLOT_BYTES ((int64_t)(sizeof(compact_split_t) + sizeof(double)))
/* A NaN's keys: above every float32's (read where a NaN goes right) and below (where it goes left). */
#define NAN_ABOVE 0xffffffffu
#define NAN_BELOW 0u
/* The most bytes of keys a call holds at once: fewer rows a block than ROW_BLOCK where rows are wide. */
#define KEY_BLOCK_BYTES (1 << 20)

/* The key of a float32 that is not a NaN: -0 and +0 one key, every other order kept, from -inf's
   0x007fffff to +inf's 0xff800000 (so strictly between the NaN keys). */
static uint32_t float32_key(float x) {
    uint32_t bits;
    if (x == 0.0f)
        x = 0.0f;
    memcpy(&bits, &x, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

/* Value j of a row as its two keys: row[j] with a NaN above every key, row[n_features + j] with it below. */
static inline void set_keys(uint32_t *row, int64_t j, int64_t n_features, float x) {
    row[j] = isnan(x) ? NAN_ABOVE : float32_key(x);
    row[n_features + j] = isnan(x) ? NAN_BELOW : row[j];
}

/* The split at threshold t (a record's, float64): where a key <= bound is where x <= the largest float32
   at or below t; a NaN threshold sends only a NaN (where NAN_LEFT says it goes) to 2i + 1. */
static compact_split_t compact_split(uint32_t column, uint32_t nan_left, double t, uint64_t n_features) {
    float f = (float)t;
    if ((double)f > t)
        f = nextafterf(f, -INFINITY);
    const uint32_t key = column + (nan_left ? (uint32_t)n_features : 0u);
    return (compact_split_t){key, isnan(f) ? NAN_BELOW : float32_key(f)};
}

/*
 * Lay out the tree whose root is slots[0] as the full tree of `depth` levels: slots[i] is the record at
 * slot i (scratch of 2^(depth + 1) - 1 entries), with splits and leaves written where they are not NULL.
 * Each record read once, each child checked inside the nodes and after its node. Returns WALKED with every
 * slot of the bottom level a leaf, TOO_DEEP where one is not, or what is wrong with the records; *reached is
 * the first level whose slots are all leaves (depth where none is).
 */
static int lay_out_tree(const wide_node_t *nodes, uint64_t n_nodes, uint64_t n_features, const double *value,
                        int depth, int32_t *slots, compact_split_t *splits, double *leaves, int *reached) {
    *reached = depth;
    for (int level = 0; level <= depth; level++) {
        const int64_t first = ((int64_t)1 << level) - 1, last = ((int64_t)1 << (level + 1)) - 1;
        int inner = 0;
        for (int64_t i = first; i < last; i++) {
            const int32_t id = slots[i];
            const wide_node_t *node = nodes + id;
            const int32_t right = READ_ONCE(node->child[0]), left = READ_ONCE(node->child[1]);
            const int leaf = left == id && right == id;
            if (level == depth) {
                if (!leaf)
                    return TOO_DEEP;
                if (leaves != NULL)
                    leaves[i - first] = value[id];
                continue;
            }
            if (leaf) {
                slots[2 * i + 1] = slots[2 * i + 2] = id;
                if (splits != NULL)
                    splits[i] = (compact_split_t){0, NAN_ABOVE};  /* every key goes to 2i + 1 */
                continue;
            }
            if (left <= id || right <= id || (uint64_t)(int64_t)left >= n_nodes || (uint64_t)(int64_t)right >= n_nodes)
                return BAD_CHILD;
            const uint32_t feature = READ_ONCE(node->feature);
            const uint32_t column = feature & ~WIDE_FLAGS;
            if (column >= n_features)
                return BAD_COLUMN;
            slots[2 * i + 1] = left;
            slots[2 * i + 2] = right;
            if (splits != NULL)
                splits[i] = compact_split(column, feature & NAN_LEFT, node->threshold, n_features);
            inner = 1;
        }
        if (!inner && level < *reached)
            *reached = level;
        if (!inner && splits == NULL)
            return WALKED;
    }
    return WALKED;
}

/* Free a copy made by tree_walk_compact_make (NULL: nothing). */
void tree_walk_compact_free(compact_t *compact) {
    if (compact == NULL)
        return;
    free(compact->trees);
    free(compact->splits);
    free(compact->leaves);
    free(compact->baseline);
    free(compact);
}

/*
 * A private copy of a numeric model's trees for tree_walk_compact (tree_walk_boosted's arguments for the
 * records, its options without NUMERIC_ONLY's depth), made where its trees' table, splits and leaves take at
 * most max_bytes; NULL with *status WALKED where it would take more (or a tree is deeper than
 * COMPACT_MAX_DEPTH, or the rows wider than a key's column holds), NO_MEMORY, or what is wrong with the
 * records. The caller frees it with tree_walk_compact_free.
 */
compact_t *tree_walk_compact_make(const wide_node_t *nodes, int64_t n_nodes, const int32_t *roots,
                                  const int32_t *columns, int64_t n_trees, const double *value,
                                  const double *baseline, int64_t n_outputs, int64_t n_features, int64_t options,
                                  int64_t max_bytes, int64_t *status) {
    *status = WALKED;  /* no copy, and no error: the model is walked from its records */
    const int64_t table = n_trees * (int64_t)sizeof(compact_tree_t);
    if (n_trees <= 0 || n_outputs <= 0 || n_features <= 0 || n_features > (int64_t)(UINT32_MAX / 2)
        || n_trees > max_bytes || table > max_bytes)
        return NULL;
    *status = NO_MEMORY;
    int max_depth = 0;  /* the deepest tree max_bytes could hold, to size the scratch */
    while (max_depth < COMPACT_MAX_DEPTH && ((int64_t)1 << (max_depth + 1)) * COMPACT_SLOT_BYTES <= max_bytes)
        max_depth++;
    compact_t *compact = calloc(1, sizeof(compact_t));
    int32_t *slots = malloc(sizeof(int32_t) * (((size_t)1 << (max_depth + 1)) - 1));
    if (compact == NULL || slots == NULL)
        goto failed;
    compact->n_trees = n_trees;
    compact->n_outputs = n_outputs;
    compact->n_features = n_features;
    compact->options = options;
    compact->trees = malloc(sizeof(compact_tree_t) * (size_t)n_trees);
    compact->baseline = malloc(sizeof(double) * (size_t)n_outputs);
    if (compact->trees == NULL || compact->baseline == NULL)
        goto failed;
    memcpy(compact->baseline, baseline, sizeof(double) * (size_t)n_outputs);
    int64_t n_splits = 0, n_leaves = 0;
    for (int64_t t = 0; t < n_trees; t++) {  /* each tree's depth, and where it goes */
        const int32_t root = READ_ONCE(roots[t]), column = READ_ONCE(columns[t]);
        if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes || (uint64_t)(int64_t)column >= (uint64_t)n_outputs) {
            *status = (uint64_t)(int64_t)root >= (uint64_t)n_nodes ? BAD_ROOT : BAD_OUTPUT;
            goto failed;
        }
        /* the deepest full tree the bytes left hold: a deeper one is not explored further */
        const int64_t left = max_bytes - table - (n_splits * (int64_t)sizeof(compact_split_t)
                                                  + n_leaves * (int64_t)sizeof(double));
        int allowed = -1;
        while (allowed < max_depth && ((int64_t)1 << (allowed + 1)) * COMPACT_SLOT_BYTES <= left + COMPACT_SPLIT_BYTES)
            allowed++;
        if (allowed < 0) {
            *status = WALKED;  /* not an error: this model is walked from its records */
            goto failed;
        }
        slots[0] = root;
        int depth;
        const int laid = lay_out_tree(nodes, (uint64_t)n_nodes, (uint64_t)n_features, value, allowed, slots, NULL,
                                      NULL, &depth);
        if (laid != WALKED && laid != TOO_DEEP) {
            *status = laid;
            goto failed;
        }
        if (laid == TOO_DEEP) {
            *status = WALKED;  /* not an error: this model is walked from its records */
            goto failed;
        }
        compact->trees[t] = (compact_tree_t){n_splits, n_leaves, depth, column};
        n_splits += ((int64_t)1 << depth) - 1;
        n_leaves += (int64_t)1 << depth;
    }
    compact->splits = malloc(sizeof(compact_split_t) * (size_t)(n_splits ? n_splits : 1));
    compact->leaves = malloc(sizeof(double) * (size_t)n_leaves);
    if (compact->splits == NULL || compact->leaves == NULL)
        goto failed;
    for (int64_t t = 0; t < n_trees; t++) {  /* the layout, the records read again and checked again */
        const compact_tree_t *tree = compact->trees + t;
        const int32_t root = READ_ONCE(roots[t]);
        if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes) {
            *status = BAD_ROOT;
            goto failed;
        }
        slots[0] = root;
        int reached;
        const int laid = lay_out_tree(nodes, (uint64_t)n_nodes, (uint64_t)n_features, value, tree->depth, slots,
                                      compact->splits + tree->splits, compact->leaves + tree->leaves, &reached);
        if (laid != WALKED) {
            *status = laid;
            goto failed;
        }
    }
    free(slots);
    *status = WALKED;
    return compact;
failed:
    free(slots);
    tree_walk_compact_free(compact);
    return NULL;
}

/*
 * tree_walk_boosted's answer for rows[n_rows][n_features] from a copy made by tree_walk_compact_make: each
 * block of rows (ROW_BLOCK, fewer where rows are wide) rounded to float32 and turned into keys (INFINITE_ROW
 * where FLOAT32_SUMS refuses a value), then every tree in order walks the block's rows level by level
 * (independent walks, many in flight) and adds its leaf to each row's output as tree_walk_boosted adds it:
 * each (row, output) summed in tree order. Returns WALKED, INFINITE_ROW, NO_MEMORY, or BAD_COLUMN where the
 * rows are not as wide as the copy's model.
 */
int64_t tree_walk_compact(const compact_t *compact, const double *rows, int64_t n_rows, int64_t n_features,
                          double *out) {
    if (n_features != compact->n_features || n_features <= 0)
        return BAD_COLUMN;
    const int64_t n_outputs = compact->n_outputs, width = 2 * n_features;
    const int float32_sums = (compact->options & FLOAT32_SUMS) != 0;
    int64_t rows_a_block = KEY_BLOCK_BYTES / (width * (int64_t)sizeof(uint32_t));
    rows_a_block = rows_a_block < 1 ? 1 : rows_a_block > ROW_BLOCK ? ROW_BLOCK : rows_a_block;
    uint32_t *keys = malloc(sizeof(uint32_t) * (size_t)(rows_a_block * width));
    if (keys == NULL)
        return NO_MEMORY;
    for (int64_t r = 0; r < n_rows; r++)
        memcpy(out + r * n_outputs, compact->baseline, (size_t)n_outputs * sizeof(double));
    for (int64_t start = 0; start < n_rows; start += rows_a_block) {
        const int block = (int)(n_rows - start < rows_a_block ? n_rows - start : rows_a_block);
        for (int r = 0; r < block; r++) {
            const double *in = rows + (start + r) * n_features;
            uint32_t *row = keys + r * width;
            for (int64_t j = 0; j < n_features; j++) {
                const float x = (float)in[j];
                if (float32_sums && isinf(x)) {
                    free(keys);
                    return INFINITE_ROW;
                }
                set_keys(row, j, n_features, x);
            }
        }
        for (int64_t t = 0; t < compact->n_trees; t++) {
            const compact_tree_t tree = compact->trees[t];
            const compact_split_t *splits = compact->splits + tree.splits;
            uint32_t at[ROW_BLOCK];
            for (int r = 0; r < block; r++)
                at[r] = 0;
            for (int level = 0; level < tree.depth; level++) {
                const uint32_t *row = keys;
                for (int r = 0; r < block; r++, row += width) {
                    const compact_split_t split = splits[at[r]];
                    at[r] = 2 * at[r] + 1 + (row[split.key] > split.bound);
                }
            }
            /* the bottom level's slots are 2^depth - 1 onwards, its leaves tree.leaves onwards */
            const double *leaves = compact->leaves;
            const int64_t bottom = tree.leaves - (((int64_t)1 << tree.depth) - 1);
            double *target = out + start * n_outputs + tree.column;
            if (float32_sums)
                for (int r = 0; r < block; r++)
                    target[r * n_outputs] = (double)(float)(target[r * n_outputs] + leaves[bottom + at[r]]);
            else
                for (int r = 0; r < block; r++)
                    target[r * n_outputs] += leaves[bottom + at[r]];
        }
    }
    free(keys);
    return WALKED;
}

/*
 * A batch's walk of a tree or forest (node_t records, float32 rows) over a private copy of its trees, made
 * and checked here from the records and never shared. Each tree is laid out breadth first, so that a
 * split's two children sit side by side: the child where x <= threshold (or a NaN goes, as NAN_LEFT says) at
 * `next`, the other at `next + 1`, after the split. A split compares keys as the boosted copy does (two keys a
 * value: float32_key, with a NaN above every key for one and below for the other), so a step is
 * `next + (key > bound)`: one load of the node, one of the row's key, no child read and nothing to check. A
 * leaf is a node whose bound no key exceeds and whose next is itself.
 *
 * The rows of a block walk one tree together. First every row takes the tree's `plain` steps, the level by
 * which seven rows in eight would have reached a leaf were every split to send half each way (a row on a leaf
 * stays there; on the bench's forest 7/8 took 6 % less time than 1/2, and as long on forests of 20,000 rows); then every row still walking takes one step a round, and a row that reached its leaf leaves the
 * round's list, so few rows step past their own leaf and the rounds' steps are independent of each other (many
 * loads in flight). The block's rows then add their leaves' values in tree order, as tree_walk_output adds them:
 * the same sums, in the same order.
 *
 * The plain steps' loop is unrolled four times and a binary classifier's two sums are added without a loop: on the
 * bench's forest (100 fully grown trees, 8 features) 15.7 against 18.2 ns a row and tree in calls of 100,000 rows
 * (the best of 24 calls each, taking turns, on an idle machine); in calls of 10,000 rows the sums alone took it from
 * 18.1 to 17.1 ns and the unrolling to 15.5. Unrolled further (8), or the rounds' loop too: no faster.
 */
typedef struct {
    uint32_t key;    /* the row's key read: the column, plus n_features where a NaN goes to `next` */
    uint32_t bound;  /* go to `next` where that key <= bound, else to `next + 1`; UINT32_MAX at a leaf */
    int32_t next;    /* a split's first child, after it; a leaf's own index */
} forest_node_t;

typedef struct {
    int64_t n_trees, n_nodes, n_leaves, n_outputs, n_features, averaged;
    int32_t *roots;          /* each tree's root among the nodes */
    int32_t *plain;          /* each tree's steps every row takes before rows that reached a leaf leave the walk */
    forest_node_t *nodes;
    int32_t *leaf;           /* per node: a leaf's row among the leaves' values */
    double *values;          /* [n_leaves][n_outputs] */
} forest_t;

/* Rows a forest copy's walk takes through each tree together: their keys and places stay in the core's cache. */
#define FOREST_BLOCK 256
/* The most bytes of a forest walk's keys at once: fewer rows a block than FOREST_BLOCK where rows are wide, and no
   copy for rows so wide that one row's keys would take more. */
#define FOREST_KEY_BYTES (1 << 20)

/* Free a copy made by tree_walk_forest_make (NULL: nothing). */
void tree_walk_forest_free(forest_t *forest) {
    if (forest == NULL)
        return;
    free(forest->roots);
    free(forest->plain);
    free(forest->nodes);
    free(forest->leaf);
    free(forest->values);
    free(forest);
}

/*
 * A private copy of a tree or forest (tree_walk_output's arguments for the records) for tree_walk_forest, made
 * where its nodes and leaves' values take at most max_bytes; NULL with *status WALKED where they would take
 * more, NO_MEMORY, or what is wrong with the records. Each record is read once and checked as it is read:
 * every root and child inside the nodes, a split's children after it, a leaf's children both itself, every
 * column below n_features. Records whose trees or splits share nodes (which scikit-learn never writes, and
 * the walk of the records allows) get no copy where laying them out would take more nodes than the records
 * hold: a tree is laid out once per path to it. The caller frees it with tree_walk_forest_free.
 */
forest_t *tree_walk_forest_make(const node_t *nodes, int64_t n_nodes, const int32_t *roots, int64_t n_trees,
                                const double *value, int64_t n_outputs, int64_t averaged, int64_t n_features,
                                int64_t max_bytes, int64_t *status) {
    *status = WALKED;  /* no copy, and no error: the model is walked from its records */
    if (n_trees <= 0 || n_nodes <= 0 || n_outputs <= 0 || n_features <= 0
        || (2 * n_features + 1) * (int64_t)sizeof(uint32_t) > FOREST_KEY_BYTES
        || n_nodes > INT32_MAX || n_outputs > max_bytes
        || n_nodes > max_bytes / (int64_t)(sizeof(forest_node_t) + sizeof(int32_t) + sizeof(int32_t)))
        return NULL;
    *status = NO_MEMORY;
    forest_t *forest = calloc(1, sizeof(forest_t));
    int32_t *source = malloc(sizeof(int32_t) * (size_t)n_nodes);  /* the record each copied node was made from */
    int32_t *depth = malloc(sizeof(int32_t) * (size_t)n_nodes);   /* each copied node's depth in its tree */
    if (forest == NULL || source == NULL || depth == NULL)
        goto failed;
    forest->n_trees = n_trees;
    forest->n_outputs = n_outputs;
    forest->n_features = n_features;
    forest->averaged = averaged != 0;
    forest->roots = malloc(sizeof(int32_t) * (size_t)n_trees);
    forest->plain = malloc(sizeof(int32_t) * (size_t)n_trees);
    forest->nodes = malloc(sizeof(forest_node_t) * (size_t)n_nodes);
    forest->leaf = malloc(sizeof(int32_t) * (size_t)n_nodes);
    if (forest->roots == NULL || forest->plain == NULL || forest->nodes == NULL || forest->leaf == NULL)
        goto failed;
    int64_t placed = 0, leaves = 0;
    for (int64_t t = 0; t < n_trees; t++) {
        const int32_t root = READ_ONCE(roots[t]);
        if ((uint64_t)(int64_t)root >= (uint64_t)n_nodes) {
            *status = BAD_ROOT;
            goto failed;
        }
        if (placed >= n_nodes) {
            *status = WALKED;  /* trees sharing nodes: walked from the records, which hold each once */
            goto failed;
        }
        forest->roots[t] = (int32_t)placed;
        forest->plain[t] = -1;
        depth[placed] = 0;
        source[placed++] = root;
        double reached = 0;  /* the share of rows on leaves so far, were every split to send half each way */
        /* breadth first: the nodes from the root's index on are this tree's queue, each laid out where it waits */
        for (int64_t at = forest->roots[t]; at < placed; at++) {
            const int32_t id = source[at];
            const node_t *node = nodes + id;
            const int32_t right = READ_ONCE(node->child[0]), left = READ_ONCE(node->child[1]);
            if (left == id && right == id) {
                forest->nodes[at] = (forest_node_t){0, UINT32_MAX, (int32_t)at};
                forest->leaf[at] = (int32_t)leaves++;
                reached += ldexp(1.0, -depth[at]);  /* leaves come level by level: the depths never fall */
                if (forest->plain[t] < 0 && reached >= 0.875)
                    forest->plain[t] = depth[at];
                continue;
            }
            if (left <= id || right <= id || (uint64_t)(int64_t)left >= (uint64_t)n_nodes
                || (uint64_t)(int64_t)right >= (uint64_t)n_nodes) {
                *status = BAD_CHILD;
                goto failed;
            }
            if (placed + 2 > n_nodes) {
                *status = WALKED;  /* splits sharing a child: walked from the records, which hold it once */
                goto failed;
            }
            const uint32_t feature = READ_ONCE(node->feature);
            const uint32_t column = feature & ~NAN_LEFT;
            if (column >= (uint64_t)n_features) {
                *status = BAD_COLUMN;
                goto failed;
            }
            const float threshold = node->threshold;
            const uint32_t key = column + ((feature & NAN_LEFT) ? (uint32_t)n_features : 0u);
            /* a NaN threshold (never scikit-learn's) sends only a NaN, where NAN_LEFT says, to `next` */
            forest->nodes[at] = (forest_node_t){key, isnan(threshold) ? NAN_BELOW : float32_key(threshold),
                                                (int32_t)placed};
            forest->leaf[at] = -1;
            depth[placed] = depth[placed + 1] = depth[at] + 1;
            source[placed++] = left;
            source[placed++] = right;
        }
    }
    if (leaves * n_outputs > max_bytes / (int64_t)sizeof(double)
        || placed * (int64_t)(sizeof(forest_node_t) + sizeof(int32_t)) + leaves * n_outputs * (int64_t)sizeof(double)
               > max_bytes) {
        *status = WALKED;  /* not an error: the model is walked from its records */
        goto failed;
    }
    forest->n_nodes = placed;
    forest->n_leaves = leaves;
    forest->values = malloc(sizeof(double) * (size_t)(leaves * n_outputs));
    if (forest->values == NULL)
        goto failed;
    for (int64_t at = 0; at < placed; at++)
        if (forest->leaf[at] >= 0)
            memcpy(forest->values + (int64_t)forest->leaf[at] * n_outputs, value + (int64_t)source[at] * n_outputs,
                   sizeof(double) * (size_t)n_outputs);
    free(source);
    free(depth);
    *status = WALKED;
    return forest;
failed:
    free(source);
    free(depth);
    tree_walk_forest_free(forest);
    return NULL;
}

/* One row walking a tree: where its keys start in the block, and the node it is at. */
typedef struct {
    int32_t keys, at;
} forest_lane_t;

/*
 * tree_walk_output's answer for float32 rows[n_rows][n_features] from a copy made by tree_walk_forest_make:
 * the same values, added in the same order. Each row of a block holds its keys and, after them, the node its walk
 * of the tree reached. Returns WALKED, NO_MEMORY, or BAD_COLUMN where the rows are not as wide as the copy's model.
 */
int64_t tree_walk_forest(const forest_t *forest, const float *rows, int64_t n_rows, int64_t n_features, double *out) {
    if (n_features != forest->n_features)
        return BAD_COLUMN;
    const int64_t n_outputs = forest->n_outputs, width = 2 * n_features, stride = width + 1;
    int64_t rows_a_block = FOREST_KEY_BYTES / (stride * (int64_t)sizeof(uint32_t));
    rows_a_block = rows_a_block < 1 ? 1 : rows_a_block > FOREST_BLOCK ? FOREST_BLOCK : rows_a_block;
    uint32_t *keys = malloc(sizeof(uint32_t) * (size_t)(rows_a_block * stride));
    if (keys == NULL)
        return NO_MEMORY;
    forest_lane_t lanes[FOREST_BLOCK];
    if (forest->averaged)
        memset(out, 0, sizeof(double) * (size_t)(n_rows * n_outputs));
    for (int64_t start = 0; start < n_rows; start += rows_a_block) {
        const int block = (int)(n_rows - start < rows_a_block ? n_rows - start : rows_a_block);
        for (int r = 0; r < block; r++)
            for (int64_t j = 0; j < n_features; j++)
                set_keys(keys + r * stride, j, n_features, rows[(start + r) * n_features + j]);
        double *target = out + start * n_outputs;
        for (int64_t t = 0; t < forest->n_trees; t++) {
            const int32_t root = forest->roots[t];
            for (int r = 0; r < block; r++)
                lanes[r] = (forest_lane_t){(int32_t)(r * stride), root};
            for (int32_t level = 0; level < forest->plain[t]; level++)
#pragma GCC unroll 4
                for (int r = 0; r < block; r++) {
                    const forest_node_t node = forest->nodes[lanes[r].at];
                    lanes[r].at = node.next + (keys[lanes[r].keys + node.key] > node.bound);
                }
            /* every step goes to a later node or stays on a leaf, which then leaves the list: the rounds end */
            for (int live = block; live > 0;) {
                int kept = 0;
                for (int i = 0; i < live; i++) {
                    const forest_lane_t lane = lanes[i];
                    const forest_node_t node = forest->nodes[lane.at];
                    const int32_t next = node.next + (keys[lane.keys + node.key] > node.bound);
                    keys[lane.keys + width] = (uint32_t)next;
                    lanes[kept] = (forest_lane_t){lane.keys, next};
                    kept += next != lane.at;
                }
                live = kept;
            }
            if (forest->averaged && n_outputs == 2)  /* a binary classifier's two sums, without a loop */
                for (int r = 0; r < block; r++) {
                    const double *leaf = forest->values + 2 * (int64_t)forest->leaf[keys[r * stride + width]];
                    target[2 * r] += leaf[0];
                    target[2 * r + 1] += leaf[1];
                }
            else
                for (int r = 0; r < block; r++) {
                    const double *leaf = forest->values + (int64_t)forest->leaf[keys[r * stride + width]] * n_outputs;
                    double *sums = target + r * n_outputs;
                    if (!forest->averaged)
                        memcpy(sums, leaf, sizeof(double) * (size_t)n_outputs);
                    else
                        for (int64_t j = 0; j < n_outputs; j++)
                            sums[j] += leaf[j];
                }
        }
    }
    free(keys);
    if (forest->averaged) {
        const double trees = (double)forest->n_trees;
        for (int64_t j = 0; j < n_rows * n_outputs; j++)
            out[j] /= trees;
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

/*
 * The four walks again, each run on a thread of low priority (low_priority.h) and waited for: what
 * tree_walk.py calls for a large call while the service asks it to (LOW_PRIORITY_FROM_WALKS).
 */
#define OUTPUT_PARAMETERS(P, L)                                                                                 \
    P(const node_t *, nodes) P(int64_t, n_nodes) P(const int32_t *, roots) P(int64_t, n_trees)                  \
    P(const double *, value) P(int64_t, n_outputs) P(int64_t, averaged) P(const float *, rows)                  \
    P(int64_t, n_rows) P(int64_t, n_features) L(double *, out)
LOWERED(tree_walk_output, OUTPUT_PARAMETERS)

#define BOOSTED_PARAMETERS(P, L)                                                                                \
    P(const wide_node_t *, nodes) P(int64_t, n_nodes) P(const int32_t *, roots) P(const int32_t *, columns)     \
    P(int64_t, n_trees) P(const double *, value) P(const uint32_t *, bitsets) P(int64_t, n_bitsets)             \
    P(const double *, baseline) P(int64_t, n_outputs) P(int64_t, options) P(int64_t, depth)                     \
    P(const double *, rows) P(int64_t, n_rows) P(int64_t, n_features) L(double *, out)
LOWERED(tree_walk_boosted, BOOSTED_PARAMETERS)

#define COMPACT_PARAMETERS(P, L)                                                                                \
    P(const compact_t *, compact) P(const double *, rows) P(int64_t, n_rows) P(int64_t, n_features)             \
    L(double *, out)
LOWERED(tree_walk_compact, COMPACT_PARAMETERS)

#define FOREST_PARAMETERS(P, L)                                                                                 \
    P(const forest_t *, forest) P(const float *, rows) P(int64_t, n_rows) P(int64_t, n_features)                \
    L(double *, out)
LOWERED(tree_walk_forest, FOREST_PARAMETERS)
