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
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Platform layer. The emulator works on UTF-8 paths; on Windows every file
 * system call converts them back to UTF-16 and uses the wide API (the narrow
 * one speaks the ANSI code page), and the environment is read live with
 * GetEnvironmentVariableW, as the process's own changes must be seen.
 */
#if defined(_WIN32)
#include <windows.h>
#include <io.h>
#include <process.h>
#include <wchar.h>
#define CIMAPI __declspec(dllexport) __stdcall
#define CIMAPI_C __declspec(dllexport)
#define SEP "\\"
typedef struct _stat64 xstat_t;
static SRWLOCK g_fail_lock = SRWLOCK_INIT;
static void lock_fail(void) { AcquireSRWLockExclusive(&g_fail_lock); }
static void unlock_fail(void) { ReleaseSRWLockExclusive(&g_fail_lock); }
static long current_pid(void) { return (long)GetCurrentProcessId(); }
static void sleep_ms(long ms) { Sleep((DWORD)ms); }

/* UTF-8 → a freshly allocated UTF-16 string; NULL on failure. */
static wchar_t *wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) return NULL;
    wchar_t *w = malloc((size_t)n * sizeof *w);
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    return w;
}
#define WIDE_CALL(expr_with_w, path, fail)  \
    do {                                    \
        wchar_t *w = wide(path);            \
        if (!w) { errno = EINVAL; return fail; } \
        __typeof__(expr_with_w) r_ = expr_with_w; \
        int e_ = errno;                     \
        free(w);                            \
        errno = e_;                         \
        return r_;                          \
    } while (0)
static int xstat(const char *p, xstat_t *st) { WIDE_CALL(_wstat64(w, st), p, -1); }
static int xmkdir(const char *p) { WIDE_CALL(_wmkdir(w), p, -1); }
static int xrmdir(const char *p) { WIDE_CALL(_wrmdir(w), p, -1); }
static int xunlink(const char *p) { WIDE_CALL(_wunlink(w), p, -1); }
static int xexists(const char *p) { WIDE_CALL(_waccess(w, 0) == 0, p, 0); }
static FILE *xfopen_w(const char *p) { WIDE_CALL(_wfopen(w, L"wb"), p, NULL); } /* binary: same bytes as on Linux */
static int xrename(const char *from, const char *to) {
    wchar_t *wf = wide(from), *wt = wide(to);
    int r = -1;
    if (wf && wt) r = _wrename(wf, wt);
    else errno = EINVAL;
    int e = errno;
    free(wf);
    free(wt);
    errno = e;
    return r;
}
/* The variable's value as UTF-8 in buf, or NULL when unset or empty. */
static const char *xgetenv(const char *name, char *buf, size_t len) {
    wchar_t wname[64], wval[4096];
    if (MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 64) <= 0) return NULL;
    DWORD n = GetEnvironmentVariableW(wname, wval, 4096);
    if (n == 0 || n >= 4096) return NULL;
    if (WideCharToMultiByte(CP_UTF8, 0, wval, -1, buf, (int)len, NULL, NULL) <= 0) return NULL;
    return buf;
}
/* Removes a volume directory and the files in it. */
static void remove_tree(const char *dir) {
    char pattern[8192];
    snprintf(pattern, sizeof pattern, "%s\\*", dir);
    wchar_t *wp = wide(pattern);
    if (wp) {
        WIN32_FIND_DATAW fd;
        HANDLE h = FindFirstFileW(wp, &fd);
        if (h != INVALID_HANDLE_VALUE) {
            do {
                if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0) continue;
                char name[1024], path[9216];
                if (WideCharToMultiByte(CP_UTF8, 0, fd.cFileName, -1, name, sizeof name, NULL, NULL) <= 0) continue;
                snprintf(path, sizeof path, "%s\\%s", dir, name);
                xunlink(path);
            } while (FindNextFileW(h, &fd));
            FindClose(h);
        }
        free(wp);
    }
    xrmdir(dir);
}
#else
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#define CIMAPI __attribute__((visibility("default")))
#define CIMAPI_C CIMAPI
#define SEP "/"
typedef struct stat xstat_t;
static pthread_mutex_t g_fail_mutex = PTHREAD_MUTEX_INITIALIZER;
static void lock_fail(void) { pthread_mutex_lock(&g_fail_mutex); }
static void unlock_fail(void) { pthread_mutex_unlock(&g_fail_mutex); }
static long current_pid(void) { return (long)getpid(); }
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}
static int xstat(const char *p, xstat_t *st) { return stat(p, st); }
static int xmkdir(const char *p) { return mkdir(p, 0755); }
static int xrmdir(const char *p) { return rmdir(p); }
static int xunlink(const char *p) { return unlink(p); }
static int xexists(const char *p) { return access(p, F_OK) == 0; }
static FILE *xfopen_w(const char *p) { return fopen(p, "w"); }
static int xrename(const char *from, const char *to) { return rename(from, to); }
static const char *xgetenv(const char *name, char *buf, size_t len) {
    const char *v = getenv(name);
    if (!v || !*v) return NULL;
    snprintf(buf, len, "%s", v);
    return buf;
}
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[8192];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            xunlink(path);
        }
        closedir(d);
    }
    xrmdir(dir);
}
#endif

#if !defined(_WIN32) /* windows.h has these, with the same layout */
typedef int32_t HRESULT;
typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;
#endif

/* Win32 errors as HRESULT_FROM_WIN32, the codes cimfs.dll answers with. */
#ifndef S_OK
#define S_OK ((HRESULT)0)
#endif
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

static char g_fail_spec[512];
static unsigned long g_fail_seen[2];
static unsigned long g_tmp_counter;

static void emulate_latency(void) {
    char buf[64];
    const char *v = xgetenv("CIMFS_EMULATOR_LATENCY_MS", buf, sizeof buf);
    if (!v) return;
    long ms = strtol(v, NULL, 10);
    if (ms > 0) sleep_ms(ms);
}

/* A call that does not return until the test lets it, by creating a file. */
static void maybe_hang(const char *op) {
    char buf[ROOT_MAX + 32];
    const char *v = xgetenv("CIMFS_EMULATOR_HANG", buf, sizeof buf);
    size_t n = strlen(op);
    if (!v || strncmp(v, op, n) != 0 || v[n] != ':') return;
    char release[ROOT_MAX];
    snprintf(release, sizeof release, "%s", v + n + 1);
    /* A marker per blocked call, so a test can see how many block at once. */
    static unsigned long waiters;
    char marker[ROOT_MAX + 32];
    snprintf(marker, sizeof marker, "%s.waiting.%lu", release, __atomic_add_fetch(&waiters, 1, __ATOMIC_SEQ_CST));
    FILE *f = xfopen_w(marker);
    if (f) fclose(f);
    while (!xexists(release)) sleep_ms(20);
    xunlink(marker);
}

static void maybe_crash(const char *point) {
    char buf[64];
    const char *v = xgetenv("CIMFS_EMULATOR_CRASH", buf, sizeof buf);
    if (v && strcmp(v, point) == 0) abort();
}

/*
 * Injected failure for op (0 mount, 1 dismount). A count limits it to the
 * first N calls of that op since the spec last changed, so a test can model
 * a transient fault that clears on retry.
 */
static HRESULT injected_failure(int op) {
    char buf[512];
    const char *spec = xgetenv("CIMFS_EMULATOR_FAIL", buf, sizeof buf);
    const char *name = op == 0 ? "mount" : "dismount";
    HRESULT hr = S_OK;
    if (!spec) return S_OK;
    lock_fail();
    if (strncmp(spec, g_fail_spec, sizeof g_fail_spec) != 0) {
        snprintf(g_fail_spec, sizeof g_fail_spec, "%s", spec);
        g_fail_seen[0] = g_fail_seen[1] = 0;
    }
    unsigned long seen = ++g_fail_seen[op];
    char copy[512];
    snprintf(copy, sizeof copy, "%s", spec);
    for (char *item = copy, *next; item && *item; item = next) {
        next = strchr(item, ',');
        if (next) *next++ = '\0';
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
    unlock_fail();
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
    if (xgetenv("CIMFS_EMULATOR_ROOT", buf, len)) return;
    /* Same order as Node's os.tmpdir(), so tools can find the default. */
#if defined(_WIN32)
    if (!xgetenv("TEMP", buf, len) && !xgetenv("TMP", buf, len)) snprintf(buf, len, "C:\\Windows\\Temp");
#else
    if (!xgetenv("TMPDIR", buf, len) && !xgetenv("TMP", buf, len) && !xgetenv("TEMP", buf, len)) snprintf(buf, len, "/tmp");
#endif
    size_t l = strlen(buf);
    while (l > 1 && (buf[l - 1] == '/' || buf[l - 1] == '\\')) buf[--l] = '\0';
    snprintf(buf + l, len - l, SEP "cimfs-emulator");
}

/* The volume directory name is built from the GUID's numbers only, so no
 * GUID can name anything outside the state root. */
static void volume_dir(char *buf, size_t len, const char *root, const GUID *g) {
    snprintf(buf, len,
             "%s" SEP "Volume{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", root,
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
    snprintf(path, sizeof path, "%s" SEP "mount.txt", dir);
    FILE *f = xfopen_w(path);
    if (!f) return -1;
    /* What the call received, so tests can check paths arrive intact. */
    int ok = fprintf(f, "image=%s\ndir=%s\nname=%s\nflags=0x%x\npid=%ld\n", full, d, n, flags, current_pid()) > 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
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
    xstat_t st;
    hr = S_OK;
    if (!dir || !name || !*dir || !*name || strchr(name, '/') || strchr(name, '\\') ||
        strlen(dir) + strlen(name) + 2 > ROOT_MAX) {
        hr = HR_INVALID_PARAMETER;
        goto out;
    }
    if (xstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        hr = HR_PATH_NOT_FOUND;
        goto out;
    }
    /* As the driver joins them; the record shows what it would open. */
    size_t dl = strlen(dir);
    int has_sep = dir[dl - 1] == '/' || dir[dl - 1] == '\\';
    snprintf(full, sizeof full, "%s%s%s", dir, has_sep ? "" : SEP, name);
    if (xstat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = HR_FILE_NOT_FOUND;
        goto out;
    }
    state_root(root, sizeof root);
    if (xmkdir(root) != 0 && errno != EEXIST) {
        hr = hr_from_errno(errno);
        goto out;
    }
    volume_dir(vol, sizeof vol, root, volumeId);
    if (xexists(vol)) {
        hr = HR_ALREADY_EXISTS;
        goto out;
    }
    /* Build the volume under a private name, then rename it into place: the
     * rename is the atomic moment the volume becomes mounted, and a rename
     * onto an existing (non-empty) volume fails, so two racing mounts of one
     * GUID cannot both succeed. */
    snprintf(tmp, sizeof tmp, "%s" SEP ".mounting-%ld-%lu", root, current_pid(), next_tmp_id());
    if (xmkdir(tmp) != 0) {
        hr = hr_from_errno(errno);
        goto out;
    }
    if (write_record(tmp, full, dir, name, mountImageFlags) != 0) {
        hr = hr_from_errno(errno);
        remove_tree(tmp);
        goto out;
    }
    if (xrename(tmp, vol) != 0) {
        /* Windows refuses to rename onto an existing directory with EACCES. */
        hr = xexists(vol) ? HR_ALREADY_EXISTS : hr_from_errno(errno);
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
    snprintf(gone, sizeof gone, "%s" SEP ".dismounting-%ld-%lu", root, current_pid(), next_tmp_id());
    if (xrename(vol, gone) != 0) return (errno == ENOENT || !xexists(vol)) ? HR_FILE_NOT_FOUND : hr_from_errno(errno);
    remove_tree(gone);
    maybe_crash("after-dismount");
    return S_OK;
}

/*
 * Not part of cimfs.dll: tells cimq's emulator backend where the mount table
 * lives, so the default is decided in one place. Returns the length written
 * (UTF-8, NUL-terminated) or the length needed when the buffer is too small.
 */
CIMAPI_C int32_t CimEmulatorStateRoot(char *buffer, uint32_t capacity) {
    char root[ROOT_MAX];
    state_root(root, sizeof root);
    size_t n = strlen(root);
    if (buffer && capacity > n) memcpy(buffer, root, n + 1);
    return (int32_t)n;
}
