/* EXPERIMENT (issue 8): how far apart the machine's two vCPUs are.
 *
 * Not part of npvae (which has no compiled code); a measuring tool, built and
 * run by hand:
 *
 *     gcc -O2 -pthread benchmarks/experiments/pingpong.c -o /tmp/pingpong
 *     /tmp/pingpong            # prints ns per round trip between CPU 0 and CPU 1
 *
 * Two threads, pinned to CPU 0 and CPU 1, hand one cache line back and forth
 * 200,000 times; the time per round trip is what it costs one vCPU to read
 * what the other has just written.  On a VM the hypervisor decides where the
 * two vCPUs run, and it can change that while a process runs.
 *
 * Why it matters here (session 6, 2-vCPU AMD EPYC VM): npvae's 2-thread
 * training step is bimodal, about 2.8 ms or 3.7-4.0 ms per paper step, and
 * the slow mode coincided in every one of 80 repetitions with round trips of
 * 615-660 ns against 140-260 ns (see benchmarks/README.md, Session 6).
 * OpenBLAS writes half of every product's output from the other vCPU, and
 * npvae's element-wise work and optimizer then read all of it on one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define ROUNDS 200000

static _Atomic int ball __attribute__((aligned(64)));

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *partner(void *unused)
{
    (void)unused;
    pin(1);
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&ball, memory_order_acquire) != 1)
            ;
        atomic_store_explicit(&ball, 0, memory_order_release);
    }
    return NULL;
}

int main(void)
{
    pthread_t other;
    struct timespec start, stop;

    if (pin(0) != 0) {
        fprintf(stderr, "cannot pin to CPU 0\n");
        return 1;
    }
    atomic_store(&ball, 0);
    if (pthread_create(&other, NULL, partner, NULL) != 0) {
        fprintf(stderr, "cannot start the second thread\n");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&ball, 1, memory_order_release);
        while (atomic_load_explicit(&ball, memory_order_acquire) != 0)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &stop);
    pthread_join(other, NULL);
    double ns = (stop.tv_sec - start.tv_sec) * 1e9 + (stop.tv_nsec - start.tv_nsec);
    printf("%.0f ns per round trip\n", ns / ROUNDS);
    return 0;
}
