/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NVENC support around libavcodec (see hw.h).
 *
 * Context sharing: FFmpeg 5.1 has no flag to adopt the current CUDA context, but
 * it uses whatever AVCUDADeviceContext.cuda_ctx / .stream hold when they are set
 * between av_hwdevice_ctx_alloc() and av_hwdevice_ctx_init(), and then neither
 * creates nor destroys a context of its own. reel's CUDA backend works through
 * the runtime API on the device's primary context, so that is the context to
 * hand over: the runtime makes it current (cudaSetDevice + cudaFree(0)) and the
 * driver's cuCtxGetCurrent names it. The driver entry point is looked up through
 * the runtime (cudaGetDriverEntryPoint*) so that reel never links libcuda itself:
 * a build with CUDA still runs, and falls back to software, on machines without
 * a driver.
 */
#include "hw.h"

#include <dlfcn.h>
#include <string.h>

#ifdef REEL_HAVE_CUDA
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <libavutil/hwcontext.h>
#include <libavutil/hwcontext_cuda.h>
#endif

#include "av_common.h"

int reel__cuda_driver_present(void) {
  void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!h) return 0;
  dlclose(h);
  return 1;
}

const char *reel__nvenc_preset(const char *p) {
  static const struct {
    const char *x26x, *nvenc;
  } map[] = {{"ultrafast", "p1"}, {"superfast", "p1"}, {"veryfast", "p2"}, {"faster", "p3"},   {"fast", "p3"},
             {"medium", "p4"},    {"slow", "p5"},      {"slower", "p6"},   {"veryslow", "p7"}, {"placebo", "p7"}};
  for (size_t i = 0; p && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(map[i].x26x, p)) return map[i].nvenc;
  return "p4";
}

#ifdef REEL_HAVE_CUDA
typedef CUresult (*cu_ctx_get_current_fn)(CUcontext *);

/* The context the CUDA runtime uses on `device` (its primary context), made current on this thread. */
static reel_status runtime_context(int device, CUcontext *ctx, reel_error *err) {
  cudaError_t ce = cudaSetDevice(device);
  if (ce == cudaSuccess) ce = cudaFree(NULL); /* initialises the primary context and makes it current */
  if (ce != cudaSuccess)
    return reel_error_set(err, REEL_EDEVICE, "hw", "CUDA device %d: %s", device, cudaGetErrorString(ce));
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
  ce = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault, &q);
#else
  ce = cudaGetDriverEntryPoint("cuCtxGetCurrent", &fn, cudaEnableDefault, &q);
#endif
  if (ce != cudaSuccess || q != cudaDriverEntryPointSuccess || !fn)
    return reel_error_set(err, REEL_EDEVICE, "hw", "the CUDA driver has no cuCtxGetCurrent (%s)",
                          ce != cudaSuccess ? cudaGetErrorString(ce) : "not found");
  cu_ctx_get_current_fn get;
  memcpy(&get, &fn, sizeof get); /* object pointer -> function pointer without a cast ISO C frowns on */
  *ctx = NULL;
  CUresult cr = get(ctx);
  if (cr != CUDA_SUCCESS || !*ctx)
    return reel_error_set(err, REEL_EDEVICE, "hw", "no current CUDA context on device %d (CUresult %d)", device,
                          (int)cr);
  return REEL_OK;
}
#endif

reel_status reel__cuda_frames_for_backend(reel_backend *b, int width, int height, int pool, AVBufferRef **frames,
                                          reel_error *err) {
  *frames = NULL;
#ifdef REEL_HAVE_CUDA
  int device = 0;
  void *stream = NULL;
  reel_status st = reel_backend_cuda_info(b, &device, &stream, err);
  if (st != REEL_OK) return st;
  CUcontext ctx = NULL;
  if ((st = runtime_context(device, &ctx, err))) return st;
  AVBufferRef *dev = av_hwdevice_ctx_alloc(AV_HWDEVICE_TYPE_CUDA);
  if (!dev) return reel_error_set(err, REEL_ENOMEM, "hw", "out of memory");
  AVHWDeviceContext *hd = (AVHWDeviceContext *)dev->data;
  AVCUDADeviceContext *cu = hd->hwctx;
  cu->cuda_ctx = ctx;
  cu->stream = (CUstream)stream;
  int r = av_hwdevice_ctx_init(dev);
  if (r < 0) {
    av_buffer_unref(&dev);
    return reel__av_fail(err, "hw", r, "initialising FFmpeg's CUDA device on the backend's context");
  }
  AVBufferRef *fr = av_hwframe_ctx_alloc(dev);
  av_buffer_unref(&dev); /* the frames context keeps its own reference */
  if (!fr) return reel_error_set(err, REEL_ENOMEM, "hw", "out of memory");
  AVHWFramesContext *fc = (AVHWFramesContext *)fr->data;
  fc->format = AV_PIX_FMT_CUDA;
  fc->sw_format = AV_PIX_FMT_NV12;
  fc->width = width;
  fc->height = height;
  fc->initial_pool_size = pool; /* allocated now and recycled: no allocation per frame */
  if ((r = av_hwframe_ctx_init(fr)) < 0) {
    av_buffer_unref(&fr);
    return reel__av_fail(err, "hw", r, "allocating the CUDA frame pool");
  }
  *frames = fr;
  return REEL_OK;
#else
  (void)b;
  (void)width;
  (void)height;
  (void)pool;
  return reel_error_set(err, REEL_EUNSUPPORTED, "hw", "reel was built without CUDA: no frames on the GPU");
#endif
}
