/*
 * Unit tests: the daemon-wide memory budget (core/base/membudget.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "check.h"
#include "base/membudget.h"

static void test_try_and_give(void)
{
	struct metrics *m = metrics_create();
	struct membudget *b = membudget_create(100, m);

	CHECK(membudget_try(b, 60));
	CHECK(!membudget_try(b, 41));   /* would pass the bound */
	CHECK(membudget_try(b, 40));
	CHECK_INT(membudget_used(b), 100);
	CHECK(!membudget_short(b));
	membudget_give(b, 60);
	CHECK_INT(membudget_used(b), 40);
	CHECK_INT(membudget_peak(b), 100);
	membudget_force(b, 200);        /* at once, over the bound */
	CHECK(membudget_short(b));
	CHECK(!membudget_try(b, 1));
	membudget_give(b, 240);
	CHECK_INT(membudget_used(b), 0);
	/* NULL: unbounded */
	CHECK(membudget_try(NULL, (uint64_t)1 << 60));
	membudget_take(NULL, 5);
	CHECK_INT(membudget_max(b), 100);
	CHECK(membudget_max(NULL) == UINT64_MAX);
	membudget_destroy(b);
	metrics_destroy(m);
}

/* With nothing in flight nobody would give bytes back: take goes over. */
static void test_take_without_flights(void)
{
	struct membudget *b = membudget_create(10, NULL);

	membudget_take(b, 8);
	membudget_take(b, 8);
	CHECK_INT(membudget_used(b), 16);
	membudget_give(b, 16);
	membudget_destroy(b);
}

struct waiter {
	struct membudget *b;
	int done; /* __atomic */
};

static void *take_thread(void *arg)
{
	struct waiter *w = arg;

	membudget_take(w->b, 50);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* A take waits while the budget is spent and a buffer is in flight, and
 * goes on once that buffer is given back. */
static void test_take_waits_for_flight(void)
{
	struct waiter w = {membudget_create(100, NULL), 0};
	pthread_t t;

	membudget_take(w.b, 80);
	membudget_flight(w.b, 1);
	pthread_create(&t, NULL, take_thread, &w);
	while (!membudget_short(w.b)) /* until it waits */
		sched_yield();
	CHECK(!__atomic_load_n(&w.done, __ATOMIC_SEQ_CST));
	CHECK(!membudget_try(w.b, 10)); /* a waiter goes first */
	CHECK_INT(membudget_used(w.b), 80);
	membudget_give(w.b, 80);
	membudget_flight(w.b, -1);
	pthread_join(t, NULL);
	CHECK(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST));
	CHECK_INT(membudget_used(w.b), 50);
	CHECK_INT(membudget_peak(w.b), 80);
	membudget_give(w.b, 50);
	membudget_destroy(w.b);
}

/* The last flight ending lets a waiter go on even over the bound. */
static void test_last_flight_releases_waiter(void)
{
	struct waiter w = {membudget_create(100, NULL), 0};
	pthread_t t;

	membudget_take(w.b, 90);
	membudget_flight(w.b, 1);
	pthread_create(&t, NULL, take_thread, &w);
	while (!membudget_short(w.b))
		sched_yield();
	membudget_flight(w.b, -1);
	pthread_join(t, NULL);
	CHECK_INT(membudget_used(w.b), 140);
	membudget_give(w.b, 140);
	membudget_destroy(w.b);
}

int main(void)
{
	test_try_and_give();
	test_take_without_flights();
	test_take_waits_for_flight();
	test_last_flight_releases_waiter();
	return check_done("membudget");
}
