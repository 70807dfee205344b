/* test_fault.c — WARD_FAULTS: nothing happens unless a point is named; exit stops the
 * process with its status at once; sleep delays; "@N" acts on the Nth time only. Each case
 * runs in a child process, since the setting is read once per process. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ward/fault.h>

/* Runs points in a child with WARD_FAULTS=spec; returns its exit status. */
static int child(const char *spec, const char *const *points, int n)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (spec != NULL)
            setenv("WARD_FAULTS", spec, 1);
        else
            unsetenv("WARD_FAULTS");
        for (int i = 0; i < n; i++)
            ward_fault(points[i]);
        _exit(ward_fault_armed() ? 3 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(fault, unarmed_points_do_nothing)
{
    const char *p[] = {"a", "b"};
    cr_assert_eq(child(NULL, p, 2), 0);
    cr_assert_eq(child("other=exit", p, 2), 3, "armed, but these points are not named");
}

Test(fault, exit_stops_at_the_point)
{
    const char *p[] = {"before", "step.after"};
    cr_assert_eq(child("step.after=exit", p, 2), WARD_FAULT_EXIT_STATUS);
}

Test(fault, the_nth_time_only)
{
    const char *two[] = {"s", "s"}, *three[] = {"s", "s", "s"};
    cr_assert_eq(child("s@3=exit", two, 2), 3, "only twice: no exit");
    cr_assert_eq(child("s@3=exit", three, 3), WARD_FAULT_EXIT_STATUS);
}

Test(fault, sleep_delays_and_malformed_entries_are_ignored)
{
    struct timespec a, b;
    const char *p[] = {"slow"};
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(child("bogus,=exit,x=explode,slow=sleep:150", p, 1), 3);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    cr_assert_geq(ms, 140);
}
