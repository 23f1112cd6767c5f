// Helpers shared by the binding files: errors with stable codes, argument readers.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "core/error.h"

namespace xattn::binding {

// Builds a JS Error whose .code is "XATTN_E_<CODE>".
Napi::Error make_error(Napi::Env env, xattn::ErrorCode code, const std::string& msg);
// Runs fn, turning XattnError / std::exception into a thrown JS error with a code.
Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& fn);

int64_t get_int(const Napi::Object& o, const char* key, int64_t fallback);
int64_t require_int(const Napi::Object& o, const char* key);
double get_number(const Napi::Object& o, const char* key, double fallback);
std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback);

}  // namespace xattn::binding
