/*
 * CimFS emulator: the two cimfs.dll entry points cimq calls, with the same
 * C ABI, for machines without the real driver. It is not a mock: it blocks
 * like the driver call, and its mount table lives on disk (one directory per
 * volume under a state root) so that mounts outlive the process that made
 * them, as kernel mounts do.
 *
 * Environment, read on every call so a test can change it between runs:
 *   CIMFS_EMULATOR_ROOT        state directory (default <tmpdir>/cimfs-emulator)
 *   CIMFS_EMULATOR_LATENCY_MS  sleep this long inside every call
 *   CIMFS_EMULATOR_FAIL        "op:0xHRESULT[:count][,op:...]" (op = mount|dismount)
 *   CIMFS_EMULATOR_CRASH       abort() at before-mount|after-mount|before-dismount|after-dismount
 *   CIMFS_EMULATOR_HANG        "op:/path/to/release-file": calls of op block until
 *                              that file exists, as a wedged driver call would;
 *                              each blocked call shows as "<release-file>.waiting.<n>"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(_WIN32)
#define CIMAPI __declspec(dllexport) __stdcall
#else
#define CIMAPI __attribute__((visibility("default")))
#endif

typedef int32_t HRESULT;
typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

/* Win32 errors as HRESULT_FROM_WIN32, the codes cimfs.dll answers with. */
#define S_OK ((HRESULT)0)
#define HR_FILE_NOT_FOUND ((HRESULT)0x80070002)
#define HR_PATH_NOT_FOUND ((HRESULT)0x80070003)
#define HR_ACCESS_DENIED ((HRESULT)0x80070005)
#define HR_OUTOFMEMORY ((HRESULT)0x8007000E)
#define HR_INVALID_PARAMETER ((HRESULT)0x80070057)
#define HR_ALREADY_EXISTS ((HRESULT)0x800700B7)
#define HR_GEN_FAILURE ((HRESULT)0x8007001F)

/* Every flag hcsshim knows; anything else is rejected as the driver would. */
#define KNOWN_FLAGS 0xBFu

/* Linux paths are at most 4096 bytes; buffers leave room for our suffixes. */
#define ROOT_MAX 4096
#define PATH_BUF (ROOT_MAX + 256)

static pthread_mutex_t g_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_fail_spec[512];
static unsigned long g_fail_seen[2];
static unsigned long g_tmp_counter;

static void emulate_latency(void) {
    const char *v = getenv("CIMFS_EMULATOR_LATENCY_MS");
    if (!v || !*v) return;
    long ms = strtol(v, NULL, 10);
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* A call that does not return until the test lets it, by creating a file. */
static void maybe_hang(const char *op) {
    const char *v = getenv("CIMFS_EMULATOR_HANG");
    size_t n = strlen(op);
    if (!v || strncmp(v, op, n) != 0 || v[n] != ':') return;
    char release[ROOT_MAX];
    snprintf(release, sizeof release, "%s", v + n + 1);
    /* A marker per blocked call, so a test can see how many block at once. */
    static unsigned long waiters;
    char marker[ROOT_MAX + 32];
    snprintf(marker, sizeof marker, "%s.waiting.%lu", release, __atomic_add_fetch(&waiters, 1, __ATOMIC_SEQ_CST));
    int fd = open(marker, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    struct timespec ts = {0, 20 * 1000000L};
    while (access(release, F_OK) != 0) nanosleep(&ts, NULL);
    unlink(marker);
}

static void maybe_crash(const char *point) {
    const char *v = getenv("CIMFS_EMULATOR_CRASH");
    if (v && strcmp(v, point) == 0) abort();
}

/*
 * Injected failure for op (0 mount, 1 dismount). A count limits it to the
 * first N calls of that op since the spec last changed, so a test can model
 * a transient fault that clears on retry.
 */
static HRESULT injected_failure(int op) {
    const char *spec = getenv("CIMFS_EMULATOR_FAIL");
    const char *name = op == 0 ? "mount" : "dismount";
    HRESULT hr = S_OK;
    if (!spec || !*spec) return S_OK;
    pthread_mutex_lock(&g_fail_lock);
    if (strncmp(spec, g_fail_spec, sizeof g_fail_spec) != 0) {
        snprintf(g_fail_spec, sizeof g_fail_spec, "%s", spec);
        g_fail_seen[0] = g_fail_seen[1] = 0;
    }
    unsigned long seen = ++g_fail_seen[op];
    char copy[512];
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        if (!colon) continue;
        *colon = '\0';
        if (strcmp(item, name) != 0) continue;
        char *end = NULL;
        unsigned long code = strtoul(colon + 1, &end, 16);
        unsigned long count = 0;
        if (end && *end == ':') count = strtoul(end + 1, NULL, 10);
        if (count == 0 || seen <= count) hr = (HRESULT)(uint32_t)code;
        break;
    }
    pthread_mutex_unlock(&g_fail_lock);
    return hr;
}

/* UTF-16 (the PCWSTR the API takes) to UTF-8; NULL on unpaired surrogates. */
static char *utf16_to_utf8(const uint16_t *s) {
    size_t n = 0;
    while (s[n]) n++;
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF) {
            if (i + 1 >= n || s[i + 1] < 0xDC00 || s[i + 1] > 0xDFFF) goto bad;
            c = 0x10000 + ((c - 0xD800) << 10) + (s[++i] - 0xDC00);
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
            goto bad;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static void state_root(char *buf, size_t len) {
    const char *root = getenv("CIMFS_EMULATOR_ROOT");
    if (root && *root) {
        snprintf(buf, len, "%s", root);
        return;
    }
    /* Same order as Node's os.tmpdir(), so tools can find the default. */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = getenv("TMP");
    if (!tmp || !*tmp) tmp = getenv("TEMP");
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(buf, len, "%s", tmp);
    size_t l = strlen(buf);
    while (l > 1 && buf[l - 1] == '/') buf[--l] = '\0';
    snprintf(buf + l, len - l, "/cimfs-emulator");
}

/* The volume directory name is built from the GUID's numbers only, so no
 * GUID can name anything outside the state root. */
static void volume_dir(char *buf, size_t len, const char *root, const GUID *g) {
    snprintf(buf, len,
             "%s/Volume{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", root,
             (unsigned)g->Data1, (unsigned)g->Data2, (unsigned)g->Data3,
             g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3], g->Data4[4],
             g->Data4[5], g->Data4[6], g->Data4[7]);
}

static HRESULT hr_from_errno(int e) {
    switch (e) {
    case ENOENT: return HR_PATH_NOT_FOUND;
    case EACCES:
    case EPERM: return HR_ACCESS_DENIED;
    case ENOMEM: return HR_OUTOFMEMORY;
    case EEXIST:
    case ENOTEMPTY: return HR_ALREADY_EXISTS;
    default: return HR_GEN_FAILURE;
    }
}

static int write_record(const char *dir, const char *full, const char *d, const char *n, uint32_t flags) {
    char path[PATH_BUF + 16];
    snprintf(path, sizeof path, "%s/mount.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    /* What the call received, so tests can check paths arrive intact. */
    int ok = fprintf(f, "image=%s\ndir=%s\nname=%s\nflags=0x%x\npid=%ld\n", full, d, n, flags, (long)getpid()) > 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[PATH_BUF + 16];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static unsigned long next_tmp_id(void) {
    return __atomic_add_fetch(&g_tmp_counter, 1, __ATOMIC_SEQ_CST);
}

CIMAPI HRESULT CimMountImage(const uint16_t *imageContainingPath, const uint16_t *imageName,
                             uint32_t mountImageFlags, const GUID *volumeId) {
    emulate_latency();
    maybe_hang("mount");
    maybe_crash("before-mount");
    HRESULT hr = injected_failure(0);
    if (hr != S_OK) return hr;
    if (!imageContainingPath || !imageName || !volumeId || (mountImageFlags & ~KNOWN_FLAGS))
        return HR_INVALID_PARAMETER;

    char *dir = utf16_to_utf8(imageContainingPath);
    char *name = utf16_to_utf8(imageName);
    char full[ROOT_MAX], root[ROOT_MAX], vol[PATH_BUF], tmp[PATH_BUF];
    struct stat st;
    hr = S_OK;
    if (!dir || !name || !*dir || !*name || strchr(name, '/') || strlen(dir) + strlen(name) + 2 > ROOT_MAX) {
        hr = HR_INVALID_PARAMETER;
        goto out;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        hr = HR_PATH_NOT_FOUND;
        goto out;
    }
    snprintf(full, sizeof full, "%s/%s", dir, name);
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = HR_FILE_NOT_FOUND;
        goto out;
    }
    state_root(root, sizeof root);
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        hr = hr_from_errno(errno);
        goto out;
    }
    volume_dir(vol, sizeof vol, root, volumeId);
    if (access(vol, F_OK) == 0) {
        hr = HR_ALREADY_EXISTS;
        goto out;
    }
    /* Build the volume under a private name, then rename it into place: the
     * rename is the atomic moment the volume becomes mounted, and a rename
     * onto an existing (non-empty) volume fails, so two racing mounts of one
     * GUID cannot both succeed. */
    snprintf(tmp, sizeof tmp, "%s/.mounting-%ld-%lu", root, (long)getpid(), next_tmp_id());
    if (mkdir(tmp, 0755) != 0) {
        hr = hr_from_errno(errno);
        goto out;
    }
    if (write_record(tmp, full, dir, name, mountImageFlags) != 0) {
        hr = hr_from_errno(errno);
        remove_tree(tmp);
        goto out;
    }
    if (rename(tmp, vol) != 0) {
        hr = hr_from_errno(errno);
        remove_tree(tmp);
        goto out;
    }
    maybe_crash("after-mount");
out:
    free(dir);
    free(name);
    return hr;
}

CIMAPI HRESULT CimDismountImage(const GUID *volumeId) {
    emulate_latency();
    maybe_hang("dismount");
    maybe_crash("before-dismount");
    HRESULT hr = injected_failure(1);
    if (hr != S_OK) return hr;
    if (!volumeId) return HR_INVALID_PARAMETER;
    char root[ROOT_MAX], vol[PATH_BUF], gone[PATH_BUF];
    state_root(root, sizeof root);
    volume_dir(vol, sizeof vol, root, volumeId);
    /* Rename first so the volume disappears atomically, then remove it. */
    snprintf(gone, sizeof gone, "%s/.dismounting-%ld-%lu", root, (long)getpid(), next_tmp_id());
    if (rename(vol, gone) != 0) return errno == ENOENT ? HR_FILE_NOT_FOUND : hr_from_errno(errno);
    remove_tree(gone);
    maybe_crash("after-dismount");
    return S_OK;
}

/*
 * Not part of cimfs.dll: tells cimq's emulator backend where the mount table
 * lives, so the default is decided in one place. Returns the length written
 * (UTF-8, NUL-terminated) or the length needed when the buffer is too small.
 */
CIMAPI int32_t CimEmulatorStateRoot(char *buffer, uint32_t capacity) {
    char root[ROOT_MAX];
    state_root(root, sizeof root);
    size_t n = strlen(root);
    if (buffer && capacity > n) memcpy(buffer, root, n + 1);
    return (int32_t)n;
}
