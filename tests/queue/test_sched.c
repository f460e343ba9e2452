/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduler: class floor, weighted fair share, no credit banking, priority FIFO, matching, positions. */
#include <string.h>

#include "reel/alloc.h"
#include "fairsched.h"
#include "testutil.h"

typedef struct {
  reel_sched_item item; /* first member: the item pointer is the job pointer */
  char tag[16];
} job;

static uint64_t next_seq;

static job *push(reel_sched *s, job *pool, int *used, const char *tenant, int cls, int prio, const char *tag) {
  job *j = &pool[(*used)++];
  memset(j, 0, sizeof *j);
  strncpy(j->tag, tag, sizeof j->tag - 1);
  reel_sched_tenant *t = reel_sched_tenant_get(s, tenant, 1);
  assert_non_null(t);
  reel_sched_push(s, &j->item, t, cls, prio, ++next_seq);
  return j;
}

/* Picks n items and writes the first letter of each tenant name into out. */
static void pick_order(reel_sched *s, int n, char *out, reel_sched_match_fn match, void *ud) {
  int i = 0;
  for (; i < n; i++) {
    reel_sched_item *it = reel_sched_pick(s, match, ud);
    if (!it) break;
    out[i] = it->tenant->name[0];
  }
  out[i] = '\0';
}

static void test_equal_share(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  job pool[64];
  int used = 0;
  for (int i = 0; i < 20; i++) push(s, pool, &used, "A", 1, 0, "a");
  for (int i = 0; i < 5; i++) push(s, pool, &used, "B", 1, 0, "b");
  char order[64];
  pick_order(s, 25, order, NULL, NULL);
  assert_string_equal(order, "ABABABABABAAAAAAAAAAAAAAA");
  assert_null(reel_sched_pick(s, NULL, NULL));
  assert_int_equal(reel_sched_queued(s, -1), 0);
  reel_sched_destroy(&s);
  assert_null(s);
}

static void test_weights(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  assert_int_equal(reel_sched_set_weight(s, "A", 3), REEL_OK);
  assert_int_equal(reel_sched_set_weight(s, "B", 0), REEL_ERANGE);
  assert_int_equal(reel_sched_set_weight(s, "B", 1001), REEL_ERANGE);
  job pool[64];
  int used = 0;
  for (int i = 0; i < 30; i++) push(s, pool, &used, "A", 1, 0, "a");
  for (int i = 0; i < 30; i++) push(s, pool, &used, "B", 1, 0, "b");
  char order[64];
  pick_order(s, 40, order, NULL, NULL);
  int a = 0;
  for (int i = 0; i < 40; i++) a += order[i] == 'A';
  assert_int_equal(a, 30); /* 3:1 over 40 dispatches */
  /* Every window of 4 holds exactly 3 A's. */
  for (int w = 0; w < 40; w += 4) {
    int aw = 0;
    for (int i = w; i < w + 4; i++) aw += order[i] == 'A';
    assert_int_equal(aw, 3);
  }
  reel_sched_destroy(&s);
}

static void test_interactive_first_and_batch_floor(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(2);
  job pool[64];
  int used = 0;
  /* A big batch from A, then interactive work from B: B goes first. */
  for (int i = 0; i < 10; i++) push(s, pool, &used, "A", 1, 0, "a");
  for (int i = 0; i < 6; i++) push(s, pool, &used, "B", 0, 0, "b");
  char order[64];
  pick_order(s, 16, order, NULL, NULL);
  /* burst 2: two interactive, then one batch, while both wait. */
  assert_string_equal(order, "BBABBABBAAAAAAAA");
  reel_sched_destroy(&s);
  /* burst 1 alternates (and 0 is raised to 1). */
  s = reel_sched_new(0);
  used = 0;
  for (int i = 0; i < 3; i++) push(s, pool, &used, "A", 1, 0, "a");
  for (int i = 0; i < 3; i++) push(s, pool, &used, "B", 0, 0, "b");
  pick_order(s, 6, order, NULL, NULL);
  assert_string_equal(order, "BABABA");
  reel_sched_destroy(&s);
}

static void test_no_credit_banking(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  job pool[200];
  int used = 0;
  for (int i = 0; i < 100; i++) push(s, pool, &used, "A", 1, 0, "a");
  char order[200];
  pick_order(s, 90, order, NULL, NULL); /* A runs alone for a while */
  for (int i = 0; i < 10; i++) push(s, pool, &used, "B", 1, 0, "b");
  pick_order(s, 20, order, NULL, NULL);
  /* B starts at A's pass: it alternates instead of taking 10 in a row. */
  assert_string_equal(order, "ABABABABABABABABABAB");
  reel_sched_destroy(&s);
}

static void test_priority_fifo_and_requeue(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  job pool[16];
  int used = 0;
  job *j1 = push(s, pool, &used, "A", 0, 0, "p0-first");
  job *j2 = push(s, pool, &used, "A", 0, 5, "p5");
  job *j3 = push(s, pool, &used, "A", 0, 0, "p0-second");
  assert_int_equal(reel_sched_position(&j2->item), 1);
  assert_int_equal(reel_sched_position(&j1->item), 2);
  assert_int_equal(reel_sched_position(&j3->item), 3);
  assert_int_equal(reel_sched_tail_position(&j3->item), 3);
  reel_sched_item *it = reel_sched_pick(s, NULL, NULL);
  assert_ptr_equal(it, &j2->item);
  assert_int_equal(reel_sched_position(&j2->item), 0);
  it = reel_sched_pick(s, NULL, NULL);
  assert_ptr_equal(it, &j1->item);
  /* j1's worker died: requeued with its old seq, it goes back in front of j3. */
  reel_sched_push(s, &j1->item, j1->item.tenant, 0, 0, j1->item.seq);
  assert_int_equal(reel_sched_position(&j1->item), 1);
  assert_ptr_equal(reel_sched_pick(s, NULL, NULL), &j1->item);
  assert_ptr_equal(reel_sched_pick(s, NULL, NULL), &j3->item);
  /* Remove of a queued item. */
  job *j4 = push(s, pool, &used, "A", 1, 0, "x");
  reel_sched_remove(s, &j4->item);
  reel_sched_remove(s, &j4->item); /* idempotent */
  assert_null(reel_sched_pick(s, NULL, NULL));
  reel_sched_destroy(&s);
}

static int only_tenant_b(void *ud, const reel_sched_item *it) {
  (void)ud;
  return it->tenant->name[0] == 'B';
}

static void test_matching_skips(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  job pool[16];
  int used = 0;
  for (int i = 0; i < 3; i++) push(s, pool, &used, "A", 0, 0, "a");
  for (int i = 0; i < 3; i++) push(s, pool, &used, "B", 1, 0, "b");
  char order[16];
  /* This worker can run only B's (batch) jobs: A's interactive jobs do not block it. */
  pick_order(s, 3, order, only_tenant_b, NULL);
  assert_string_equal(order, "BBB");
  assert_null(reel_sched_pick(s, only_tenant_b, NULL));
  assert_int_equal(reel_sched_tenant_get(s, "A", 0)->pass[0], 0);
  pick_order(s, 3, order, NULL, NULL);
  assert_string_equal(order, "AAA");
  reel_sched_destroy(&s);
}

typedef struct {
  size_t sum;
  int n;
} pos_acc;

static void acc(void *ud, reel_sched_item *it, size_t pos) {
  pos_acc *a = ud;
  assert_int_equal(pos, reel_sched_position(it));
  a->sum += pos;
  a->n++;
}

static void test_positions(void **state) {
  (void)state;
  reel_sched *s = reel_sched_new(9);
  job pool[16];
  int used = 0;
  push(s, pool, &used, "A", 0, 1, "a");
  push(s, pool, &used, "A", 0, 1, "a");
  push(s, pool, &used, "A", 0, 3, "a");
  push(s, pool, &used, "B", 1, 0, "b");
  pos_acc a = {0, 0};
  reel_sched_foreach(s, acc, &a);
  assert_int_equal(a.n, 4);
  assert_int_equal(a.sum, 1 + 2 + 3 + 1);
  reel_sched_destroy(&s);
}

static void test_alloc_failure(void **state) {
  (void)state;
  reel_alloc_fail_after(0, 0);
  reel_sched *s = reel_sched_new(1);
  reel_alloc_fail_after(-1, 0);
  assert_null(s);
  s = reel_sched_new(1);
  for (long k = 0; k < 3; k++) {
    reel_alloc_fail_after(k, 0);
    reel_sched_tenant *t = reel_sched_tenant_get(s, "T", 1);
    reel_alloc_fail_after(-1, 0);
    if (t) break;
  }
  assert_non_null(reel_sched_tenant_get(s, "T", 0));
  reel_sched_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_equal_share),
      cmocka_unit_test(test_weights),
      cmocka_unit_test(test_interactive_first_and_batch_floor),
      cmocka_unit_test(test_no_credit_banking),
      cmocka_unit_test(test_priority_fifo_and_requeue),
      cmocka_unit_test(test_matching_skips),
      cmocka_unit_test(test_positions),
      cmocka_unit_test(test_alloc_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
