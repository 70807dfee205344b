/* random.c — per-thread xoshiro256** generator seeded from the kernel. */
#include "random.h"

#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t state[4];
static _Thread_local bool seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 spreads a weak seed (time) over the state when getrandom fails. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void seed(void)
{
    if (getrandom(state, sizeof state, 0) != (ssize_t)sizeof state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
        for (int i = 0; i < 4; i++)
            state[i] = splitmix(&x);
    }
    if ((state[0] | state[1] | state[2] | state[3]) == 0)
        state[0] = 1;
    seeded = true;
}

uint64_t ward__random_u64(void)
{
    if (!seeded)
        seed();
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

void ward__random_hex(char *out, size_t nbytes)
{
    static const char digits[] = "0123456789abcdef";
    bool zero = true;
    size_t i = 0;
    while (i < nbytes) {
        uint64_t r = ward__random_u64();
        for (int b = 0; b < 8 && i < nbytes; b++, i++) {
            unsigned byte = (unsigned)(r & 0xff);
            r >>= 8;
            zero = zero && byte == 0;
            out[2 * i] = digits[byte >> 4];
            out[2 * i + 1] = digits[byte & 0xf];
        }
    }
    if (zero && nbytes > 0)
        out[2 * nbytes - 1] = '1';
    out[2 * nbytes] = '\0';
}
