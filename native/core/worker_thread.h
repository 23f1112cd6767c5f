// One dedicated thread per engine: it owns the device context, runs every task in submission order,
// and keeps long native work (kernels, collectives) off the JavaScript event loop and the libuv pool.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace xattn {

class WorkerThread {
 public:
  WorkerThread();
  ~WorkerThread();  // drains queued tasks, then joins
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  void submit(std::function<void()> task);
  // Runs fn on the worker and waits for it (for setup work that must happen on the device thread).
  void run_sync(const std::function<void()>& fn);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xattn
