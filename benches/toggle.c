/*
 * Independent plain-C reproducer of the shared-dirty toggle, the shape of
 * the public v6.16 -> v6.17 mprotect regression reproducer. `cargo xtask
 * bench` runs it interleaved with `mprotect-trace workload` to check that
 * the tool's own timings agree with it.
 *
 * usage: toggle MAPPING_MB ITERATIONS WARMUP
 * prints: result protect_ns_per_page=.. restore_ns_per_page=..
 *         post_touch_ns_per_page=.. iteration_ns_per_page=..
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s MAPPING_MB ITERATIONS WARMUP\n", argv[0]);
		return 2;
	}
	size_t len = strtoull(argv[1], NULL, 10) << 20;
	long iterations = strtol(argv[2], NULL, 10);
	long warmup = strtol(argv[3], NULL, 10);
	size_t page = 4096, pages = len / page;
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < pages; i++)
		p[i * page] = 1;

	unsigned long long protect = 0, restore = 0, touch = 0;
	for (long it = 0; it < warmup + iterations; it++) {
		unsigned long long t0 = now_ns();
		if (mprotect((void *)p, len, PROT_READ))
			return perror("mprotect"), 1;
		unsigned long long t1 = now_ns();
		if (mprotect((void *)p, len, PROT_READ | PROT_WRITE))
			return perror("mprotect"), 1;
		unsigned long long t2 = now_ns();
		for (size_t i = 0; i < pages; i++)
			p[i * page] = (char)it;
		unsigned long long t3 = now_ns();
		if (it >= warmup) {
			protect += t1 - t0;
			restore += t2 - t1;
			touch += t3 - t2;
		}
	}
	double n = (double)iterations * pages;
	printf("result protect_ns_per_page=%.2f restore_ns_per_page=%.2f "
	       "post_touch_ns_per_page=%.2f iteration_ns_per_page=%.2f\n",
	       protect / n, restore / n, touch / n,
	       (protect + restore + touch) / n);
	return 0;
}
