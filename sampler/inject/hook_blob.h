/*
 * hook_blob.h - the bytes of libmemsnap_hook.so, embedded at build time (hook_blob.S).
 */
#ifndef MEMSNAP_HOOK_BLOB_H
#define MEMSNAP_HOOK_BLOB_H

#include <stddef.h>

extern const unsigned char memsnap_hook_blob[];
extern const unsigned char memsnap_hook_blob_end[];

static inline size_t hook_blob_size(void)
{
    return (size_t)(memsnap_hook_blob_end - memsnap_hook_blob);
}

#endif
