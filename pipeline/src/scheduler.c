/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow-matching samplers, following diffusers 0.42 step for step:
 *
 * - Euler (FlowMatchEulerDiscreteScheduler): the constructor builds 1000 float32
 *   sigmas and shifts them, so sigma_min is the *shifted* 1/1000; set_timesteps
 *   then spaces timesteps between sigma_max*1000 and that sigma_min*1000 in float64
 *   and shifts again. The model gets float32 timesteps sigma*1000.
 * - UniPC (use_flow_sigmas, predict_x0, bh2): sigmas = shift(linspace(1, 1/1000,
 *   steps+1)[:-1]) in float64 with sigma[0] nudged to 1-1e-6; the model gets
 *   int64(sigma*1000) (truncated). Predictor UniP + corrector UniC, with the
 *   order lowered at the start (warm-up) and at the end (lower_order_final).
 * - DPM-Solver++ 2M (use_flow_sigmas, midpoint): sigmas = flip(shift(1 -
 *   linspace(1, 1/1000, steps+1)))[:-1], so the first sigma is shift(0.999) and
 *   not 1; first-order update at the first and the last step.
 *
 * Sigmas are stored as float32 values (as the reference stores them); the update
 * coefficients are computed from them in float64 and applied as one linear
 * combination per update.
 */
#include "reel/scheduler.h"

#include <math.h>
#include <string.h>

#include "reel/alloc.h"

#define MAX_ORDER 3

struct reel_scheduler {
  reel_sched_config cfg;
  reel_sched_ops ops;
  int steps;
  size_t n;
  double *sigmas;    /* steps + 1, float32-rounded */
  double *timesteps; /* steps */
  int step_index;
  int lower_order_nums;
  int this_order;            /* UniPC: order used by the last predictor */
  void *outputs[MAX_ORDER];  /* x0 history, [order-1] newest */
  int n_outputs;             /* how many of outputs[] hold data */
  void *last_sample;         /* UniPC corrector input */
  int have_last_sample;
  void *cur;                 /* scratch for the newest x0 */
};

reel_sched_config reel_sched_config_default(reel_sched_kind kind) {
  reel_sched_config c;
  c.kind = kind;
  c.num_train_timesteps = 1000;
  c.shift = 5.0;
  c.solver_order = 2;
  c.lower_order_final = 1;
  c.unipc_bh1 = 0;
  return c;
}

reel_sched_kind reel_sched_kind_from_sampler(reel_sampler sampler, reel_sched_kind fallback) {
  switch (sampler) {
  case REEL_SAMPLER_UNIPC: return REEL_SCHED_UNIPC;
  case REEL_SAMPLER_EULER: return REEL_SCHED_EULER;
  case REEL_SAMPLER_DPMPP_2M: return REEL_SCHED_DPMPP_2M;
  default: return fallback;
  }
}

/* ---- host ops ---------------------------------------------------------------------------- */

static void *host_alloc(void *ctx, size_t n) {
  (void)ctx;
  return reel_aligned_alloc(n * sizeof(float));
}

static void host_release(void *ctx, void *buf) {
  (void)ctx;
  reel_aligned_free(buf);
}

static reel_status host_lincomb(void *ctx, void *dst, size_t n, int k, const double *coef, void *const *src) {
  (void)ctx;
  float *d = dst;
  for (size_t i = 0; i < n; i++) {
    double acc = 0.0;
    for (int j = 0; j < k; j++) acc += coef[j] * (double)((const float *)src[j])[i];
    d[i] = (float)acc;
  }
  return REEL_OK;
}

static reel_status host_copy(void *ctx, void *dst, const void *src, size_t n) {
  (void)ctx;
  if (dst != src) memmove(dst, src, n * sizeof(float));
  return REEL_OK;
}

const reel_sched_ops reel_sched_host_ops = {NULL, host_alloc, host_release, host_lincomb, host_copy};

/* ---- schedules --------------------------------------------------------------------------- */

/* numpy.linspace(start, stop, num)[i] */
static double linspace_at(double start, double stop, int num, int i) {
  if (num == 1) return start;
  if (i == num - 1) return stop;
  double step = (stop - start) / (double)(num - 1);
  return (double)i * step + start;
}

static double shift_sigma(double shift, double s) { return shift * s / (1.0 + (shift - 1.0) * s); }

static void build_euler(reel_scheduler *s) {
  const int N = s->cfg.num_train_timesteps;
  /* Constructor, in float32: sigmas = linspace(1, N, N)/N, shifted. */
  float fshift = (float)s->cfg.shift;
  float smax = (float)N / (float)N;
  smax = fshift * smax / (1.0f + (fshift - 1.0f) * smax);
  float smin = 1.0f / (float)N;
  smin = fshift * smin / (1.0f + (fshift - 1.0f) * smin);
  for (int i = 0; i < s->steps; i++) {
    double t = linspace_at((double)smax * N, (double)smin * N, s->steps, i);
    float sig = (float)shift_sigma(s->cfg.shift, t / N);
    s->sigmas[i] = sig;
    s->timesteps[i] = (double)(sig * (float)N);
  }
  s->sigmas[s->steps] = 0.0;
}

static void build_unipc(reel_scheduler *s) {
  const int N = s->cfg.num_train_timesteps;
  for (int i = 0; i < s->steps; i++) {
    double sig = shift_sigma(s->cfg.shift, linspace_at(1.0, 1.0 / N, s->steps + 1, i));
    if (i == 0 && fabs(sig - 1.0) < 1e-6) sig -= 1e-6;
    s->timesteps[i] = trunc(sig * N);
    s->sigmas[i] = (float)sig;
  }
  s->sigmas[s->steps] = 0.0;
}

static void build_dpm(reel_scheduler *s) {
  const int N = s->cfg.num_train_timesteps;
  for (int i = 0; i < s->steps; i++) {
    /* flip(...)[i] is element steps - i of the unflipped array. */
    double alpha = linspace_at(1.0, 1.0 / N, s->steps + 1, s->steps - i);
    double sig = shift_sigma(s->cfg.shift, 1.0 - alpha);
    s->timesteps[i] = trunc(sig * N);
    s->sigmas[i] = (float)sig;
  }
  s->sigmas[s->steps] = 0.0;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

reel_status reel_scheduler_new(const reel_sched_config *cfg, int steps, size_t n, const reel_sched_ops *ops,
                               reel_scheduler **out, reel_error *err) {
  *out = NULL;
  if (!cfg) return reel_error_set(err, REEL_EINVAL, "scheduler", "no configuration");
  if (cfg->kind < REEL_SCHED_EULER || cfg->kind > REEL_SCHED_DPMPP_2M)
    return reel_error_set(err, REEL_EINVAL, "scheduler.kind", "unknown scheduler %d", (int)cfg->kind);
  if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > 100000)
    return reel_error_set(err, REEL_ERANGE, "scheduler.num_train_timesteps", "must be in 2..100000, got %d",
                          cfg->num_train_timesteps);
  if (!(cfg->shift >= 0.01 && cfg->shift <= 100.0))
    return reel_error_set(err, REEL_ERANGE, "scheduler.shift", "must be in 0.01..100, got %g", cfg->shift);
  int max_order = cfg->kind == REEL_SCHED_UNIPC ? MAX_ORDER : cfg->kind == REEL_SCHED_DPMPP_2M ? 2 : 1;
  if (cfg->kind != REEL_SCHED_EULER && (cfg->solver_order < 1 || cfg->solver_order > max_order))
    return reel_error_set(err, REEL_ERANGE, "scheduler.solver_order", "must be in 1..%d, got %d", max_order,
                          cfg->solver_order);
  if (steps < 1 || steps > 1000)
    return reel_error_set(err, REEL_ERANGE, "steps", "must be in 1..1000, got %d", steps);
  if (n == 0) return reel_error_set(err, REEL_EINVAL, "scheduler", "latents are empty");
  if (!ops) ops = &reel_sched_host_ops;

  reel_scheduler *s = reel_calloc(1, sizeof *s);
  if (!s) return reel_error_set(err, REEL_ENOMEM, "scheduler", "out of memory");
  s->cfg = *cfg;
  if (s->cfg.kind == REEL_SCHED_EULER) s->cfg.solver_order = 1;
  s->ops = *ops;
  s->steps = steps;
  s->n = n;
  s->sigmas = reel_calloc((size_t)steps + 1, sizeof(double));
  s->timesteps = reel_calloc((size_t)steps, sizeof(double));
  if (!s->sigmas || !s->timesteps) goto oom;
  if (s->cfg.kind != REEL_SCHED_EULER) {
    for (int i = 0; i < s->cfg.solver_order; i++)
      if (!(s->outputs[i] = s->ops.alloc(s->ops.ctx, n))) goto oom;
    if (!(s->cur = s->ops.alloc(s->ops.ctx, n))) goto oom;
    if (s->cfg.kind == REEL_SCHED_UNIPC && !(s->last_sample = s->ops.alloc(s->ops.ctx, n))) goto oom;
  }
  switch (s->cfg.kind) {
  case REEL_SCHED_EULER: build_euler(s); break;
  case REEL_SCHED_UNIPC: build_unipc(s); break;
  case REEL_SCHED_DPMPP_2M: build_dpm(s); break;
  }
  *out = s;
  return REEL_OK;
oom:
  reel_scheduler_destroy(&s);
  return reel_error_set(err, REEL_ENOMEM, "scheduler", "out of memory for %zu latents", n);
}

void reel_scheduler_destroy(reel_scheduler **sp) {
  if (!sp || !*sp) return;
  reel_scheduler *s = *sp;
  for (int i = 0; i < MAX_ORDER; i++)
    if (s->outputs[i]) s->ops.release(s->ops.ctx, s->outputs[i]);
  if (s->cur) s->ops.release(s->ops.ctx, s->cur);
  if (s->last_sample) s->ops.release(s->ops.ctx, s->last_sample);
  reel_free(s->sigmas);
  reel_free(s->timesteps);
  reel_free(s);
  *sp = NULL;
}

int reel_scheduler_steps(const reel_scheduler *s) { return s->steps; }
int reel_scheduler_index(const reel_scheduler *s) { return s->step_index; }

double reel_scheduler_timestep(const reel_scheduler *s, int i) {
  if (i < 0 || i >= s->steps) return NAN;
  return s->timesteps[i];
}

double reel_scheduler_sigma(const reel_scheduler *s, int i) {
  if (i < 0 || i > s->steps) return NAN;
  return s->sigmas[i];
}

/* ---- updates ----------------------------------------------------------------------------- */

/* With flow sigmas: alpha = 1 - sigma; lambda = log(alpha) - log(sigma). */
static double lambda_of(double sigma) { return log(1.0 - sigma) - log(sigma); }

/* Solves the k×k system a·x = b in place (partial pivoting). Returns nonzero if singular. */
static int solve_small(int k, double a[MAX_ORDER][MAX_ORDER], double *b, double *x) {
  for (int c = 0; c < k; c++) {
    int p = c;
    for (int r = c + 1; r < k; r++)
      if (fabs(a[r][c]) > fabs(a[p][c])) p = r;
    if (a[p][c] == 0.0 || !isfinite(a[p][c])) return 1;
    if (p != c) {
      for (int j = 0; j < k; j++) {
        double t = a[c][j];
        a[c][j] = a[p][j];
        a[p][j] = t;
      }
      double t = b[c];
      b[c] = b[p];
      b[p] = t;
    }
    for (int r = c + 1; r < k; r++) {
      double f = a[r][c] / a[c][c];
      for (int j = c; j < k; j++) a[r][j] -= f * a[c][j];
      b[r] -= f * b[c];
    }
  }
  for (int r = k - 1; r >= 0; r--) {
    double acc = b[r];
    for (int j = r + 1; j < k; j++) acc -= a[r][j] * x[j];
    x[r] = acc / a[r][r];
  }
  return 0;
}

/*
 * UniPC's shared terms for an update from sigma_s0 to sigma_t of order p, with
 * the older points at sigma_hist[0..p-2]: fills rks, the B(h) factor, h*phi_1
 * and the vector b of the reference (b[0..p-1]).
 */
typedef struct {
  double alpha_t, sigma_t, sigma_s0;
  double h_phi_1, B_h;
  double rks[MAX_ORDER];
  double R[MAX_ORDER][MAX_ORDER];
  double b[MAX_ORDER];
} unipc_terms;

static void unipc_prepare(const reel_scheduler *s, double sig_t, double sig_s0, const double *sig_hist, int p,
                          unipc_terms *u) {
  u->sigma_t = sig_t;
  u->sigma_s0 = sig_s0;
  u->alpha_t = 1.0 - sig_t;
  double lambda_t = lambda_of(sig_t), lambda_s0 = lambda_of(sig_s0);
  double h = lambda_t - lambda_s0;
  for (int i = 0; i < p - 1; i++) u->rks[i] = (lambda_of(sig_hist[i]) - lambda_s0) / h;
  u->rks[p - 1] = 1.0;
  double hh = -h; /* predict_x0 */
  u->h_phi_1 = expm1(hh);
  double h_phi_k = u->h_phi_1 / hh - 1.0;
  double factorial_i = 1.0;
  u->B_h = s->cfg.unipc_bh1 ? hh : expm1(hh);
  for (int i = 1; i <= p; i++) {
    for (int j = 0; j < p; j++) u->R[i - 1][j] = pow(u->rks[j], i - 1);
    u->b[i - 1] = h_phi_k * factorial_i / u->B_h;
    factorial_i *= i + 1;
    h_phi_k = h_phi_k / hh - 1.0 / factorial_i;
  }
}

/* x0 history: outputs[order-1] is the newest; outputs[order-1-i] is i steps older. */
static void *hist(reel_scheduler *s, int i) { return s->outputs[s->cfg.solver_order - 1 - i]; }

static reel_status unipc_corrector(reel_scheduler *s, void *model_t, void *out, reel_error *err) {
  int p = s->this_order;
  int idx = s->step_index;
  double sig_hist[MAX_ORDER] = {0};
  for (int i = 1; i < p; i++) sig_hist[i - 1] = s->sigmas[idx - (i + 1)];
  unipc_terms u;
  unipc_prepare(s, s->sigmas[idx], s->sigmas[idx - 1], sig_hist, p, &u);
  double rhos[MAX_ORDER];
  if (p == 1) {
    rhos[0] = 0.5;
  } else {
    double R[MAX_ORDER][MAX_ORDER], b[MAX_ORDER];
    memcpy(R, u.R, sizeof R);
    memcpy(b, u.b, sizeof b);
    if (solve_small(p, R, b, rhos))
      return reel_error_set(err, REEL_ENONFINITE, "scheduler", "UniC system is singular at step %d", idx);
  }
  /* x_t = (σt/σs0) x − αt hφ1 m0 − αt B_h (Σ_k ρ_k (m_k − m0)/r_k + ρ_last (model_t − m0)) */
  double coef[MAX_ORDER + 3];
  void *src[MAX_ORDER + 3];
  int k = 0;
  double scale = u.alpha_t * u.B_h;
  double c_m0 = -u.alpha_t * u.h_phi_1 + scale * rhos[p - 1];
  coef[k] = u.sigma_t / u.sigma_s0;
  src[k++] = s->last_sample;
  for (int i = 1; i < p; i++) {
    double c = scale * rhos[i - 1] / u.rks[i - 1];
    c_m0 += c;
    coef[k] = -c;
    src[k++] = hist(s, i);
  }
  coef[k] = c_m0;
  src[k++] = hist(s, 0);
  coef[k] = -scale * rhos[p - 1];
  src[k++] = model_t;
  return s->ops.lincomb(s->ops.ctx, out, s->n, k, coef, src);
}

static reel_status unipc_predictor(reel_scheduler *s, void *x, int p, void *out, reel_error *err) {
  int idx = s->step_index;
  double sig_hist[MAX_ORDER] = {0};
  for (int i = 1; i < p; i++) sig_hist[i - 1] = s->sigmas[idx - i];
  unipc_terms u;
  unipc_prepare(s, s->sigmas[idx + 1], s->sigmas[idx], sig_hist, p, &u);
  double rhos[MAX_ORDER] = {0};
  if (p == 2) {
    rhos[0] = 0.5;
  } else if (p > 2) {
    double R[MAX_ORDER][MAX_ORDER], b[MAX_ORDER];
    memcpy(R, u.R, sizeof R);
    memcpy(b, u.b, sizeof b);
    if (solve_small(p - 1, R, b, rhos))
      return reel_error_set(err, REEL_ENONFINITE, "scheduler", "UniP system is singular at step %d", idx);
  }
  double coef[MAX_ORDER + 2];
  void *src[MAX_ORDER + 2];
  int k = 0;
  double scale = u.alpha_t * u.B_h;
  double c_m0 = -u.alpha_t * u.h_phi_1;
  coef[k] = u.sigma_t / u.sigma_s0;
  src[k++] = x;
  for (int i = 1; i < p; i++) {
    double c = scale * rhos[i - 1] / u.rks[i - 1];
    c_m0 += c;
    coef[k] = -c;
    src[k++] = hist(s, i);
  }
  coef[k] = c_m0;
  src[k++] = hist(s, 0);
  return s->ops.lincomb(s->ops.ctx, out, s->n, k, coef, src);
}

/* Converts the flow prediction into x0 = sample − σ·v at the current step, into s->cur. */
static reel_status convert_output(reel_scheduler *s, void *model_output, void *sample) {
  double coef[2] = {1.0, -s->sigmas[s->step_index]};
  void *src[2] = {sample, model_output};
  return s->ops.lincomb(s->ops.ctx, s->cur, s->n, 2, coef, src);
}

/* Rotates the history so that s->cur becomes the newest entry. */
static void push_output(reel_scheduler *s) {
  int order = s->cfg.solver_order;
  void *oldest = s->outputs[0];
  for (int i = 0; i < order - 1; i++) s->outputs[i] = s->outputs[i + 1];
  s->outputs[order - 1] = s->cur;
  s->cur = oldest;
  if (s->n_outputs < order) s->n_outputs++;
}

static reel_status step_unipc(reel_scheduler *s, void *model_output, void *sample, reel_error *err) {
  reel_status st = convert_output(s, model_output, sample);
  if (st) return st;
  if (s->step_index > 0 && s->have_last_sample) {
    /* The corrector refines the current sample with the new x0 (s->cur). */
    if ((st = unipc_corrector(s, s->cur, sample, err))) return st;
  }
  push_output(s);
  int order = s->cfg.solver_order;
  int this_order = s->cfg.lower_order_final ? (order < s->steps - s->step_index ? order : s->steps - s->step_index)
                                            : order;
  if (this_order > s->lower_order_nums + 1) this_order = s->lower_order_nums + 1;
  s->this_order = this_order;
  if ((st = s->ops.copy(s->ops.ctx, s->last_sample, sample, s->n))) return st;
  s->have_last_sample = 1;
  if ((st = unipc_predictor(s, s->last_sample, this_order, sample, err))) return st;
  if (s->lower_order_nums < order) s->lower_order_nums++;
  return REEL_OK;
}

static reel_status step_dpm(reel_scheduler *s, void *model_output, void *sample, reel_error *err) {
  (void)err;
  int idx = s->step_index;
  reel_status st = convert_output(s, model_output, sample);
  if (st) return st;
  push_output(s);
  /* final_sigmas_type "zero": the last step is always first order. */
  int last = idx == s->steps - 1;
  double sig_t = s->sigmas[idx + 1], sig_s0 = s->sigmas[idx];
  double alpha_t = 1.0 - sig_t;
  double h = lambda_of(sig_t) - lambda_of(sig_s0);
  double c = -alpha_t * (exp(-h) - 1.0);
  double coef[3];
  void *src[3];
  int k = 0;
  coef[k] = sig_t / sig_s0;
  src[k++] = sample;
  if (s->cfg.solver_order == 1 || s->lower_order_nums < 1 || last) {
    coef[k] = c;
    src[k++] = hist(s, 0);
  } else {
    double h0 = lambda_of(sig_s0) - lambda_of(s->sigmas[idx - 1]);
    double r0 = h0 / h;
    coef[k] = c + 0.5 * c / r0;
    src[k++] = hist(s, 0);
    coef[k] = -0.5 * c / r0;
    src[k++] = hist(s, 1);
  }
  st = s->ops.lincomb(s->ops.ctx, sample, s->n, k, coef, src);
  if (s->lower_order_nums < s->cfg.solver_order) s->lower_order_nums++;
  return st;
}

static reel_status step_euler(reel_scheduler *s, void *model_output, void *sample) {
  /* dt is a float32 difference in the reference. */
  float dt = (float)s->sigmas[s->step_index + 1] - (float)s->sigmas[s->step_index];
  double coef[2] = {1.0, (double)dt};
  void *src[2] = {sample, model_output};
  return s->ops.lincomb(s->ops.ctx, sample, s->n, 2, coef, src);
}

reel_status reel_scheduler_step(reel_scheduler *s, void *model_output, void *sample, reel_error *err) {
  if (!s || !model_output || !sample) return reel_error_set(err, REEL_EINVAL, "scheduler", "missing argument");
  if (s->step_index >= s->steps)
    return reel_error_set(err, REEL_ESTATE, "scheduler", "all %d steps are done", s->steps);
  reel_status st;
  switch (s->cfg.kind) {
  case REEL_SCHED_EULER: st = step_euler(s, model_output, sample); break;
  case REEL_SCHED_UNIPC: st = step_unipc(s, model_output, sample, err); break;
  default: st = step_dpm(s, model_output, sample, err); break;
  }
  if (st == REEL_OK) s->step_index++;
  return st;
}

reel_status reel_scheduler_x0(reel_scheduler *s, void *model_output, void *sample, void *x0, reel_error *err) {
  if (!s || s->step_index >= s->steps)
    return reel_error_set(err, REEL_ESTATE, "scheduler", "no current step");
  double coef[2] = {1.0, -s->sigmas[s->step_index]};
  void *src[2] = {sample, model_output};
  return s->ops.lincomb(s->ops.ctx, x0, s->n, 2, coef, src);
}
