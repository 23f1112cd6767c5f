#include "forked_ranks.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "cuda/cuda_factory.h"

namespace xattn::forked {
namespace {

std::vector<uint8_t> exchange_id(int rank, const std::string& path) {
  if (rank == 0) {
    std::vector<uint8_t> id = nccl_unique_id();
    {
      std::ofstream f(path + ".tmp", std::ios::binary);
      f.write(reinterpret_cast<const char*>(id.data()), static_cast<std::streamsize>(id.size()));
    }
    std::rename((path + ".tmp").c_str(), path.c_str());
    return id;
  }
  for (int i = 0; i < 3000; ++i) {
    std::ifstream f(path, std::ios::binary);
    if (f) {
      std::vector<uint8_t> id(128);
      f.read(reinterpret_cast<char*>(id.data()), 128);
      if (f.gcount() == 128) return id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::printf("rank %d: FAIL no unique id file from rank 0\n", rank);
  std::fflush(stdout);
  std::_Exit(1);
}

}  // namespace

int run_ranks(int world, const std::function<int(int, int, const std::vector<uint8_t>&)>& rank_main) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // every rank's progress reaches the log, even if one is killed
  setenv("NCCL_NVLS_ENABLE", "0", 0);  // never NVLink multicast (shared machines)
  const std::string id_path = "/tmp/xattn_nccl_id_" + std::to_string(getpid());
  std::remove(id_path.c_str());
  std::vector<pid_t> kids;
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      const int rc = rank_main(r, world, exchange_id(r, id_path));
      std::fflush(stdout);
      std::_Exit(rc);  // an aborted communicator's resources are left to process exit
    }
    kids.push_back(pid);
  }
  int failed = 0;
  for (int r = 0; r < world; ++r) {
    int status = 0;
    waitpid(kids[r], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("rank %d exited with status %d\n", r, status);
      ++failed;
    }
  }
  std::remove(id_path.c_str());
  std::printf("%d passed, %d failed\n", world - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace xattn::forked
