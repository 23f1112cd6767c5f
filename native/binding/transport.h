// The JS TcpTransport class (test surface and handle for the engine binding).
#pragma once
#include <napi.h>

#include <memory>

#include "core/transport.h"

namespace xattn::binding {

// The core transport held by a JS TcpTransport object; throws a coded JS error for anything else.
// The result may be used from any thread (e.g. the engine's worker), independently of the JS object.
std::shared_ptr<xattn::Transport> unwrap_transport(Napi::Value v);

}  // namespace xattn::binding
