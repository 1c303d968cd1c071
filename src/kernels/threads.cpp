#include "kernels/threads.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "kernels/kernels.h"

namespace clm::kernels {

namespace {
ThreadPolicy g_policy = ThreadPolicy::adaptive;
constexpr int64_t kWarmup = 1, kFirstInterval = 8, kMaxInterval = 128;

// CPU time of the whole machine (busy seconds, from /proc/stat) and of this process, at a moment.
struct CpuSample {
  double busy = -1, self = 0;
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  CpuSample() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    double v[8] = {};
    if (f >> cpu && cpu == "cpu" && f >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7]) {
      const double hz = double(::sysconf(_SC_CLK_TCK));
      busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;  // all but idle and iowait
    }
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    self = double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  }
};
const CpuSample g_start;  // at start-up

// Cores kept busy by other processes since start-up (at least the last 0.1 s): the machine's busy
// CPU time less this process's own, over the wall time. -1 when /proc/stat cannot be read.
double others_busy_cores() {
  CpuSample now;
  double wall = std::chrono::duration<double>(now.at - g_start.at).count();
  if (wall < 0.1) {
    std::this_thread::sleep_for(std::chrono::duration<double>(0.1 - wall));
    now = CpuSample();
    wall = std::chrono::duration<double>(now.at - g_start.at).count();
  }
  if (g_start.busy < 0 || now.busy < 0) return -1;
  return std::max(0.0, (now.busy - g_start.busy) - (now.self - g_start.self)) / wall;
}
constexpr double kMargin = 0.97;  // a probe must be 3% faster than the running count's average to win
}  // namespace

ThreadPolicy parse_thread_policy(const std::string& s) {
  if (s == "adaptive") return ThreadPolicy::adaptive;
  if (s == "fixed") return ThreadPolicy::fixed;
  throw std::invalid_argument("--thread-policy must be adaptive or fixed, not '" + s.substr(0, 40) + "'");
}
void set_thread_policy(ThreadPolicy p) { g_policy = p; }
ThreadPolicy thread_policy() { return g_policy; }

ThreadGovernor::ThreadGovernor(int max_threads) : max_(max_threads > 0 ? max_threads : num_threads()), cur_(max_) {
  if (g_policy == ThreadPolicy::fixed) {
    max_ = 1;  // nothing to choose: begin/end leave the count alone
    return;
  }
  if (max_ <= 1) return;
  // Start from the cores other processes left free since start-up; the probes correct it.
  const double others = others_busy_cores();
  if (others > 0) cur_ = std::clamp(max_ - int(others + 0.5), 1, max_);
  if (cur_ < max_) next_probe_ = interval_ = 32;  // the load was measured: the first probe can wait
  if (std::getenv("CLM_THREAD_LOG")) std::fprintf(stderr, "[threads: others keep %.2f cores busy; starting with %d of %d]\n", others, cur_, max_);
  set_num_threads(running_ = cur_);
}

void ThreadGovernor::begin() {
  if (max_ <= 1) return;
  probing_ = units_ == next_probe_;
  if (probing_ && (cur_ + direction_ < 1 || cur_ + direction_ > max_)) direction_ = -direction_;
  const int n = probing_ ? cur_ + direction_ : cur_;
  if (n != running_) set_num_threads(n);
  running_ = n;
  t0_ = clock::now();
}

void ThreadGovernor::end() {
  if (max_ <= 1) return;
  const double s = std::chrono::duration<double>(clock::now() - t0_).count();
  if (++units_ <= kWarmup) return;  // the first units allocate and fault pages in
  if (!probing_) {
    avg_ = avg_ == 0 ? s : 0.7 * avg_ + 0.3 * s;
    return;
  }
  static const bool log = std::getenv("CLM_THREAD_LOG") != nullptr;  // each probe on stderr
  if (log)
    std::fprintf(stderr, "[threads: unit %lld, %d threads %.2f ms vs %d threads %.2f ms on average%s]\n", (long long)units_, running_, s * 1e3,
                 cur_, avg_ * 1e3, avg_ > 0 && s < kMargin * avg_ ? ": switch" : "");
  if (avg_ > 0 && s < kMargin * avg_) {  // the probed count won: run with it, probe again soon
    cur_ = running_;
    avg_ = s;
    interval_ = kFirstInterval;
  } else {  // it lost: keep the count, try the other side next time, less often
    direction_ = -direction_;
    interval_ = std::min(interval_ * 4, kMaxInterval);
  }
  next_probe_ = units_ + interval_;
}

}  // namespace clm::kernels
