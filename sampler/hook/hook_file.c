/*
 * hook_file.c - the library removes its own file from the target's /dev/shm or /tmp while it
 * is being loaded.
 *
 * memsnap names the image file (/dev/shm/libmemsnap_hook-<memsnap pid>-<16 hex>.so, else the
 * same in /tmp) only once the hijacked thread is committed to the dlopen that loads it
 * (sampler/inject/inject_lib.c), and unlinks it when that dlopen returns. If memsnap is killed
 * in between, the thread still finishes the dlopen on its own (the call stub restores it
 * afterwards) but nobody is left to unlink the name: so this constructor, which dlopen runs in
 * that thread, does it. The mapping keeps the library alive (maps then shows "(deleted)", as
 * after memsnap's own unlink), and memsnap finds a loaded copy through its mapping, not its
 * name. Only a path of exactly that form is removed: the library loaded from anywhere else
 * (the build directory, a test's dlopen, a memfd) leaves its file alone.
 *
 * The constructor runs under the loader's lock; dladdr takes the same recursive lock, and
 * unlink is one syscall: nothing blocks, nothing allocates.
 */
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#define FILE_STEM       "libmemsnap_hook-"
#define FILE_RANDOM_HEX 16
#define FILE_PID_MAX    10

/* 1 if s starts with n > 0 characters of set, exactly, followed by c; sets *end past c. */
static int span_then(const char *s, const char *set, size_t min, size_t max, char c,
                     const char **end)
{
    size_t n = strspn(s, set);
    if (n < min || n > max || s[n] != c)
        return 0;
    *end = s + n + 1;
    return 1;
}

/* 1 if path is "/dev/shm/" or "/tmp/" + "libmemsnap_hook-<digits>-<16 hex>.so". */
static int is_memsnap_image_path(const char *path)
{
    const char *base;
    if (strncmp(path, "/dev/shm/", 9) == 0)
        base = path + 9;
    else if (strncmp(path, "/tmp/", 5) == 0)
        base = path + 5;
    else
        return 0;
    if (strncmp(base, FILE_STEM, sizeof FILE_STEM - 1) != 0)
        return 0;
    const char *p = base + sizeof FILE_STEM - 1, *q;
    if (!span_then(p, "0123456789", 1, FILE_PID_MAX, '-', &q) ||
        !span_then(q, "0123456789abcdef", FILE_RANDOM_HEX, FILE_RANDOM_HEX, '.', &p))
        return 0;
    return strcmp(p, "so") == 0;
}

__attribute__((constructor)) static void hook_file_unlink(void)
{
    Dl_info info;
    if (dladdr((void *)&hook_file_unlink, &info) && info.dli_fname &&
        is_memsnap_image_path(info.dli_fname))
        unlink(info.dli_fname);
}
