#include "train/data_parallel.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

#ifdef CLM_NCCL
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#endif

namespace clm::dp {

namespace {
// Shared between the workers (mapped before the fork): rank 0 publishes the NCCL unique id.
struct Shared {
  std::atomic<int> ready;
  char id[128];
};
Shared* g_shared = nullptr;
int g_rank = 0, g_world = 1;

std::string visible_device(int r) {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!v || !*v) return std::to_string(r);
  std::stringstream ss(v);
  std::string tok;
  for (int i = 0; std::getline(ss, tok, ','); ++i)
    if (i == r) return tok;
  throw std::invalid_argument("--gpus " + std::to_string(r + 1) + " but CUDA_VISIBLE_DEVICES lists fewer devices ('" + v + "')");
}
}  // namespace

int launch(int world) {
  if (world < 1) throw std::invalid_argument("--gpus must be >= 1");
  if (world == 1) return 0;
  if (!built()) throw std::invalid_argument("--gpus: this build has no NCCL (configure with -DCLM_CUDA=ON where nccl.h is installed)");
  std::vector<std::string> devs;
  for (int r = 0; r < world; ++r) devs.push_back(visible_device(r));
  void* m = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::runtime_error("--gpus: cannot map shared memory");
  g_shared = new (m) Shared();
  g_shared->ready.store(0);
  std::fflush(nullptr);
  std::vector<pid_t> kids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("--gpus: fork failed");
    if (pid == 0) {
      setenv("CUDA_VISIBLE_DEVICES", devs[size_t(r)].c_str(), 1);
      g_rank = r, g_world = world;
      return r;
    }
    kids.push_back(pid);
  }
  // The launcher: wait; the first failure stops the rest (they would wait in NCCL for it forever).
  int rc = 0;
  for (size_t left = kids.size(); left > 0; --left) {
    int st = 0;
    const pid_t pid = wait(&st);
    if (pid < 0) break;
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (code != 0 && rc == 0) {
      rc = code;
      for (pid_t k : kids)
        if (k != pid) kill(k, SIGTERM);
    }
  }
  std::exit(rc);
}

int rank() { return g_rank; }
int world() { return g_world; }

#ifdef CLM_NCCL
namespace {
// NCCL is opened on first use (dlopen), so a CUDA build runs on one GPU where no NCCL is installed.
struct Nccl {
  decltype(&ncclGetUniqueId) get_unique_id;
  decltype(&ncclCommInitRank) comm_init_rank;
  decltype(&ncclAllReduce) all_reduce;
  decltype(&ncclGroupStart) group_start;
  decltype(&ncclGroupEnd) group_end;
  decltype(&ncclCommDestroy) comm_destroy;
  decltype(&ncclGetErrorString) error_string;
};
const Nccl& nccl() {
  static const Nccl n = [] {
    void* h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) throw std::runtime_error(std::string("--gpus: cannot load NCCL (libnccl.so.2): ") + dlerror());
    auto sym = [&](const char* name) {
      void* f = dlsym(h, name);
      if (!f) throw std::runtime_error(std::string("--gpus: NCCL lacks ") + name);
      return f;
    };
    Nccl x;
    x.get_unique_id = reinterpret_cast<decltype(x.get_unique_id)>(sym("ncclGetUniqueId"));
    x.comm_init_rank = reinterpret_cast<decltype(x.comm_init_rank)>(sym("ncclCommInitRank"));
    x.all_reduce = reinterpret_cast<decltype(x.all_reduce)>(sym("ncclAllReduce"));
    x.group_start = reinterpret_cast<decltype(x.group_start)>(sym("ncclGroupStart"));
    x.group_end = reinterpret_cast<decltype(x.group_end)>(sym("ncclGroupEnd"));
    x.comm_destroy = reinterpret_cast<decltype(x.comm_destroy)>(sym("ncclCommDestroy"));
    x.error_string = reinterpret_cast<decltype(x.error_string)>(sym("ncclGetErrorString"));
    return x;
  }();
  return n;
}
ncclComm_t g_comm = nullptr;
void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw std::runtime_error(std::string("NCCL: ") + what + ": " + nccl().error_string(r));
}
}  // namespace

bool built() { return true; }

void init(int rank, int world) {
  if (world == 1) return;
  if (!g_shared) throw std::logic_error("dp::init without dp::launch");
  ncclUniqueId id;
  static_assert(sizeof(ncclUniqueId) <= sizeof(Shared::id));
  if (rank == 0) {
    check(nccl().get_unique_id(&id), "ncclGetUniqueId");
    std::memcpy(g_shared->id, &id, sizeof id);
    g_shared->ready.store(1, std::memory_order_release);
  } else {
    for (int waited = 0; g_shared->ready.load(std::memory_order_acquire) == 0; ++waited) {
      if (waited > 600000) throw std::runtime_error("--gpus: rank 0 never published the NCCL id");
      usleep(100);
    }
    std::memcpy(&id, g_shared->id, sizeof id);
  }
  check(nccl().comm_init_rank(&g_comm, world, id, rank), "ncclCommInitRank");
}

void average(const std::vector<std::pair<float*, int64_t>>& buffers) {
  if (!g_comm) return;
  check(nccl().group_start(), "ncclGroupStart");
  for (auto& [p, n] : buffers) check(nccl().all_reduce(p, p, size_t(n), ncclFloat32, ncclAvg, g_comm, 0), "ncclAllReduce");
  check(nccl().group_end(), "ncclGroupEnd");
}

double average(double v) {
  if (!g_comm) return v;
  double* d = nullptr;
  if (cudaMalloc(&d, sizeof(double)) != cudaSuccess) throw std::runtime_error("NCCL: cudaMalloc failed");
  cudaMemcpy(d, &v, sizeof v, cudaMemcpyHostToDevice);
  check(nccl().all_reduce(d, d, 1, ncclFloat64, ncclAvg, g_comm, 0), "ncclAllReduce");
  cudaMemcpy(&v, d, sizeof v, cudaMemcpyDeviceToHost);
  cudaFree(d);
  return v;
}

void finalize() {
  if (g_comm) nccl().comm_destroy(g_comm);
  g_comm = nullptr;
}
#else
bool built() { return false; }
void init(int, int world) {
  if (world > 1) throw std::invalid_argument("--gpus: this build has no NCCL");
}
void average(const std::vector<std::pair<float*, int64_t>>&) {}
double average(double v) { return v; }
void finalize() {}
#endif

}  // namespace clm::dp
