/*
 * The node records the walker (tree_walk.c) and the explainer (tree_shap.c) read, shared by both:
 * registry/inference/tree_walk.py describes the same records as NumPy dtypes and checks their sizes.
 */
#ifndef REGISTRY_RECORDS_H
#define REGISTRY_RECORDS_H

#include <math.h>
#include <stdint.h>

#define NAN_LEFT 0x80000000u
/* Set in a wide record's feature where the split is categorical. */
#define CATEGORICAL 0x40000000u
/* Set in a wide record's feature where a zero goes where a NaN goes (LightGBM's zero_as_missing). */
#define ZERO_MISSING 0x20000000u
/* Every flag a wide record's feature may carry: the column is what is left. */
#define WIDE_FLAGS (NAN_LEFT | CATEGORICAL | ZERO_MISSING)
/* Words of one block of a categorical split's set: 256 bits, one per category. */
#define BITSET_WORDS 8
/* A call's option: a row's values within LightGBM's kZeroThreshold (1e-35f) of zero are read as zero, as
   LightGBM reads a dense row. */
#define LIGHTGBM_ROWS 2
#define ZERO_THRESHOLD ((double)1e-35f)
/* One load of a value another process may change meanwhile: what is checked is what is used. */
#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* What the library's calls return; tree_walk.py names each. */
enum { WALKED = 0, BAD_ROOT = 1, BAD_CHILD = 2, BAD_COLUMN = 3, NOT_A_LEAF = 4, BAD_OUTPUT = 5, BAD_BITSET = 6,
       TOO_DEEP = 7, INFINITE_ROW = 8, NO_MEMORY = 9, TIMED_OUT = 10 };

/* One node in 16 bytes, four to a cache line: one line a visit. */
typedef struct {
    float threshold;   /* go to child[1] when x <= threshold; +inf at a leaf */
    uint32_t feature;  /* the column tested, with NAN_LEFT set when a NaN goes left */
    int32_t child[2];  /* [0] where x > threshold goes, [1] where x <= threshold goes; a leaf's are itself */
} node_t;

/* One node of a boosted tree in 24 bytes. */
typedef struct {
    double threshold;  /* go to child[1] when x <= threshold (a numeric split); +inf at a leaf; a categorical
                          split's size in bits (whole blocks of 256) */
    uint32_t feature;  /* the column tested, with NAN_LEFT, CATEGORICAL and ZERO_MISSING set as they apply */
    uint32_t bitset;   /* a categorical split's set: its first block, words [bitset * 8, ...) of the bitsets */
    int32_t child[2];  /* as in node_t */
} wide_node_t;

/*
 * Where the row's value x goes at the wide split node `node`, whose feature word (read once by the caller)
 * is `feature`: 1 for child[1], 0 for child[0], or -1 where a categorical split's word is outside the
 * n_bitsets blocks of `bitsets` (nothing outside them is read). The one rule the walker (tree_walk.c) and
 * the explainer (tree_shap.c) both follow, so an explanation is always of the walk's answer:
 *
 * - with lightgbm_rows, a value within kZeroThreshold of zero is read as zero first;
 * - a NaN goes where NAN_LEFT says;
 * - a categorical split sends a category (the value truncated toward zero, as C++'s static_cast<int> does:
 *   (-1, 0) is category 0) left where its bit is set in the node's set, whole 256-bit blocks as many as the
 *   node's threshold says in bits; a value at or below -1 or one past the set goes where a NaN goes;
 * - a numeric split with ZERO_MISSING sends a zero where a NaN goes (LightGBM's zero_as_missing);
 * - any other value goes to child[1] where x <= threshold.
 */
static inline int wide_goes_left(const wide_node_t *node, uint32_t feature, double x, int lightgbm_rows,
                                 const uint32_t *bitsets, uint64_t n_bitsets) {
    if (lightgbm_rows && fabs(x) <= ZERO_THRESHOLD)
        x = 0.0;
    const int nan_left = (int)(feature >> 31);
    if (isnan(x))
        return nan_left;
    if (feature & CATEGORICAL) {
        /* 2^32 bounds the cast whatever the threshold says */
        if (!(x > -1.0 && x < node->threshold && x < 4294967296.0))
            return nan_left;
        const uint32_t category = (uint32_t)x;
        const uint64_t word = (uint64_t)READ_ONCE(node->bitset) * BITSET_WORDS + category / 32;
        if (word >= n_bitsets * BITSET_WORDS)
            return -1;
        return (int)((bitsets[word] >> (category % 32)) & 1u);
    }
    if ((feature & ZERO_MISSING) && x == 0.0)
        return nan_left;
    return x <= node->threshold;
}

#endif
