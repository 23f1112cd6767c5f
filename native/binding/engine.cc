// Placeholder: filled in by the owner of this area.
#include "binding/areas.h"

namespace xattn::binding {
void InitEngine(Napi::Env, Napi::Object) {}
}  // namespace xattn::binding
