// How many threads the CPU kernels use while the machine is shared.
//
// OpenMP and OpenBLAS split each product evenly between their threads. When another process keeps
// a core busy, the thread that shares that core gets half of it, every parallel region waits for
// that thread, and spinning waits take more of the shared core: 2 threads then run slower than 1
// thread on an idle machine (training 440 vs 607 tokens/s on 2 cores, issue #8).
//
// The adaptive policy (the default) treats the thread count as a choice to re-measure: work that
// comes in repeated units (a training step, a decoded token) is timed, and now and then one unit
// runs with one thread fewer or more; the faster count is kept. It starts from the cores that
// other processes left free since start-up (/proc/stat less this process's own CPU time). Probes
// become rarer while they lose (after 8 units, then 32, then every 128; from 32 when the start
// already measured other processes' load), and start again after a switch. With every core
// free, probes cost well under 1%; with a core busy the count drops to the free cores within a few
// units, and comes back when the load goes. Results never depend on the count (each kernel's
// summation order is independent of it: Train.ThreadCountDoesNotChangeTheResult), so switching
// changes only speed. The fixed policy uses exactly the requested count.
#pragma once
#include <chrono>
#include <string>

namespace clm::kernels {

enum class ThreadPolicy { adaptive, fixed };
// clm --thread-policy (or CLM_THREAD_POLICY): "adaptive" or "fixed" (std::invalid_argument otherwise).
ThreadPolicy parse_thread_policy(const std::string& s);
void set_thread_policy(ThreadPolicy p);
ThreadPolicy thread_policy();

class ThreadGovernor {
 public:
  // At most `max_threads` (0: the count set now by set_num_threads); sets the starting count.
  explicit ThreadGovernor(int max_threads = 0);
  void begin();  // a unit starts: sets the thread count it runs with
  void end();    // it ended (timed since begin)
  int current() const { return cur_; }

 private:
  using clock = std::chrono::steady_clock;
  int max_, cur_, running_ = 0;
  bool probing_ = false;
  int64_t units_ = 0, next_probe_ = 2, interval_ = 8;  // warm-up, one unit measured, then the first probe
  int direction_ = -1;
  double avg_ = 0;  // seconds per unit at the running count (moving average)
  clock::time_point t0_;
};

}  // namespace clm::kernels
