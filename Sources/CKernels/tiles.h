/* The int8 and 4-bit products work on tiles of up to 4 rows by 3 column blocks, with tile
 * sizes fixed at compile time. TILE_DISPATCH(mr, nr, CALL) runs CALL(MR, NR) for the tile of
 * mr x nr (1 <= mr <= 4, 1 <= nr <= 3). */
#ifndef CKERNELS_TILES_H
#define CKERNELS_TILES_H

#define TILE_DISPATCH(mr, nr, CALL)              \
    switch ((mr) * 4 + (nr)) {                   \
    case 4 * 4 + 3: CALL(4, 3); break;           \
    case 4 * 4 + 2: CALL(4, 2); break;           \
    case 4 * 4 + 1: CALL(4, 1); break;           \
    case 3 * 4 + 3: CALL(3, 3); break;           \
    case 3 * 4 + 2: CALL(3, 2); break;           \
    case 3 * 4 + 1: CALL(3, 1); break;           \
    case 2 * 4 + 3: CALL(2, 3); break;           \
    case 2 * 4 + 2: CALL(2, 2); break;           \
    case 2 * 4 + 1: CALL(2, 1); break;           \
    case 1 * 4 + 3: CALL(1, 3); break;           \
    case 1 * 4 + 2: CALL(1, 2); break;           \
    default: CALL(1, 1); break;                  \
    }

#endif
