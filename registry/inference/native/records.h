/*
 * The node records the walker (tree_walk.c) and the explainer (tree_shap.c) read, shared by both:
 * registry/inference/tree_walk.py describes the same records as NumPy dtypes and checks their sizes.
 */
#ifndef REGISTRY_RECORDS_H
#define REGISTRY_RECORDS_H

#include <stdint.h>

#define NAN_LEFT 0x80000000u
/* Set in a wide record's feature where the split is categorical. */
#define CATEGORICAL 0x40000000u
/* Set in a wide record's feature where a zero goes where a NaN goes (LightGBM's zero_as_missing). */
#define ZERO_MISSING 0x20000000u
/* Words of one block of a categorical split's set: 256 bits, one per category. */
#define BITSET_WORDS 8
/* One load of a value another process may change meanwhile: what is checked is what is used. */
#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* What the library's calls return; tree_walk.py names each. */
enum { WALKED = 0, BAD_ROOT = 1, BAD_CHILD = 2, BAD_COLUMN = 3, NOT_A_LEAF = 4, BAD_OUTPUT = 5, BAD_BITSET = 6,
       TOO_DEEP = 7 };

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

#endif
