/* LD_PRELOAD shim for tools/run_tests_at.sh: the wall clock (CLOCK_REALTIME, its coarse variant,
 * gettimeofday, time) runs WALL_SHIFT_S seconds ahead (or behind, when negative) of the real one.
 * Monotonic clocks and every sleep are left alone, so timeouts and waits behave as usual.
 * libfaketime is not used: its clock_nanosleep makes Python's time.sleep fail with EINVAL. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_s(void) {
    static long shift;
    static int read;
    if (!read) {
        const char *text = getenv("WALL_SHIFT_S");
        shift = text ? atol(text) : 0;
        read = 1;
    }
    return shift;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += shift_s();
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    (void)tz;
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
