/* fault.c — WARD_FAULTS, read once at the first point reached (configuration read at
 * start, the one kind of global state the style allows); each point keeps an atomic hit
 * count for "name@N". */
#include <ward/fault.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAULTS 16
#define NAME_MAX_LEN 63

struct fault {
    char name[NAME_MAX_LEN + 1];
    unsigned nth;      /* 0: every time */
    long sleep_ms;     /* < 0: exit */
    atomic_uint hits;
};

static struct fault faults[MAX_FAULTS];
static size_t n_faults;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Parses one "name[@N]=exit|sleep:MS" entry of len bytes; ignores a malformed one. */
static void parse_entry(const char *e, size_t len)
{
    const char *eq = memchr(e, '=', len);
    if (eq == NULL || n_faults == MAX_FAULTS)
        return;
    struct fault *f = &faults[n_faults];
    size_t nlen = (size_t)(eq - e);
    const char *at = memchr(e, '@', nlen);
    if (at != NULL) {
        f->nth = (unsigned)strtoul(at + 1, NULL, 10);
        nlen = (size_t)(at - e);
    }
    if (nlen == 0 || nlen > NAME_MAX_LEN)
        return;
    memcpy(f->name, e, nlen);
    f->name[nlen] = '\0';
    const char *action = eq + 1;
    size_t alen = len - (size_t)(action - e);
    if (alen == 4 && memcmp(action, "exit", 4) == 0)
        f->sleep_ms = -1;
    else if (alen > 6 && memcmp(action, "sleep:", 6) == 0)
        f->sleep_ms = strtol(action + 6, NULL, 10);
    else
        return;
    n_faults++;
}

static void load(void)
{
    const char *spec = getenv("WARD_FAULTS");
    if (spec == NULL)
        return;
    for (const char *e = spec; *e != '\0';) {
        const char *end = strchr(e, ',');
        size_t len = end != NULL ? (size_t)(end - e) : strlen(e);
        parse_entry(e, len);
        e += len + (end != NULL);
    }
}

bool ward_fault_armed(void)
{
    pthread_once(&once, load);
    return n_faults > 0;
}

void ward_fault(const char *name)
{
    pthread_once(&once, load);
    for (size_t i = 0; i < n_faults; i++) {
        struct fault *f = &faults[i];
        if (strcmp(f->name, name) != 0)
            continue;
        unsigned hit = atomic_fetch_add(&f->hits, 1) + 1;
        if (f->nth != 0 && hit != f->nth)
            continue;
        if (f->sleep_ms < 0)
            _exit(WARD_FAULT_EXIT_STATUS);
        nanosleep(&(struct timespec){.tv_sec = f->sleep_ms / 1000,
                                     .tv_nsec = f->sleep_ms % 1000 * 1000000L},
                  NULL);
    }
}
