// Placeholder: filled in by the owner of this area.
#include "binding/areas.h"

namespace xattn::binding {
void InitNn(Napi::Env, Napi::Object) {}
}  // namespace xattn::binding
