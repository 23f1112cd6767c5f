// A small fixed pool of CPU threads with a statically partitioned parallel_for.
//
// parallel_for(n, fn) runs fn(i) exactly once for every i in [0, n). Worker w always takes the contiguous
// range [n*w/T, n*(w+1)/T), so a kernel that computes each output element inside one fn(i), in a fixed
// order, gives bitwise identical results for any thread count: no atomics, no work stealing.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace xattn {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1; the calling thread counts as one of them
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Blocks until every fn(i) has returned; rethrows the first exception (lowest worker index) if any.
  // A call made from inside a parallel region, or while another thread holds the pool, runs inline on the
  // calling thread (same results, no deadlock).
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

  // The process-wide pool, sized from XATTN_CPU_THREADS (1..1024) or else hardware_concurrency.
  // Throws XattnError(InvalidArgument) if XATTN_CPU_THREADS is set to something else.
  static ThreadPool& shared();

 private:
  void worker_loop(int index);
  void run_chunk(int index, int64_t n, const std::function<void(int64_t)>& fn);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the one thread that currently owns the pool's workers
  std::mutex m_;
  std::condition_variable start_cv_, done_cv_;
  uint64_t generation_ = 0;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<std::exception_ptr> errors_;  // one slot per thread, so the reported error is deterministic
};

// The thread count the shared pool uses (parses XATTN_CPU_THREADS; throws on a bad value).
int cpu_thread_count();

}  // namespace xattn
