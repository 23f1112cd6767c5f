// Registration hooks, one per binding file.
#pragma once
#include <napi.h>

namespace xattn::binding {
void InitCommon(Napi::Env env, Napi::Object exports);     // common.cc: build info, error mapping
void InitKernels(Napi::Env env, Napi::Object exports);    // kernels.cc: single-process ops on host arrays
void InitTransport(Napi::Env env, Napi::Object exports);  // transport.cc: TCP transport test surface
void InitEngine(Napi::Env env, Napi::Object exports);     // engine.cc: distributed attention engine
void InitNn(Napi::Env env, Napi::Object exports);         // nn.cc: model ops (GEMM, norms, optimizer)
void InitSchedules(Napi::Env env, Napi::Object exports);  // schedules.cc: the schedules' planning decisions
}  // namespace xattn::binding
