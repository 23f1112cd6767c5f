#include "cuda/shared_library.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>

namespace xattn {
namespace {

std::vector<std::string> site_packages() {
  std::vector<std::string> roots = {"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                                    "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
                                    "/opt/conda/lib/python3*/site-packages"};
  for (const char* env : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = std::getenv(env)) roots.push_back(std::string(v) + "/lib/python3*/site-packages");
  if (const char* home = std::getenv("HOME")) roots.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  return roots;
}

std::vector<std::string> search_dirs(const LibrarySearch& s) {
  std::vector<std::string> patterns;
  for (const auto& root : site_packages())
    for (const auto& sub : s.wheel_subdirs) patterns.push_back(root + sub);
  patterns.insert(patterns.end(), s.extra_dirs.begin(), s.extra_dirs.end());
  std::vector<std::string> dirs;
  for (const auto& p : patterns) {
    glob_t g{};
    if (::glob(p.c_str(), GLOB_ONLYDIR, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) dirs.emplace_back(g.gl_pathv[i]);
    globfree(&g);
  }
  return dirs;
}

}  // namespace

SharedLibrary open_shared_library(const LibrarySearch& s) {
  SharedLibrary lib;
  std::vector<std::string> tried;
  auto attempt = [&](const std::string& p) {
    if (lib.handle) return;
    lib.handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib.handle) {
      lib.path = p;
    } else {
      const char* err = dlerror();
      tried.push_back(p + " (" + (err ? err : "not found") + ")");
    }
  };
  if (const char* env = std::getenv(s.env_override); env && *env) {
    attempt(env);
  } else {
    const std::vector<std::string> dirs = search_dirs(s);
    for (const auto& soname : s.sonames) {
      attempt(soname);
      for (const auto& d : dirs) attempt(d + "/" + soname);
    }
  }
  if (!lib.handle) {
    std::string msg = std::string("cannot load ") + s.what + "; set " + s.env_override + " to its path (" +
                      (s.sonames.empty() ? "" : s.sonames.front()) + "). Tried:";
    for (const auto& t : tried) msg += " " + t + ";";
    fail(s.code, msg);
  }
  return lib;
}

void* library_symbol(const SharedLibrary& lib, const char* what, const char* symbol, bool required, ErrorCode code) {
  void* p = dlsym(lib.handle, symbol);
  if (!p && required) fail(code, std::string(what) + " library " + lib.path + " lacks symbol " + symbol);
  return p;
}

}  // namespace xattn
