/*
 * hook.c - placeholder for the injected library's entry point; replaced by the real hook.
 */
#include <errno.h>

#include "hook_abi.h"

__attribute__((visibility("default"))) int memsnap_hook_start(const struct mshook_config *cfg)
{
    (void)cfg;
    return -ENOSYS;
}
