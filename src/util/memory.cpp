#include "util/memory.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <unistd.h>

namespace clm {

int64_t parse_size(const std::string& s, const std::string& flag) {
  auto bad = [&] { return std::invalid_argument(flag + " must be a size such as 8G, 512M or 300000000, not '" + s.substr(0, 40) + "'"); };
  size_t used = 0;
  double v;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = s.substr(used);
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  double mul = 1;
  if (unit == "K" || unit == "k") mul = 1024.0;
  else if (unit == "M" || unit == "m") mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "g") mul = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "t") mul = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty()) throw bad();
  const double b = v * mul;
  if (!std::isfinite(b) || b < 1 || b > 9.0e18) throw bad();
  return int64_t(b);
}

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int i = 0;
  while (b >= 1024 && i < 6) b /= 1024, ++i;
  char s[32];
  std::snprintf(s, sizeof s, "%.2f %s", b, u[i]);
  return s;
}

namespace {
int64_t g_limit = 0;

int64_t mem_available() {  // bytes, or -1 when /proc/meminfo says nothing
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return kb * 1024;
  }
  return -1;
}

int64_t cgroup_room() {  // memory.max - memory.current of this process's cgroup v2, or -1
  std::ifstream cg("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cg, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (path.empty()) return -1;
  auto read = [&](const char* name) -> int64_t {
    std::ifstream f("/sys/fs/cgroup" + path + "/" + name);
    std::string v;
    if (!(f >> v) || v == "max") return -1;
    try {
      return std::stoll(v);
    } catch (const std::exception&) {
      return -1;
    }
  };
  const int64_t max = read("memory.max"), cur = read("memory.current");
  return max < 0 ? -1 : std::max<int64_t>(0, max - std::max<int64_t>(cur, 0));
}
}  // namespace

void set_memory_limit(int64_t bytes) { g_limit = bytes > 0 ? bytes : 0; }

int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * int64_t(::sysconf(_SC_PAGESIZE));
}

int64_t memory_room(std::string* source) {
  if (g_limit == 0)
    if (const char* e = std::getenv("CLM_MAX_MEMORY"); e && *e) g_limit = parse_size(e, "CLM_MAX_MEMORY");
  if (g_limit > 0) {
    const int64_t room = std::max<int64_t>(0, g_limit - resident_bytes());
    if (source) *source = "left of --max-memory " + human_bytes(double(g_limit));
    return room;
  }
  int64_t avail = mem_available();
  const int64_t room = cgroup_room();
  if (room >= 0 && (avail < 0 || room < avail)) avail = room;
  if (source) *source = "this machine has available (--max-memory sets a limit)";
  return avail < 0 ? std::numeric_limits<int64_t>::max() : avail;
}

void check_memory(int64_t need, const std::string& what) {
  std::string source;
  const int64_t room = memory_room(&source);
  if (need >= 0 && need <= room) return;
  throw std::runtime_error(what + " needs " + (need < 0 ? std::string("more than 8 EiB") : human_bytes(double(need))) + ", more than the " +
                           human_bytes(double(room)) + " " + source);
}

int64_t checked_add(std::initializer_list<int64_t> terms) {
  int64_t r = 0;
  for (int64_t t : terms) {
    if (t < 0 || __builtin_add_overflow(r, t, &r)) return -1;
  }
  return r;
}

int64_t checked_mul(std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(r, f, &r)) return -1;
  }
  return r;
}

}  // namespace clm
