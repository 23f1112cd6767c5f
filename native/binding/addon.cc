// Module entry: each area registers its exports from its own file.
#include <napi.h>

#include "binding/areas.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  xattn::binding::InitCommon(env, exports);
  xattn::binding::InitKernels(env, exports);
  xattn::binding::InitTransport(env, exports);
  xattn::binding::InitEngine(env, exports);
  xattn::binding::InitNn(env, exports);
  xattn::binding::InitSchedules(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(xattn, Init)
