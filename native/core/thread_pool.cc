#include "core/thread_pool.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace xattn {

namespace {
// True on pool workers and on a caller while it runs its share: nested parallel_for calls run inline.
thread_local bool in_parallel_region = false;
}  // namespace

ThreadPool::ThreadPool(int threads) : errors_(static_cast<size_t>(threads < 1 ? 1 : threads)) {
  for (int w = 1; w < threads; ++w) workers_.emplace_back([this, w] { worker_loop(w); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(m_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunk(int index, int64_t n, const std::function<void(int64_t)>& fn) {
  const int64_t t = size();
  const int64_t lo = n * index / t, hi = n * (index + 1) / t;
  try {
    for (int64_t i = lo; i < hi; ++i) fn(i);
  } catch (...) {
    errors_[static_cast<size_t>(index)] = std::current_exception();
  }
}

void ThreadPool::worker_loop(int index) {
  in_parallel_region = true;
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lk(m_);
    start_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const auto* fn = job_;
    const int64_t n = job_n_;
    lk.unlock();
    run_chunk(index, n, *fn);
    lk.lock();
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || in_parallel_region || !busy_.try_lock()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> own(busy_, std::adopt_lock);
  for (auto& e : errors_) e = nullptr;
  {
    std::lock_guard<std::mutex> lk(m_);
    job_ = &fn;
    job_n_ = n;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  in_parallel_region = true;
  run_chunk(0, n, fn);
  in_parallel_region = false;
  {
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  for (auto& e : errors_)
    if (e) std::rethrow_exception(e);
}

int cpu_thread_count() {
  const char* env = std::getenv("XATTN_CPU_THREADS");
  if (env && *env) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 1 || v > 1024)
      fail(ErrorCode::InvalidArgument,
           std::string("XATTN_CPU_THREADS must be an integer in 1..1024, got '") + env + "'");
    return static_cast<int>(v);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool& ThreadPool::shared() {
  // Deliberately leaked: joining workers from a static destructor at process exit buys nothing and can
  // race with other exit-time teardown in the host (Node).
  static ThreadPool* pool = new ThreadPool(cpu_thread_count());
  return *pool;
}

}  // namespace xattn
