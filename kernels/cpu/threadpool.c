/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parallel-for thread pool (see threadpool.h). One job at a time: the caller
 * publishes the job under the mutex and bumps a generation counter, workers wake,
 * take chunks from an atomic counter until none are left, and the last one to
 * finish signals the caller. Workers spin briefly before sleeping because ops
 * come in quick succession and a futex wake-up costs more than a short kernel.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "reel/alloc.h"

#define REEL__SPIN_ITERS 20000

typedef struct worker {
  reel__pool *pool;
  pthread_t thread;
  int tid;
} worker;

struct reel__pool {
  int threads;
  worker *workers; /* threads - 1 */
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  atomic_uint_fast64_t generation;
  atomic_int stop;
  /* Current job. */
  reel__pool_fn fn;
  void *ctx;
  int64_t n, grain;
  atomic_int_fast64_t next_chunk;
  atomic_int pending; /* workers that have not finished the current job */
};

static void run_chunks(reel__pool *p, int tid) {
  int64_t chunks = (p->n + p->grain - 1) / p->grain;
  for (;;) {
    int64_t c = atomic_fetch_add(&p->next_chunk, 1);
    if (c >= chunks) break;
    int64_t begin = c * p->grain, end = begin + p->grain;
    if (end > p->n) end = p->n;
    p->fn(p->ctx, begin, end, tid);
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  reel__pool *p = w->pool;
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = atomic_load(&p->generation);
    for (int i = 0; gen == seen && i < REEL__SPIN_ITERS; i++) gen = atomic_load(&p->generation);
    if (gen == seen) {
      pthread_mutex_lock(&p->mu);
      while (!atomic_load(&p->stop) && (gen = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->wake, &p->mu);
      int stop = atomic_load(&p->stop);
      pthread_mutex_unlock(&p->mu);
      if (stop) return NULL;
    }
    seen = gen;
    if (atomic_load(&p->stop)) return NULL;
    run_chunks(p, w->tid);
    if (atomic_fetch_sub(&p->pending, 1) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

reel__pool *reel__pool_new(int threads, reel_error *err) {
  if (threads < 1) {
    reel_error_set(err, REEL_ERANGE, "threads", "must be >= 1, got %d", threads);
    return NULL;
  }
  reel__pool *p = reel_calloc(1, sizeof *p);
  if (!p) goto nomem;
  p->threads = threads;
  if (pthread_mutex_init(&p->mu, NULL) != 0) goto nomem_free;
  if (pthread_cond_init(&p->wake, NULL) != 0) goto nomem_mu;
  if (pthread_cond_init(&p->done, NULL) != 0) goto nomem_wake;
  atomic_init(&p->generation, 0);
  atomic_init(&p->next_chunk, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->stop, 0);
  if (threads > 1) {
    p->workers = reel_calloc((size_t)threads - 1, sizeof *p->workers);
    if (!p->workers) goto nomem_done;
    for (int i = 0; i < threads - 1; i++) {
      p->workers[i].pool = p;
      p->workers[i].tid = i + 1;
      if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
        p->threads = i + 1; /* join the ones that started */
        reel__pool_destroy(&p);
        reel_error_set(err, REEL_ENOMEM, "threads", "could not start worker thread %d", i + 1);
        return NULL;
      }
    }
  }
  return p;
nomem_done:
  pthread_cond_destroy(&p->done);
nomem_wake:
  pthread_cond_destroy(&p->wake);
nomem_mu:
  pthread_mutex_destroy(&p->mu);
nomem_free:
  reel_free(p);
nomem:
  reel_error_set(err, REEL_ENOMEM, "threads", "out of memory for the thread pool");
  return NULL;
}

void reel__pool_destroy(reel__pool **pp) {
  if (!pp || !*pp) return;
  reel__pool *p = *pp;
  *pp = NULL;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  atomic_fetch_add(&p->generation, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->threads - 1; i++) pthread_join(p->workers[i].thread, NULL);
  reel_free(p->workers);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  reel_free(p);
}

int reel__pool_threads(const reel__pool *p) { return p->threads; }

void reel__pool_run(reel__pool *p, int64_t n, int64_t grain, reel__pool_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (p->threads == 1 || n <= grain) {
    fn(ctx, 0, n, 0);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->grain = grain;
  atomic_store(&p->next_chunk, 0);
  atomic_store(&p->pending, p->threads - 1);
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add(&p->generation, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  run_chunks(p, 0);
  /* Wait for the workers: they may still be finishing a chunk, or not have woken yet. */
  for (int i = 0; i < REEL__SPIN_ITERS && atomic_load(&p->pending) > 0; i++) {
  }
  if (atomic_load(&p->pending) > 0) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
}
