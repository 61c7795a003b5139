/*
 * hook_blob.S - embeds build/libmemsnap_hook.so into memsnap, so the tool is one file and the
 * library reaches the target through a memfd (no path has to exist in its mount namespace).
 * See hook_blob.h.
 */
    .section .rodata
    .balign 64
    .globl memsnap_hook_blob
    .globl memsnap_hook_blob_end
memsnap_hook_blob:
    .incbin HOOK_PATH
memsnap_hook_blob_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
