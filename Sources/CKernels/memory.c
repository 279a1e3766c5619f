// Allocator settings for a process that allocates and frees matrices of a few megabytes again and
// again (the vision tower, whose shapes change as tokens merge).
#include "ckernels.h"

#include <malloc.h>

void k_keep_freed_memory(void) {
    // Blocks up to 32 MB come from the heap instead of their own mappings, and up to 512 MB of
    // freed heap stays in the process, so freed pages are reused instead of faulting in again.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
}
