/*
 * Exact inference for a single-output decision tree or random forest over flat node records.
 *
 * Loaded by registry/serving/tree_walk.py with ctypes: plain C, no Python API, so the one library
 * serves every Python build. It gives bit for bit what scikit-learn gives with n_jobs=1:
 *
 * - a row goes left where x <= threshold, x being the row's float32 value and the threshold the
 *   largest float32 at or below scikit-learn's float64 one (the same answer for every float32 x);
 *   a NaN goes where the node's NAN_LEFT bit says (scikit-learn's missing_go_to_left);
 * - a forest adds its trees' leaf rows to zeros in tree order, then divides by the number of trees,
 *   in double precision with nothing fused or reordered (built with -ffp-contract=off);
 * - a single tree answers its leaf's row as it is.
 *
 * The caller has checked the records (tree_walk.py: every child within the nodes and either the node
 * itself, at a leaf, or after it), so every walk reads inside the arrays and ends.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NAN_LEFT 0x80000000u
/*
 * Walks in flight at once. One walk is a chain of dependent loads (node, then the row's value, then
 * the next node); eight independent chains keep the core and the memory system busy while each waits.
 */
#define LANES 8

/* One node in 16 bytes, four to a cache line: one line a visit. */
typedef struct {
    float threshold;   /* go to child[1] when x <= threshold; +inf at a leaf */
    uint32_t feature;  /* the column tested, with NAN_LEFT set when a NaN goes left */
    int32_t child[2];  /* [0] where x > threshold goes, [1] where x <= threshold goes; a leaf's are itself */
} node_t;

/* The record's size, which tree_walk.py checks against its own description of a node. */
int64_t tree_walk_node_size(void) { return (int64_t)sizeof(node_t); }

/*
 * Walk lanes[0..n) from their start nodes to their leaves; row[i] is lane i's row.
 * Every lane steps every round (a leaf steps to itself) until a round in which none moved.
 */
static void walk(const node_t *nodes, int64_t *lanes, const float *const *row, int n) {
    int moved = 1;
    while (moved) {
        moved = 0;
        for (int i = 0; i < n; i++) {
            const node_t *node = nodes + lanes[i];
            float x = row[i][node->feature & ~NAN_LEFT];
            int left = isnan(x) ? (int)(node->feature >> 31) : x <= node->threshold;
            int64_t next = node->child[left];
            moved |= next != lanes[i];
            lanes[i] = next;
        }
    }
}

/*
 * out[n_rows][n_outputs] = the model's output for rows[n_rows][n_features].
 *
 * The (tree, row) pairs are walked in tree-major order, LANES at a time: for one row the lanes are
 * eight trees, for a batch eight rows of one tree. Each row's outputs are therefore added in tree order.
 */
void tree_walk_output(const node_t *nodes, const int32_t *roots, int64_t n_trees, const double *value,
                      int64_t n_outputs, int64_t averaged, const float *rows, int64_t n_rows, int64_t n_features,
                      double *out) {
    const int64_t pairs = n_trees * n_rows;
    if (averaged)
        memset(out, 0, (size_t)(n_rows * n_outputs) * sizeof(double));
    for (int64_t first = 0; first < pairs; first += LANES) {
        const int n = pairs - first < LANES ? (int)(pairs - first) : LANES;
        int64_t lanes[LANES];
        const float *row[LANES];
        for (int i = 0; i < n; i++) {
            lanes[i] = roots[(first + i) / n_rows];
            row[i] = rows + ((first + i) % n_rows) * n_features;
        }
        walk(nodes, lanes, row, n);
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
}
